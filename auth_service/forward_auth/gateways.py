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
from typing import Any, TypeVar
from urllib.parse import urlsplit

from auth_service.policy.paths import normalize_host

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
    policy_host: str
    """``host`` as the policy matches it (`normalize_host`)."""
    audience: str
    """``host`` lower-cased: the ``aud`` of ``X-Auth-Assertion``."""

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
    names = b"\n" + b"\n".join(headers)  # one C-level search instead of a loop in Python
    if b"\nx-auth" not in names and b"\nx_auth" not in names:  # (``authorization`` has "auth")
        return False
    return any(b"\n" + prefix in names for prefix in _IDENTITY_PREFIXES)


def _escape_non_ascii(target: str) -> str:
    """Raw bytes >= 0x80 of a target as ``%XX``: what upstreams read them as.

    Header bytes arrive as latin-1 text; percent-decoding that text as UTF-8 would read
    a raw ``/caf\xc3\xa9`` as ``/caf\u00c3\u00a9``, not the ``/caf\u00e9`` the upstream serves.
    """
    if target.isascii():
        return target
    try:
        data = target.encode("latin-1")
    except UnicodeEncodeError:  # a decoded ASGI path without raw_path
        data = target.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in data)


_MEMO_SIZE = 4096
Checked = tuple[str, str, str, str, str]
"""``(scheme, host, target, policy host, audience)`` of a readable original request."""
_checked_memo: dict[tuple[str, str | None, str], Checked | str] = {}
"""``(scheme, host, target)`` as given → as checked, or why they are refused."""
_url_memo: dict[bytes, Checked | str] = {}
"""``X-Original-URL`` values → ``(scheme, host, target)``, or why it is refused."""


K = TypeVar("K")
V = TypeVar("V")


_MEMO_LONGEST = 512
"""Longer targets and URLs are checked each time, not remembered: the memos hold at most
``_MEMO_SIZE`` small entries, whatever a client sends."""


def _remember(memo: dict[K, V], key: K, value: V) -> V:
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value
    return value


def _check(scheme: str, host: str | None, target: str) -> Checked | str:
    """The original request's scheme, host and target checked, or why they are refused.

    Pure, so the answers for recent values are remembered: gateways ask about the same
    URLs over and over.
    """
    key = (scheme, host, target)
    known = _checked_memo.get(key)
    if known is not None:
        return known
    found = _checked(scheme, host, target)
    if len(target) > _MEMO_LONGEST or len(host or "") > _MEMO_LONGEST or isinstance(found, str):
        return found  # refusals and long values are not kept
    return _remember(_checked_memo, key, found)


def _checked(scheme: str, host: str | None, target: str) -> Checked | str:
    if host is None or _HOST.fullmatch(host) is None:
        found: Checked | str = "the original host is missing or malformed"
    elif scheme not in ("http", "https"):
        found = "the original scheme must be http or https"
    elif not target.startswith("/"):
        found = "the original URI must start with /"
    else:
        escaped = _escape_non_ascii(target)
        if _CONTROL_OR_SPACE.search(escaped) is not None:
            found = "the original URI contains control characters or spaces"
        else:
            found = (scheme, host, escaped, normalize_host(host), host.lower())
    return found


def _original_url(url: bytes) -> Checked | str:
    """``X-Original-URL`` as ``(scheme, host, target)``, or why it is refused."""
    known = _url_memo.get(url)
    if known is not None:
        return known
    found = _parsed_url(url)
    if len(url) > _MEMO_LONGEST or isinstance(found, str):
        return found  # refusals and long values are not kept
    return _remember(_url_memo, url, found)


def _parsed_url(url: bytes) -> Checked | str:
    text = url.decode("latin-1").strip()
    if not text:
        return "X-Original-URL is missing"
    try:  # an unbalanced "[" or "]", or a port out of range, raises ValueError
        parts = urlsplit(text)
        parts.port  # noqa: B018
    except ValueError:
        return "X-Original-URL is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "X-Original-URL is not an absolute http(s) URL"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.fragment:  # never sent by clients: kept so that the policy can refuse it
        target += f"#{parts.fragment}"
    return _check(parts.scheme, parts.netloc.rpartition("@")[2], target)


def read_request(
    dialect: Dialect, scope: Mapping[str, Any], headers: Mapping[bytes, bytes]
) -> ForwardedRequest:
    """Build the original request from ``scope`` and its headers (lower-case names)."""
    if _unstripped_identity_header(headers):
        raise GatewayError(
            "the check carries a client X-Auth-* header: the gateway must strip them"
        )
    if dialect is Dialect.AUTH_REQUEST:
        method = _text(headers, b"x-original-method") or "GET"
        url = headers.get(b"x-original-url")
        if url is None:
            raise GatewayError("X-Original-URL is missing")
        checked = _original_url(url)
    elif dialect is Dialect.FORWARD_AUTH:
        method = _text(headers, b"x-forwarded-method") or "GET"
        scheme = (_text(headers, b"x-forwarded-proto") or "https").lower()
        host = _text(headers, b"x-forwarded-host") or _text(headers, b"host")
        target = _text(headers, b"x-forwarded-uri")
        if target is None:
            raise GatewayError("X-Forwarded-Uri is missing")
        checked = _check(scheme, host, target)
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
        checked = _check(scheme, host, target)
    if isinstance(checked, str):
        raise GatewayError(checked)
    scheme, host, target, policy_host, audience = checked
    return ForwardedRequest(method.upper(), scheme, host, target, headers, policy_host, audience)
