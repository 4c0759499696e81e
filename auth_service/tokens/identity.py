"""The authenticated caller as the forward-auth layer uses it, built once per token.

`Authenticated` wraps the verified `Claims` (which the policy engine reads as its
`Subject`) with the identity headers precomputed, so a cached token costs no
formatting work per request.

Values are encoded by `auth_service.verifier.headers` (the one codec, which
downstream services decode with): list values (realm roles, list claims) item
by item, sorted, comma-separated; single values whole (CONTRACT §4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from auth_service.verifier.headers import encode_items, encode_value
from auth_service.verifier.tokens import MISSING, Claims

__all__ = ("Authenticated", "header_value", "identity_headers")


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def header_value(value: object) -> str:
    """A claim value rendered safely for an HTTP header.

    A list (or set) is sorted and comma-separated with each item percent-encoded where
    it holds ``,``, ``%``, whitespace, control or non-ASCII characters, so an item can
    never read as two; a single value is percent-encoded likewise (spaces kept). Either
    way no claim can inject a header (CR/LF) or break latin-1 encoding.
    """
    if isinstance(value, list | tuple | set | frozenset):
        return encode_items(sorted(_text(v) for v in value))
    return encode_value(_text(value))


_RENDERED_MAX = 1024
_RENDERED_LONGEST = 256
_rendered: dict[str | frozenset[str], bytes] = {}
"""Rendered header values of strings and role sets, shared by all tokens of a worker.

Each new token repeats its user's name, e-mail, roles and attributes, so they are
rendered once. Only ``str`` and ``frozenset`` keys: ``True``, ``1`` and ``1.0`` are
equal as dict keys but render differently. Longer strings are rendered each time.
"""


def _render(value: str | frozenset[str]) -> bytes:
    out = _rendered.get(value)
    if out is None:
        out = header_value(value).encode()
        if len(_rendered) >= _RENDERED_MAX:
            _rendered.clear()
        _rendered[value] = out
    return out


def _render_str(value: str) -> bytes:
    return _render(value) if len(value) <= _RENDERED_LONGEST else header_value(value).encode()


def identity_headers(
    claims: Claims,
    claim_headers: Mapping[str, str],
    attributes: Mapping[str, object] | None = None,
) -> list[tuple[bytes, bytes]]:
    """The identity headers of CONTRACT §4 (all but ``X-Auth-MFA`` and the assertion).

    ``attributes`` are the values at the ``claim_headers`` paths when the caller has
    them already (`BaseClaims.attributes`); otherwise they are read from ``claims``.
    """
    headers: list[tuple[bytes, bytes]] = [
        (b"x-auth-subject", _render_str(claims.sub or "")),
        (b"x-auth-user", _render_str(claims.username or "")),
    ]
    if claims.email:
        headers.append((b"x-auth-email", _render_str(claims.email)))
    headers.append((b"x-auth-roles", _render(claims.realm_roles)))
    for path, name in claim_headers.items():
        value = claims.claim(path) if attributes is None else attributes.get(path, MISSING)
        if value is MISSING or value is None:
            continue
        rendered = _render_str(value) if type(value) is str else header_value(value).encode()
        headers.append((name.lower().encode(), rendered))
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
