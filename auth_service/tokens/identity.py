"""The authenticated caller as the forward-auth layer uses it, built once per token.

`Authenticated` is the token cache's entry: what a decision reads (subject,
session, roles, scopes, the claims the policy and the header map name) and the
identity headers, rendered once. It is a `msgspec.Struct` with ``gc=False`` whose
fields are strings, numbers, bytes, tuples and role sets shared by every token
with the same roles: the garbage collector never walks a cached token. A cache
of 100,000 tokens whose entries it walked (the decoded claims, about 14 tracked
objects each) made a full collection pause a worker for 25 to 250 ms under a
fresh-token load; ``bench/run.py`` reports the largest pause.

The token's claims are kept as their JSON text (``payload``): `claims` decodes
them when a caller needs all of them (the caller guards of the service's own
endpoints, MFA, user info); the forward-auth path never does.

Values are encoded by `auth_service.verifier.headers` (the one codec, which
downstream services decode with): list values (realm roles, list claims) item
by item, sorted, comma-separated; single values whole (CONTRACT §4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from auth_service.verifier.headers import encode_items, encode_value
from auth_service.verifier.tokens import (
    MISSING,
    Claims,
    claim_at,
    client_id_of,
    shared_client_roles,
    shared_strings,
)

__all__ = ("Authenticated", "frozen_value", "header_value", "identity_headers")


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


_INTERNED_MAX = 8192
_interned: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def _exact(value: object) -> bool:
    """Whether ``value`` equals only values of its own type: text, bytes, tuples of those.

    Numbers do not (``1 == True == 1.0``, ``0 == False``): a token with ``admin: 1`` must
    never be handed the tuple of a token with ``admin: true`` (CONTRACT §3 compares
    claim literals by type).
    """
    if type(value) is not tuple:
        return type(value) is str or type(value) is bytes
    for item in value:
        kind = type(item)
        if kind is not str and kind is not bytes and not (kind is tuple and _exact(item)):
            return False
    return True


def _shared(items: list[Any]) -> tuple[Any, ...]:
    """``tuple(items)``, the same object for every token with identical items.

    Tokens of one user repeat the same headers and attributes. Sharing the tuples keeps
    a cached token small, and leaves the garbage collector one tuple per distinct
    value to untrack instead of one per token.
    """
    made = tuple(items)
    if not _exact(made):  # ``1 == True == 1.0``: only values that compare exactly are shared
        return made
    return _intern(made)


def _intern(made: tuple[Any, ...]) -> tuple[Any, ...]:
    """The shared tuple equal to ``made``, which holds only values that compare exactly."""
    shared = _interned.get(made)
    if shared is not None:
        return shared
    if len(_interned) >= _INTERNED_MAX:
        _interned.clear()
    _interned[made] = made
    return made


def frozen_value(value: object) -> object:
    """A JSON value with its arrays as tuples (untracked by the garbage collector)."""
    if isinstance(value, list):
        return tuple([frozen_value(v) for v in value])
    if isinstance(value, dict):
        return {k: frozen_value(v) for k, v in value.items()}
    return value


def identity_headers(
    raw: Mapping[str, Any],
    realm_roles: frozenset[str],
    claim_headers: Mapping[str, str],
    attributes: Mapping[str, object],
) -> tuple[tuple[bytes, bytes], ...]:
    """The identity headers of CONTRACT §4 (all but ``X-Auth-MFA`` and the assertion).

    Names are lower case; ``attributes`` are the values at the ``claim_headers`` paths.
    """
    sub, username, email = raw.get("sub"), raw.get("preferred_username"), raw.get("email")
    headers: list[tuple[bytes, bytes]] = [
        (b"x-auth-subject", _render_str(sub if isinstance(sub, str) else "")),
        (b"x-auth-user", _render_str(username if isinstance(username, str) else "")),
    ]
    if isinstance(email, str) and email:
        headers.append((b"x-auth-email", _render_str(email)))
    headers.append((b"x-auth-roles", _render(realm_roles)))
    for path, name in claim_headers.items():
        value = attributes.get(path, MISSING)
        if value is MISSING or value is None:
            continue
        rendered = _render_str(value) if type(value) is str else header_value(value).encode()
        headers.append((name.lower().encode(), rendered))
    return _intern(tuple(headers))  # (bytes, bytes) pairs: they compare exactly


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class Authenticated(msgspec.Struct, gc=False, kw_only=True):
    """A verified access token: what decisions read, its rendered headers, its claims' JSON.

    Implements the policy's ``Subject`` (`realm_roles`, `client_roles`, `scopes`,
    `claim`). Never tracked by the garbage collector: every field is a scalar, bytes,
    a tuple of those, or a role set or mapping shared between tokens (never mutated).
    The assertion fields are the one slot `AssertionSigner` reuses for a repeated token.
    """

    key: bytes
    """Hash of the token (the cache key; the token itself is not kept)."""
    sub: str | None
    sid: str | None
    jti: str | None
    exp: float
    client_id: str | None
    realm_roles: frozenset[str]
    client_roles: Mapping[str, frozenset[str]]
    scopes: frozenset[str]
    headers: tuple[tuple[bytes, bytes], ...]
    """Identity headers (lower-case names), all but ``X-Auth-MFA`` and the assertion."""
    attributes: tuple[tuple[str, object], ...]
    """Configured custom attributes (claim path, value) present in the token."""
    known: tuple[tuple[str, object], ...]
    """Values at the claim paths the policy reads, looked up when the token was verified."""
    looked_up: tuple[str, ...]
    """The paths looked up then (those absent from `known` are absent from the token)."""
    payload: bytes
    """Every claim of the token, as JSON."""
    assertion: bytes | None = None
    assertion_until: float = 0.0
    assertion_audience: str = ""
    assertion_mfa: bool = False

    @classmethod
    def build(
        cls,
        raw: dict[str, Any],
        *,
        key: bytes,
        payload: bytes,
        claim_headers: Mapping[str, str],
        claim_paths: Iterable[str] = (),
    ) -> Authenticated:
        """The entry of verified claims ``raw`` (whose JSON is ``payload``).

        Raises:
            ValueError: ``exp`` is missing or not a number.
        """
        exp = raw.get("exp")
        if type(exp) is not int and type(exp) is not float:
            raise ValueError("exp must be a number")
        realm_access = raw.get("realm_access")
        realm_roles = shared_strings(
            realm_access.get("roles") if isinstance(realm_access, dict) else None
        )
        scope = raw.get("scope")
        attributes: dict[str, object] = {}
        for path in claim_headers:
            value = claim_at(raw, path)
            if value is not MISSING:
                attributes[path] = frozen_value(value)
        paths = tuple(claim_paths)
        return cls(
            key=key,
            sub=_str(raw.get("sub")),
            sid=_str(raw.get("sid")),
            jti=_str(raw.get("jti")),
            exp=exp,
            client_id=client_id_of(raw),
            realm_roles=realm_roles,
            client_roles=shared_client_roles(raw.get("resource_access")),
            scopes=shared_strings(scope.split() if isinstance(scope, str) else None),
            headers=identity_headers(raw, realm_roles, claim_headers, attributes),
            attributes=_shared(list(attributes.items())),
            known=_shared(
                [
                    (path, frozen_value(value))
                    for path in paths
                    if (value := claim_at(raw, path)) is not MISSING
                ]
            ),
            looked_up=paths,
            payload=payload,
        )

    @property
    def claims(self) -> Claims:
        """All the token's claims, decoded anew on each access (off the forward-auth path)."""
        return Claims.from_raw(msgspec.json.decode(self.payload))

    @property
    def raw(self) -> dict[str, Any]:
        """All claims as a new dict (decoded on each access)."""
        raw: dict[str, Any] = msgspec.json.decode(self.payload)
        return raw

    def claim(self, path: str) -> object:
        """The value at a dotted claim ``path``, or ``MISSING`` (the policy's ``Subject``)."""
        for known, value in self.known:
            if known == path:
                return value
        if path in self.looked_up:
            return MISSING
        return claim_at(self.raw, path)

    @property
    def subject(self) -> str:
        """``sub`` (empty for a token without one)."""
        return self.sub or ""

    @property
    def username(self) -> str | None:
        """``preferred_username``."""
        return _str(self.raw.get("preferred_username"))
