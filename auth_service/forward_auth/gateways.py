"""The three front doors: how each gateway tells us about the original request.

* ``/authz/forward-auth`` (Traefik, Caddy): ``X-Forwarded-Method/-Proto/-Host/-Uri``
* ``/authz/auth-request`` (nginx ``auth_request``): ``X-Original-Method``, ``X-Original-URL``
* ``/authz/ext-authz/<path>`` (Envoy ``ext_authz``, HTTP service): its own method,
  ``Host`` and the path after the prefix

Only translation happens here; a request we cannot read is a `GatewayError` (400).
So is a check that still carries a client-sent ``X-Auth-*`` header (or its
underscore spelling ``X_Auth_*``): the gateway must strip them, and one that did
not (stock nginx strips by name only, so a header added later is missed) fails
closed here instead of letting the header reach the upstream.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

__all__ = ("Dialect", "ForwardedRequest", "GatewayError", "dialect_for", "read_request")

EXT_AUTHZ_PREFIX = "/authz/ext-authz"


class Dialect(Enum):
    """Which front door a check came through; decides how a browser is redirected."""

    FORWARD_AUTH = "/authz/forward-auth"
    AUTH_REQUEST = "/authz/auth-request"
    EXT_AUTHZ = "/authz/ext-authz"


class GatewayError(Exception):
    """The gateway's description of the original request is missing or malformed."""


@dataclass(slots=True)
class ForwardedRequest:
    """The original request as the gateway describes it."""

    method: str
    scheme: str
    host: str
    target: str
    """Path with query, as sent by the client (not yet normalised)."""
    headers: Mapping[bytes, bytes]

    @property
    def url(self) -> str:
        """The original absolute URL (the ``rd`` of login redirects)."""
        return f"{self.scheme}://{self.host}{self.target}"


def dialect_for(path: str) -> Dialect | None:
    """The dialect of a request path under ``/authz``."""
    if path == "/authz/forward-auth":
        return Dialect.FORWARD_AUTH
    if path == "/authz/auth-request":
        return Dialect.AUTH_REQUEST
    if path == EXT_AUTHZ_PREFIX or path.startswith(EXT_AUTHZ_PREFIX + "/"):
        return Dialect.EXT_AUTHZ
    return None


def _text(headers: Mapping[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    text = value.decode("latin-1").strip()
    return text or None


_HOST = re.compile(r"[A-Za-z0-9.\-:\[\]_]{1,255}")
"""A host (name, IPv4, ``[IPv6]``) with an optional port; IDNs arrive punycoded."""
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_IDENTITY_PREFIXES = frozenset((b"x-auth-", b"x-auth_", b"x_auth-", b"x_auth_"))
"""Header name prefixes the gateway strips from client requests (lower case, as in ASGI)."""


def _unstripped_identity_header(headers: Mapping[bytes, bytes]) -> bool:
    return any(name[:7] in _IDENTITY_PREFIXES for name in headers)


def read_request(
    dialect: Dialect, scope: Mapping[str, Any], headers: Mapping[bytes, bytes]
) -> ForwardedRequest:
    """Build the original request from ``scope`` and its headers (lower-case names)."""
    if _unstripped_identity_header(headers):
        raise GatewayError(
            "the check carries a client X-Auth-* header: the gateway must strip them"
        )
    if dialect is Dialect.FORWARD_AUTH:
        method = _text(headers, b"x-forwarded-method") or "GET"
        scheme = (_text(headers, b"x-forwarded-proto") or "https").lower()
        host = _text(headers, b"x-forwarded-host") or _text(headers, b"host")
        target = _text(headers, b"x-forwarded-uri")
        if target is None:
            raise GatewayError("X-Forwarded-Uri is missing")
    elif dialect is Dialect.AUTH_REQUEST:
        method = _text(headers, b"x-original-method") or "GET"
        url = _text(headers, b"x-original-url")
        if url is None:
            raise GatewayError("X-Original-URL is missing")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise GatewayError("X-Original-URL is not an absolute http(s) URL")
        scheme, host = parts.scheme, parts.netloc.rpartition("@")[2]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if parts.fragment:  # never sent by clients: kept so that the policy can refuse it
            target += f"#{parts.fragment}"
    else:
        method = scope["method"]
        scheme = (_text(headers, b"x-forwarded-proto") or scope.get("scheme") or "http").lower()
        host = _text(headers, b"host")
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
        target = path[len(EXT_AUTHZ_PREFIX) :] or "/"
        query = scope.get("query_string", b"")
        if query:
            target += "?" + query.decode("latin-1")
    if host is None or _HOST.fullmatch(host) is None:
        raise GatewayError("the original host is missing or malformed")
    if scheme not in ("http", "https"):
        raise GatewayError("the original scheme must be http or https")
    if not target.startswith("/"):
        raise GatewayError("the original URI must start with /")
    if _CONTROL_OR_SPACE.search(target) is not None:
        raise GatewayError("the original URI contains control characters or spaces")
    return ForwardedRequest(method.upper(), scheme, host, target, headers)
