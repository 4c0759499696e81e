"""Request normalisation (path, host, method) and path-pattern parsing.

Decisions are made on the most-decoded form of the path: the request target is
percent-decoded once and ``%2F`` becomes a real separator. An upstream that
keeps ``%2F`` inside a segment then sees *fewer* segments than we matched,
never a path that we matched against a more permissive rule; ``/public%2F..%2Fadmin``
is decided as ``/admin``. ``.``/``..`` and ``//`` are resolved after decoding,
so encoded dot segments (``%2e%2e``) get no special treatment either.

The result is canonical: ``%``, ``?`` and ``#`` stay escaped (``%25``, ``%3F``,
``%23``) so that it is itself a valid path and normalising it again changes
nothing. Pattern literals may not contain those characters, and captured
segments are unescaped before they are compared with claims.
"""

import re
from typing import Literal, NamedTuple
from urllib.parse import unquote

MAX_PATH_LENGTH = 8192
"""Longest raw path (before the query) accepted, in characters."""

_HEX = frozenset(b"0123456789abcdefABCDEF")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ESCAPES = {"%": "%25", "?": "%3F", "#": "%23"}
_TO_ESCAPE = re.compile(r"[%?#]")
_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PATTERN_FORBIDDEN = re.compile(r"[%?#\\\x00-\x1f\x7f-\x9f]")


def _percent_decode(raw: str) -> bytes | None:
    data = raw.encode("utf-8", "surrogatepass")
    if b"%" not in data:
        return data
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if byte != 0x25:
            out.append(byte)
            i += 1
            continue
        # A stray "%" is ambiguous (upstreams disagree about it), so refuse it.
        if i + 2 >= n or data[i + 1] not in _HEX or data[i + 2] not in _HEX:
            return None
        out.append(int(data[i + 1 : i + 3], 16))
        i += 3
    return bytes(out)


_MEMO_SIZE = 4096
"""Recently normalised paths kept per process (cleared when full: the paths are the clients')."""
_MEMO_MAX_LENGTH = 256
"""Longer paths are normalised every time rather than kept."""
_memo: dict[str, str | None] = {}


def normalize_path(raw: str) -> str | None:
    """Canonical form of a request path, or ``None`` when it must be refused (400).

    Strips the query and fragment, percent-decodes once, resolves ``//``, ``.``
    and ``..`` (never above the root) and drops a trailing ``/.``; a trailing
    slash is kept. Refused: longer than ``MAX_PATH_LENGTH``, malformed
    percent-escapes, invalid UTF-8 or control characters after decoding, and
    anything not starting with ``/``, before or after decoding (absolute-form
    targets are split by the caller).

    The function is pure, so the results for recent short paths are remembered.
    """
    cut = len(raw)
    for mark in ("?", "#"):
        pos = raw.find(mark)
        if pos != -1 and pos < cut:
            cut = pos
    path = raw[:cut] if cut < len(raw) else raw
    if cut > _MEMO_MAX_LENGTH:
        return _normalize(path)
    try:
        return _memo[path]
    except KeyError:
        pass
    result = _normalize(path)
    if len(_memo) >= _MEMO_SIZE:
        _memo.clear()
    _memo[path] = result
    return result


def _normalize(raw: str) -> str | None:
    """`normalize_path` of a path without query or fragment."""
    if len(raw) > MAX_PATH_LENGTH or not raw.startswith("/"):
        return None
    data = _percent_decode(raw)
    if data is None:
        return None
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not decoded.startswith("/") or _CONTROL.search(decoded):
        return None
    parts = decoded.split("/")
    trailing_slash = parts[-1] == ""
    segments: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if segments:
                segments.pop()
            continue
        segments.append(part)
    if not segments:
        return "/"
    path = "/" + "/".join(segments) + ("/" if trailing_slash else "")
    return _TO_ESCAPE.sub(lambda m: _ESCAPES[m.group()], path)


def unescape_segment(segment: str) -> str:
    """Undo the escaping ``normalize_path`` keeps in a segment (for captures)."""
    return unquote(segment) if "%" in segment else segment


def path_segments(path: str) -> list[str]:
    """Segments of a normalised path; a trailing slash is not significant for matching."""
    segments = path.split("/")[1:]
    if segments and segments[-1] == "":
        segments.pop()
    return segments


def normalize_host(raw: str) -> str:
    """Host for matching: lower-cased, port and trailing dot removed (``[v6]`` kept)."""
    host = raw.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    name, colon, port = host.rpartition(":")
    if colon and name and ":" not in name and (port == "" or port.isdigit()):
        host = name
    return host.rstrip(".")


def normalize_method(raw: str) -> str:
    """Method for matching: upper-cased, whatever case the request or file used."""
    return raw.upper()


class PatternSegment(NamedTuple):
    """One segment of a compiled path pattern."""

    kind: Literal["literal", "star", "globstar", "capture"]
    """``star`` is ``*`` (one segment), ``globstar`` is ``**`` (zero or more)."""
    value: str = ""
    """The literal text, or the capture name."""


def parse_pattern(pattern: str) -> tuple[PatternSegment, ...]:
    """Split a rule path pattern into segments; ``ValueError`` explains a bad one.

    A segment is exactly one of: literal text, ``*``, ``**`` or ``{name}``. A
    trailing slash is ignored, like in request paths.
    """
    if not pattern.startswith("/"):
        raise ValueError("must start with '/'")
    if _PATTERN_FORBIDDEN.search(pattern):
        raise ValueError(
            "must not contain '%', '?', '#', '\\' or control characters "
            "(patterns match the decoded path; write it decoded)"
        )
    parts = pattern[1:].split("/")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if parts == [""]:
        return ()
    segments: list[PatternSegment] = []
    names: set[str] = set()
    for part in parts:
        if part == "":
            raise ValueError("empty segment ('//')")
        if part in (".", ".."):
            raise ValueError(f"segment {part!r} never matches a normalised path")
        if part == "*":
            segments.append(PatternSegment("star"))
        elif part == "**":
            segments.append(PatternSegment("globstar"))
        elif capture := _CAPTURE.fullmatch(part):
            name = capture.group(1)
            if name in names:
                raise ValueError(f"captures {{{name}}} twice")
            names.add(name)
            segments.append(PatternSegment("capture", name))
        elif any(ch in part for ch in "*{}"):
            raise ValueError(
                f"segment {part!r} mixes literal text and wildcards; a segment is "
                "either literal, '*', '**' or '{name}'"
            )
        else:
            segments.append(PatternSegment("literal", part))
    return tuple(segments)


def pattern_captures(segments: tuple[PatternSegment, ...]) -> frozenset[str]:
    """Names captured by a parsed pattern."""
    return frozenset(s.value for s in segments if s.kind == "capture")
