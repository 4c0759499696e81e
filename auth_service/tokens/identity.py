"""The authenticated caller as the forward-auth layer uses it, built once per token.

`Authenticated` wraps the verified `Claims` (which the policy engine reads as its
`Subject`) with the identity headers precomputed, so a cached token costs no
formatting work per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from auth_service.verifier import MISSING, Claims

__all__ = ("Authenticated", "header_value", "identity_headers")

# Printable ASCII minus nothing that could end a header; everything else is percent-encoded,
# so a claim can never inject a header (CR/LF) or break latin-1 encoding (non-ASCII names).
_SAFE = " !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~"


def header_value(value: object) -> str:
    """A claim value rendered safely for an HTTP header."""
    if isinstance(value, list | tuple | set | frozenset):
        text = ",".join(sorted(str(v) for v in value))
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    if text.isascii() and text.isprintable():  # the common case needs no escaping
        return text.replace("%", "%25")
    return quote(text, safe=_SAFE)


def identity_headers(claims: Claims, claim_headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """The identity headers of CONTRACT §4 (all but ``X-Auth-MFA`` and the assertion)."""
    headers: list[tuple[bytes, bytes]] = [
        (b"x-auth-subject", header_value(claims.sub or "").encode()),
        (b"x-auth-user", header_value(claims.username or "").encode()),
    ]
    if claims.email:
        headers.append((b"x-auth-email", header_value(claims.email).encode()))
    headers.append((b"x-auth-roles", header_value(sorted(claims.realm_roles)).encode()))
    for path, name in claim_headers.items():
        value = claims.claim(path)
        if value is not MISSING and value is not None:
            headers.append((name.lower().encode(), header_value(value).encode()))
    return headers


@dataclass(slots=True, eq=False)
class Authenticated:
    """A verified access token: its claims, precomputed headers and cache bookkeeping."""

    claims: Claims
    headers: list[tuple[bytes, bytes]]
    key: bytes
    """Hash of the token (the cache key; the token itself is not kept)."""
    attributes: dict[str, object]
    """Configured custom attributes by claim path (for assertions and introspection)."""
    assertions: dict[tuple[str, bool], tuple[str, float]] = field(default_factory=dict)
    """(audience, mfa) → (signed assertion, reuse-until time)."""

    @property
    def subject(self) -> str:
        """``sub`` (empty for a token without one)."""
        return self.claims.sub or ""

    @property
    def realm_roles(self) -> frozenset[str]:
        """Realm roles."""
        return self.claims.realm_roles

    @property
    def exp(self) -> float:
        """Token expiry."""
        return self.claims.exp

    @property
    def raw(self) -> Mapping[str, Any]:
        """All claims."""
        return self.claims.raw
