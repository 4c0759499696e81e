"""Reading the gateway's description of the original request (`forward_auth.gateways`)."""

from __future__ import annotations

import pytest

from auth_service.forward_auth.gateways import Dialect, GatewayError, read_request
from auth_service.policy.paths import PathRefusal, canonical_path

NGINX = {b"x-original-url": b"http://app.test/orders/1", b"x-original-method": b"GET"}


@pytest.mark.parametrize(
    "name", [b"x-auth-user", b"x-auth-foo", b"x_auth_user", b"x-auth_subject", b"x_auth-roles"]
)
def test_a_client_identity_header_the_gateway_left_in_is_refused(name: bytes) -> None:
    """Any X-Auth-* (or underscore spelling) in the check: the gateway failed to strip it."""
    with pytest.raises(GatewayError, match="X-Auth-"):
        read_request(Dialect.AUTH_REQUEST, {}, {**NGINX, name: b"mallory"})


@pytest.mark.parametrize("name", [b"x-authorization", b"x-auth", b"authorization", b"x-authz-id"])
def test_other_header_names_are_not_identity_headers(name: bytes) -> None:
    """Only the x-auth- / x_auth_ prefix is reserved; lookalikes pass."""
    req = read_request(Dialect.AUTH_REQUEST, {}, {**NGINX, name: b"v"})
    assert (req.host, req.target) == ("app.test", "/orders/1")


@pytest.mark.parametrize(
    ("dialect", "headers", "scope"),
    [
        (Dialect.AUTH_REQUEST, {b"x-original-url": b"http://app.test/caf\xc3\xa9/x"}, {}),
        (
            Dialect.FORWARD_AUTH,
            {b"x-forwarded-host": b"app.test", b"x-forwarded-uri": b"/caf\xc3\xa9/x"},
            {},
        ),
        (
            Dialect.EXT_AUTHZ,
            {b"host": b"app.test"},
            {"method": "GET", "raw_path": b"/authz/ext-authz/caf\xc3\xa9/x", "path": ""},
        ),
    ],
)
def test_raw_non_ascii_bytes_become_percent_escapes(
    dialect: Dialect, headers: dict[bytes, bytes], scope: dict[str, object]
) -> None:
    """Raw UTF-8 in the original path reads as its percent-encoding, not as latin-1 text."""
    assert read_request(dialect, scope, headers).target == "/caf%C3%A9/x"


def test_raw_invalid_utf8_is_an_invalid_path() -> None:
    """A raw byte that is not UTF-8 stays a byte: the policy refuses it as invalid_path."""
    req = read_request(Dialect.AUTH_REQUEST, {}, {b"x-original-url": b"http://app.test/caf\xe9"})
    refusal = canonical_path(req.target)
    assert isinstance(refusal, PathRefusal) and refusal.reason == "invalid_path"


def test_remembered_answers_stay_small_whatever_is_asked() -> None:
    """Long targets and refusals are checked each time, never kept: a client cannot fill
    the worker's memory through the memos."""
    from auth_service.forward_auth import gateways

    gateways._checked_memo.clear()
    gateways._url_memo.clear()
    long_url = b"http://app.test/" + b"\xff" * 4000
    req = read_request(Dialect.AUTH_REQUEST, {}, {b"x-original-url": long_url})
    assert req.target == "/" + "%FF" * 4000
    for bad in (b"http://app.test/a b", b"ftp://app.test/", b"http://[bad/"):
        with pytest.raises(GatewayError):
            read_request(Dialect.AUTH_REQUEST, {}, {b"x-original-url": bad})
    assert not gateways._checked_memo and not gateways._url_memo
    short = read_request(Dialect.AUTH_REQUEST, {}, {b"x-original-url": b"http://App.Test:8080/x"})
    assert (short.policy_host, short.audience) == ("app.test", "app.test:8080")
    assert len(gateways._url_memo) == 1
