"""Reading the gateway's description of the original request (`forward_auth.gateways`)."""

from __future__ import annotations

import pytest

from auth_service.forward_auth.gateways import Dialect, GatewayError, read_request

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
