"""Request normalisation: paths (table and property), hosts, methods, pattern parsing."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth_service.policy import (
    MAX_PATH_LENGTH,
    PathParameters,
    PathRefusal,
    canonical_path,
    normalize_host,
    normalize_method,
    normalize_path,
)
from auth_service.policy.paths import PatternSegment, parse_pattern, path_segments


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/admin", "/admin"),
        ("/public/../admin", "/admin"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%2E%2E/admin", "/admin"),
        ("/public/.%2e/admin", "/admin"),
        ("//admin", "/admin"),
        ("/a//b///c", "/a/b/c"),
        ("/admin/.", "/admin"),
        ("/admin/./x", "/admin/x"),
        ("/admin/", "/admin/"),
        ("/admin/./", "/admin/"),
        ("/..", "/"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/b/../../..", "/"),
        ("/docs?x=/../admin", "/docs"),
        ("/a%20b", "/a b"),
        ("/caf%C3%A9", "/café"),
        ("/café", "/café"),
        ("/a%25b", "/a%25b"),
        ("/a%3Fb", "/a%3Fb"),
        ("/a%23b", "/a%23b"),
        ("/%252e%252e/admin", "/%252e%252e/admin"),
        ("/...", "/..."),
    ],
)
def test_normalize_path_table(raw: str, expected: str) -> None:
    """Decoding, dot segments and duplicate slashes resolve to the canonical path."""
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "/a%00b",
        "/public%2F..%2Fadmin",
        "/files/a%2Fb",
        "/a;b",
        "/a\\b",
        "/a%0d%0aSet-Cookie:x",
        "/a%0Ab",
        "/a%09b",
        "/a%7fb",
        "/a\x00b",
        "/a\nb",
        "/a%c2%85b",
        "/a%ffb",
        "/a%c3",
        "/a%",
        "/a%2",
        "/a%zz",
        "",
        "admin",
        "%2Fadmin",
        "http://evil.example/admin",
        "/" + "a" * MAX_PATH_LENGTH,
    ],
)
def test_normalize_path_refuses_invalid_input(raw: str) -> None:
    """Control characters, bad escapes, invalid UTF-8, relative or over-long paths give None."""
    assert normalize_path(raw) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("/public/..;/admin/users", "ambiguous_path"),
        ("/admin;x=1/users", "ambiguous_path"),
        ("/payments;x/1", "ambiguous_path"),
        ("/;/admin", "ambiguous_path"),
        ("/public/..\\admin", "ambiguous_path"),
        ("/public\\..\\admin", "ambiguous_path"),
        ("/public/%2e%2e%2fadmin", "ambiguous_path"),
        ("/public%2Fadmin", "ambiguous_path"),
        ("/public/..%5Cadmin", "ambiguous_path"),
        ("/public/..%5cadmin", "ambiguous_path"),
        ("/public/..%3B/admin", "ambiguous_path"),
        ("/admin%3bx=1/users", "ambiguous_path"),
        ("/admin%00/users", "ambiguous_path"),
        ("/admin%00", "ambiguous_path"),
        ("/docs#frag", "ambiguous_path"),
        ("/public/x#/../../admin", "ambiguous_path"),
        ("/a%zz", "invalid_path"),
        ("/a%", "invalid_path"),
        ("/a%ff", "invalid_path"),
        ("/a%c3", "invalid_path"),
        ("/a%0a", "invalid_path"),
        ("admin", "invalid_path"),
        ("/" + "a" * MAX_PATH_LENGTH, "invalid_path"),
    ],
)
def test_canonical_path_refusal_reasons(raw: str, reason: str) -> None:
    """Ambiguous input (parameters, backslashes, encoded separators, NUL) vs undecodable input."""
    refused = canonical_path(raw)
    assert isinstance(refused, PathRefusal)
    assert refused.reason == reason
    assert raw not in refused.detail


def test_query_and_fragment_are_not_part_of_the_path() -> None:
    """A ';', '\\' or '#' after '?' is not in the path and refuses nothing."""
    assert canonical_path("/docs?a=1;b=2&c=\\") == "/docs"
    assert canonical_path("/docs?x#y;z") == "/docs"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/public/..;/admin/users", "/admin/users"),
        ("/admin;x=1/users", "/admin/users"),
        ("/payments;x/1", "/payments/1"),
        ("/tenants/t-002/..;/t-001/orders", "/tenants/t-001/orders"),
        ("/a;jsessionid=1", "/a"),
        ("/a/;x/b", "/a/b"),
        ("/;x/..;y/admin", "/admin"),
        ("/a/b;x=%2F", "/a/b"),
        ("/a/;x", "/a/"),
        ("/a/b", "/a/b"),
    ],
)
def test_strip_mode_removes_parameters_before_normalising(raw: str, expected: str) -> None:
    """path_parameters = "strip": ';...' of each raw segment goes first, then '..' resolves."""
    assert canonical_path(raw, "strip") == expected


@pytest.mark.parametrize("raw", ["/a%3Bx/b", "/a\\b;x", "/a%2Fb;x", "/a%00;x"])
def test_strip_mode_still_refuses_encoded_separators_and_backslashes(raw: str) -> None:
    """Only raw ';' parameters are stripped; encoded ones and backslashes stay ambiguous."""
    refused = canonical_path(raw, "strip")
    assert isinstance(refused, PathRefusal)
    assert refused.reason == "ambiguous_path"


def test_normalize_path_length_limit_is_inclusive_and_ignores_the_query() -> None:
    """A path of exactly MAX_PATH_LENGTH characters passes; the query does not count."""
    path = "/" + "a" * (MAX_PATH_LENGTH - 1)
    assert normalize_path(path + "?" + "q" * MAX_PATH_LENGTH) == path


_SEGMENT_PARTS = st.sampled_from(
    [
        "",
        ".",
        "..",
        "a",
        "B",
        "%2e",
        "%2E%2e",
        "%2F",
        "%2f..",
        ";",
        ";x=1",
        "\\",
        "%5C",
        "%3b",
        "%00",
        "%25",
        "%252e",
        "%3F",
        "%23",
        "é",
        "%C3%A9",
        "x y",
    ]
)
_PATHS = st.lists(st.lists(_SEGMENT_PARTS, max_size=3).map("".join), max_size=12).map(
    lambda segments: "/" + "/".join(segments)
)


@given(
    st.one_of(_PATHS, st.text(max_size=60).map(lambda text: "/" + text)),
    st.sampled_from(["refuse", "strip"]),
)
def test_normalize_path_is_idempotent_and_canonical(raw: str, mode: PathParameters) -> None:
    """Normalising twice changes nothing, and no dot segment or empty segment remains."""
    once = canonical_path(raw, mode)
    if isinstance(once, PathRefusal):
        return
    assert canonical_path(once, mode) == once
    assert canonical_path(once, "refuse") == once
    assert ";" not in once and "\\" not in once
    assert once.startswith("/")
    for bad in ("/../", "/./", "//"):
        assert bad not in once
    assert not once.endswith(("/..", "/.")) or once == "/"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("API.Example.Test", "api.example.test"),
        ("api.example.test:8443", "api.example.test"),
        ("api.example.test.", "api.example.test"),
        ("api.example.test.:80", "api.example.test"),
        ("[::1]:8080", "[::1]"),
        ("[FE80::1]", "[fe80::1]"),
        ("  host  ", "host"),
        ("", ""),
    ],
)
def test_normalize_host(raw: str, expected: str) -> None:
    """Hosts are lower-cased with port and trailing dot removed."""
    assert normalize_host(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [("get", "GET"), ("Post", "POST"), ("HEAD", "HEAD")])
def test_normalize_method(raw: str, expected: str) -> None:
    """Methods compare upper-case."""
    assert normalize_method(raw) == expected


@pytest.mark.parametrize(
    ("pattern", "segments"),
    [
        ("/", ()),
        ("/**", (PatternSegment("globstar"),)),
        ("/a/", (PatternSegment("literal", "a"),)),
        (
            "/tenants/{tenant}/*/**",
            (
                PatternSegment("literal", "tenants"),
                PatternSegment("capture", "tenant"),
                PatternSegment("star"),
                PatternSegment("globstar"),
            ),
        ),
    ],
)
def test_parse_pattern(pattern: str, segments: tuple[PatternSegment, ...]) -> None:
    """Patterns split into literal, star, globstar and capture segments; trailing / is dropped."""
    assert parse_pattern(pattern) == segments


@pytest.mark.parametrize(
    ("path", "segments"), [("/", []), ("/a/b", ["a", "b"]), ("/a/b/", ["a", "b"])]
)
def test_path_segments_ignore_a_trailing_slash(path: str, segments: list[str]) -> None:
    """Matching treats ``/a/`` like ``/a``."""
    assert path_segments(path) == segments
