"""`safe_redirect`: the open-redirect table (CONTRACT §5, issue item 5)."""

from __future__ import annotations

import pytest

from auth_service.errors import BadRequest
from auth_service.oidc.redirects import MAX_REDIRECT_LENGTH, redirect_target, safe_redirect

ALLOWED = ("app.test", "*.example.com")
PUBLIC = "https://auth.example.org"

REFUSED = [
    "//evil.com",
    "//evil.com/path",
    "\\\\evil.com",
    "/\\evil.com",
    "\\/evil.com",
    "/\\/evil.com",
    "https:evil.com",
    "http:evil.com",
    "https:/evil.com",
    "http:///evil.com",
    "http://app.test@evil.com",
    "https://app.test:443@evil.com/",
    "https://user:pass@app.test/",
    "http://evil.com\\@app.test",
    "https://evil.com#@app.test",
    "https://evil.com?@app.test",
    "https://app.test.evil.com/",
    "https://evilexample.com/",
    "https://example.com/",
    "https://evil.com/",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "ftp://app.test/",
    "/path\r\nSet-Cookie: x=1",
    "/path\x00",
    "/pa\tth",
    "\x01/path",
    "/%2F%2Fevil.com",
    "/%5cevil.com",
    "https://app.test%2F@evil.com/",
    "https://%65vil.com/",
    "https://app.tést/",
    "/caf\u00e9",
    "https://[::1]/",
    "https://app.test:99999/",
    "https://app.test:-1/",
    "https://app.test:0x50/",
    "/%2f%2fevil.com",
    "/\uff0fevil.com",
    "\uff0f\uff0fevil.com",
    "https://evil.com\uff0f@app.test/",
    "/x\r\n",
    "/x\u2028y",
    "http://evil.com%00.app.test/",
    "https://app.test\\@evil.com/",
    "/" + "a" * MAX_REDIRECT_LENGTH,
    "",
    "orders/1",
    "app.test/orders",
]

ACCEPTED = [
    ("/", "/"),
    ("/orders/1?x=y&z=%20#frag", "/orders/1?x=y&z=%20#frag"),
    ("https://app.test/orders/1", "https://app.test/orders/1"),
    ("http://app.test:8080/x", "http://app.test:8080/x"),
    ("HTTPS://APP.TEST/x", "HTTPS://APP.TEST/x"),
    ("https://shop.example.com/cart", "https://shop.example.com/cart"),
    ("https://a.b.example.com/", "https://a.b.example.com/"),
    ("https://auth.example.org/auth/userinfo", "https://auth.example.org/auth/userinfo"),
]


@pytest.mark.parametrize("value", REFUSED)
def test_refused(value: str) -> None:
    """Every payload that could leave for another origin (or break a header) is refused."""
    assert safe_redirect(value, ALLOWED, PUBLIC) is None


@pytest.mark.parametrize(("value", "expected"), ACCEPTED)
def test_accepted(value: str, expected: str | None) -> None:
    """Own-origin paths, the public host and allowed hosts (any case) pass unchanged."""
    assert safe_redirect(value, ALLOWED, PUBLIC) == expected


def test_none_is_refused() -> None:
    """A missing value is not a redirect target; callers choose their own default."""
    assert safe_redirect(None, ALLOWED, PUBLIC) is None


def test_at_least_twenty_payloads() -> None:
    """The issue asks for at least 20 refused payloads."""
    assert len(REFUSED) >= 20


def test_redirect_target_absolute_default_and_400() -> None:
    """`redirect_target`: relative → absolute on the public URL, none → the public URL,
    a refused value → 400 ``invalid_redirect`` (never a value a header cannot carry)."""
    assert redirect_target("/orders/1", ALLOWED, PUBLIC) == f"{PUBLIC}/orders/1"
    assert redirect_target(None, ALLOWED, PUBLIC) == f"{PUBLIC}/"
    assert redirect_target("", ALLOWED, PUBLIC) == f"{PUBLIC}/"
    assert redirect_target("https://app.test/x", ALLOWED, PUBLIC) == "https://app.test/x"
    for value in REFUSED:
        if not value:
            continue
        with pytest.raises(BadRequest) as caught:
            redirect_target(value, ALLOWED, PUBLIC)
        assert caught.value.reason == "invalid_redirect"
