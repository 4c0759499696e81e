"""Which credential a request presents: the one precedence of every endpoint (CONTRACT §4).

1. ``Authorization: Bearer <token>``: the token decides alone; a session cookie
   sent alongside is not looked at (an API client's explicit credential wins
   over an ambient browser one).
2. Otherwise this service's session cookie, where the endpoint accepts sessions.
3. Otherwise no credential.

An ``Authorization`` header of another scheme (``Basic`` meant for the
upstream application) is not a credential of this service: it falls through
to the cookie like no header at all. Forward-auth (`auth_service.forward_auth`)
and the caller guard of the service's own endpoints
(`auth_service.tokens.guards`) both call `presented_credential`; pure, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ("Presented", "cookie_value", "presented_credential")

CredentialKind = Literal["bearer", "session"]


@dataclass(frozen=True, slots=True)
class Presented:
    """The credential a request carries, not yet checked."""

    kind: CredentialKind
    value: str
    """The bearer token (may be empty: ``Bearer`` with nothing after it) or the cookie value."""


def cookie_value(header: bytes, name: bytes) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header (the first non-empty one)."""
    for part in header.split(b";"):
        key, sep, value = part.strip().partition(b"=")
        if sep and key == name and value:
            return value.decode("latin-1")
    return None


def presented_credential(
    authorization: bytes | None, cookie: bytes | None, cookie_name: bytes | None
) -> Presented | None:
    """The credential that counts, by the precedence above.

    Args:
        authorization: the raw ``Authorization`` header, if any.
        cookie: the raw ``Cookie`` header, if any.
        cookie_name: this service's session cookie; ``None`` where sessions are not accepted.
    """
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(b" ")
        if scheme.lower() == b"bearer":
            return Presented("bearer", token.strip().decode("latin-1"))
    if cookie is not None and cookie_name is not None:
        session_id = cookie_value(cookie, cookie_name)
        if session_id is not None:
            return Presented("session", session_id)
    return None
