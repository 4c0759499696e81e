"""Request normalisation (path, host, method) and path-pattern parsing.

Decisions are made on one canonical reading of the path, and only when every
upstream we know of would read it the same way (CONTRACT §3). Paths that
servers read differently are refused before any rule is tried:

* ``ambiguous_path``: a raw ``#`` before the query (cut off by some, routed
  as part of the path by others), a ``;`` path parameter (Tomcat, Jetty and Spring drop
  ``;...`` and read ``..;`` as ``..``), a backslash (read as ``/`` by some),
  or an encoded ``/``, ``\\``, ``;`` or NUL inside a segment (``%2F``, ``%5C``,
  ``%3B``, ``%00``: decoded by some before routing, kept by others);
* ``invalid_path``: input that does not decode (a stray ``%``, invalid UTF-8),
  control characters, a relative or over-long path.

With ``[defaults] path_parameters = "strip"`` the ``;...`` of every raw
segment is removed instead (as Tomcat does, before decoding), so ``/a/..;/b``
is decided as ``/b``. Everything else is percent-decoded once, then ``//``,
``.`` and ``..`` are resolved (never above the root); encoded dots (``%2e``)
are dots, as nginx, Envoy and Tomcat all read them.

The result is canonical: ``%``, ``?`` and ``#`` stay escaped (``%25``, ``%3F``,
``%23``) so that it is itself a valid path and normalising it again changes
nothing. Pattern literals may not contain those characters (nor ``;``), and
captured segments are unescaped before they are compared with claims.

Case is the compiled policy's business (``path_case``); the folds it reads a
path with are defined here, next to the rest of the normalisation.
"""

import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple
from urllib.parse import unquote

MAX_PATH_LENGTH = 8192
"""Longest raw path (before the query) accepted, in characters."""

PathParameters = Literal["refuse", "strip"]
"""``[defaults] path_parameters``: refuse ``;`` in paths, or strip ``;...`` from each segment."""
PathCase = Literal["sensitive", "insensitive"]
"""``[defaults] path_case``: how pattern literals compare with path segments."""
PathReason = Literal["invalid_path", "ambiguous_path"]


@dataclass(frozen=True, slots=True)
class PathRefusal:
    """Why a request path is refused (400) before any rule is tried."""

    reason: PathReason
    """``invalid_path`` (does not decode) or ``ambiguous_path`` (upstreams read it differently)."""
    detail: str
    """A fixed sentence for the problem body; never quotes the path."""


NOT_ABSOLUTE = PathRefusal("invalid_path", "the original path must start with '/'")
TOO_LONG = PathRefusal("invalid_path", "the original path is too long")
BAD_ESCAPE = PathRefusal("invalid_path", "the original path has an invalid percent-escape")
BAD_UTF8 = PathRefusal("invalid_path", "the original path does not decode as UTF-8")
CONTROL = PathRefusal("invalid_path", "the original path contains control characters")
PARAMETER = PathRefusal(
    "ambiguous_path", "the original path is ambiguous: it contains a ';' path parameter"
)
BACKSLASH = PathRefusal("ambiguous_path", "the original path is ambiguous: it contains '\\'")
ENCODED_SEPARATOR = PathRefusal(
    "ambiguous_path",
    "the original path is ambiguous: a segment contains an encoded '/', '\\', ';' or NUL",
)
FRAGMENT = PathRefusal(
    "ambiguous_path", "the original path is ambiguous: it contains '#' (a fragment)"
)
CASE = PathRefusal(
    "ambiguous_path",
    "the original path is ambiguous: a case-insensitive upstream would route it elsewhere",
)

_HEX = frozenset(b"0123456789abcdefABCDEF")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SEPARATORS = re.compile(r"[/\\;\x00]")
_ESCAPES = {"%": "%25", "?": "%3F", "#": "%23"}
_TO_ESCAPE = re.compile(r"[%?#]")
_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PATTERN_FORBIDDEN = re.compile(r"[%?#;\\\x00-\x1f\x7f-\x9f]")


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
"""Recently normalised paths kept per process and mode (cleared when full: clients choose them)."""
_MEMO_MAX_LENGTH = 256
"""Longer paths are normalised every time rather than kept."""
_memos: dict[PathParameters, dict[str, str | PathRefusal]] = {"refuse": {}, "strip": {}}


def canonical_path(raw: str, parameters: PathParameters = "refuse") -> str | PathRefusal:
    """Canonical form of a request target's path, or why it is refused (400).

    Strips the query (a ``#`` before it is refused); ``;`` parameters are refused or, with
    ``parameters="strip"``, removed from every raw segment; then each segment
    is percent-decoded once and ``//``, ``.`` and ``..`` are resolved (never
    above the root); a trailing ``/.`` is dropped and a trailing slash kept.
    Absolute-form targets are split by the caller.

    The function is pure, so the results for recent short paths are remembered.
    """
    query = raw.find("?")
    cut = len(raw) if query == -1 else query
    fragment = raw.find("#", 0, cut)
    if fragment != -1:
        # Clients never send a fragment; Go's and other servers keep "#..." in the path.
        return FRAGMENT
    path = raw[:cut] if cut < len(raw) else raw
    if cut > _MEMO_MAX_LENGTH:
        return _normalize(path, parameters)
    memo = _memos[parameters]
    try:
        return memo[path]
    except KeyError:
        pass
    result = _normalize(path, parameters)
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[path] = result
    return result


def normalize_path(raw: str) -> str | None:
    """`canonical_path` with the default settings; ``None`` for any refused path."""
    result = canonical_path(raw)
    return result if isinstance(result, str) else None


def _strip_parameters(path: str) -> str:
    # Tomcat's reading: ";..." up to the next "/" goes, before decoding.
    return "/".join(part.partition(";")[0] for part in path.split("/"))


def _normalize(raw: str, parameters: PathParameters) -> str | PathRefusal:
    """`canonical_path` of a path without query or fragment."""
    if len(raw) > MAX_PATH_LENGTH:
        return TOO_LONG
    if not raw.startswith("/"):
        return NOT_ABSOLUTE
    if "\\" in raw:
        return BACKSLASH
    if ";" in raw:
        if parameters == "refuse":
            return PARAMETER
        raw = _strip_parameters(raw)
    parts = raw.split("/")
    trailing_slash = parts[-1] == ""
    segments: list[str] = []
    for part in parts:
        if "%" in part or not part.isascii():
            data = _percent_decode(part)
            if data is None:
                return BAD_ESCAPE
            try:
                part = data.decode("utf-8")
            except UnicodeDecodeError:
                return BAD_UTF8
            if _SEPARATORS.search(part):
                return ENCODED_SEPARATOR
        if _CONTROL.search(part):
            return CONTROL
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


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_fold(text: str) -> str:
    """Lower-case ``A``-``Z`` only, as most case-insensitive routers do."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


CASE_FOLDS: tuple[Callable[[str], str], ...] = (ascii_fold, str.lower, str.upper)
"""The ways case-insensitive upstreams compare: ASCII only, Unicode lower-case, and
upper-case (.NET/IIS ordinal-ignore-case: dotless ``\u0131`` is ``I``). None of them changes the
number of segments, so a capture can be read back from the original path."""


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
            "must not contain '%', '?', '#', ';', '\\' or control characters "
            "(patterns match the decoded path, without ';' parameters; write it decoded)"
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
