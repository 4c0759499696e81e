"""Line numbers for policy errors, found by scanning the TOML text.

``tomllib`` returns plain dicts without positions, so the n-th ``[[rules]]``
header is located by scanning the text, and a key inside a rule by scanning
that rule's section. The scan skips multi-line strings; when something cannot
be located (rules written as an inline array, say) it falls back to the
nearest enclosing line it knows, or ``None``.
"""

import re

_RULES_HEADER = re.compile(r"""\s*\[\[\s*(rules|"rules"|'rules')\s*\]\]\s*(#.*)?""")
_TABLE_HEADER = re.compile(r"""\s*\[\s*([A-Za-z0-9_.'"\s-]+?)\s*\]\s*(#.*)?""")
_MULTILINE_QUOTES = ('"""', "'''")


def _key_pattern(key: str) -> re.Pattern[str]:
    quoted = re.escape(key)
    return re.compile(rf"""\s*(?:{quoted}|"{quoted}"|'{quoted}')\s*[.=]""")


class SourceMap:
    """Where the tables and keys of one policy text are."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self.rule_headers: list[int] = []
        """One-based line of each ``[[rules]]`` header, in order."""
        self._tables: dict[str, list[int]] = {}
        self._boundaries: list[int] = []
        open_quote: str | None = None
        for number, line in enumerate(self._lines, start=1):
            if open_quote is not None:
                if line.count(open_quote) % 2 == 1:
                    open_quote = None
                continue
            for quote in _MULTILINE_QUOTES:
                if line.count(quote) % 2 == 1:
                    open_quote = quote
                    break
            if _RULES_HEADER.fullmatch(line):
                self.rule_headers.append(number)
                self._boundaries.append(number)
            elif table := _TABLE_HEADER.fullmatch(line):
                name = table.group(1).replace('"', "").replace("'", "").replace(" ", "")
                self._tables.setdefault(name, []).append(number)
                if not name.startswith("rules."):
                    self._boundaries.append(number)

    def _find_key(self, key: str, start: int, end: int) -> int | None:
        pattern = _key_pattern(key)
        for number in range(start, min(end, len(self._lines)) + 1):
            if pattern.match(self._lines[number - 1]):
                return number
        return None

    def _section_end(self, header: int) -> int:
        later = [b for b in self._boundaries if b > header]
        return later[0] - 1 if later else len(self._lines)

    def top_key_line(self, key: str) -> int | None:
        """Line of a top-level key or table named ``key``."""
        first = self._boundaries[0] - 1 if self._boundaries else len(self._lines)
        found = self._find_key(key, 1, first)
        if found is not None:
            return found
        if key == "rules" and self.rule_headers:
            return self.rule_headers[0]
        return self._tables.get(key, [None])[0]

    def table_key_line(self, table: str, key: str | None = None) -> int | None:
        """Line of ``key`` inside ``[table]``, else of the header, else of the top-level key."""
        header = self._tables.get(table, [None])[0]
        if header is None:
            return self.top_key_line(table)
        if key is not None:
            found = self._find_key(key, header + 1, self._section_end(header))
            if found is not None:
                return found
        return header

    def rule_line(self, index: int, key: str | None = None) -> int | None:
        """Line of ``key`` in the ``index``-th rule, else of its header.

        Also finds ``[rules.key]`` sub-tables written below the rule header.
        """
        if index >= len(self.rule_headers):
            return self.top_key_line("rules")
        header = self.rule_headers[index]
        if key is None:
            return header
        end = self._section_end(header)
        found = self._find_key(key, header + 1, end)
        if found is None:
            subs = self._tables.get(f"rules.{key}", [])
            found = next((sub for sub in subs if header < sub <= end), None)
        return found if found is not None else header
