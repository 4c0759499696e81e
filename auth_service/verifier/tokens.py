"""Keycloak access-token verification: the checks, in order, and the claims they yield.

:meth:`TokenVerifier.verify` applies the rules of CONTRACT.md §4 "What counts as a
valid access token" and KEYCLOAK.md §2.10. Each failure raises :class:`TokenError`
whose ``reason`` says which rule failed:

=======================  ==========================================================
``token_too_large``      longer than ``max_bytes``; checked before anything is decoded
``malformed``            not three base64url parts; header or payload not a JSON
                         object; ``alg``/``kid`` missing or not strings; a
                         registered header or a time claim of the wrong type
``unsupported_alg``      ``alg`` not in the allow-list (``none``, ``HS*``, ...)
``forbidden_header``     ``jku``, ``x5u``, ``jwk``, ``x5c``, ``b64`` or any ``crit``
``unknown_kid``          no key with that ``kid``, even after one JWKS refresh
``bad_signature``        signature wrong or not base64url, or the key does not fit
                         ``alg`` (an RSA key never verifies ``HS256``)
``missing_claim``        ``exp`` absent or not a number
``token_expired``        ``exp`` more than ``leeway`` seconds ago
``token_not_yet_valid``  ``nbf`` more than ``leeway`` seconds ahead
``iat_in_future``        ``iat`` more than ``leeway`` seconds ahead
``wrong_issuer``         ``iss`` not *exactly* the issuer (a trailing slash differs)
``wrong_token_type``     claim ``typ`` not in ``token_types`` (Keycloak ``ID``,
                         ``Refresh``, ``Logout`` tokens are refused), or header
                         ``typ`` not in ``header_types`` (`RealmJWTVerifier`)
``wrong_audience``       no ``aud`` value in ``audiences`` and ``azp`` not in them
=======================  ==========================================================

The header is read first (one base64url decode and one msgspec parse) to pick the
key and to refuse bad ``alg`` or header parameters before any cryptography runs.
joserfc's algorithm object for that ``alg`` then checks that the key fits it (type,
``use``, ``alg``) and verifies the signature over the first two segments, exactly as
``jws.deserialize_compact`` would, without parsing the header a second time. Claims
are parsed and checked only after that. The description of an error never contains
the token.

:class:`Claims` is built once per verified token; its accessors are plain
attributes. Paths given to :meth:`Claims.claim` are dotted like Keycloak mapper
claim names (``address.country``; ``\\.`` for a literal dot).
"""

from __future__ import annotations

import binascii
import enum
import math
import re
import time
from collections.abc import Callable, Collection, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeGuard, TypeVar

import msgspec
from joserfc.errors import JoseError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import Key
from joserfc.jws import JWSRegistry

if TYPE_CHECKING:  # the cache does I/O (httpx); checking a token with a key does not
    from .jwks import JWKSCache

__all__ = (
    "MISSING",
    "BaseClaims",
    "Claims",
    "RealmJWTVerifier",
    "TokenError",
    "TokenErrorReason",
    "TokenVerifier",
    "claim_at",
    "client_id_of",
    "shared_client_roles",
    "shared_strings",
)

TokenErrorReason = Literal[
    "token_too_large",
    "malformed",
    "unsupported_alg",
    "forbidden_header",
    "unknown_kid",
    "bad_signature",
    "token_expired",
    "token_not_yet_valid",
    "iat_in_future",
    "wrong_issuer",
    "wrong_audience",
    "wrong_token_type",
    "missing_claim",
]


class TokenError(Exception):
    """A token was refused. ``reason`` is machine-readable (see the module table).

    ``description`` is a short human-readable sentence, safe to log and to show to
    the caller: it never contains the token.
    """

    def __init__(self, reason: TokenErrorReason, description: str) -> None:
        super().__init__(f"{reason}: {description}")
        self.reason: TokenErrorReason = reason
        self.description = description


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing.MISSING
"""Returned by :meth:`BaseClaims.claim` for an absent path (``None`` is a JSON value)."""


@lru_cache(maxsize=256)
def _split_path(path: str) -> tuple[str, ...]:
    return tuple(part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", path))


def claim_at(claims: Mapping[str, object], path: str) -> object:
    """The value at a dotted ``path`` into ``claims``, or :data:`MISSING`.

    Paths are dotted like Keycloak mapper claim names: ``address.country`` walks
    into nested objects, ``\\.`` is a literal dot (``https://acme\\.com/tenant``).
    The one claim reader of the service: the policy and its tests use it too.
    """
    node: object = claims
    for part in _split_path(path):
        # ``type(...) is dict`` first: decoded claims are dicts, and an ABC check is slow.
        if not (type(node) is dict or isinstance(node, Mapping)) or part not in node:
            return MISSING
        node = node[part]
    return node


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


_SHARED_SETS: dict[tuple[str, ...], frozenset[str]] = {}
_SHARED_SETS_MAX: Final = 4096
_SHARED_SET_LONGEST: Final = 64
_SHARED_MAPS: dict[tuple[tuple[str, frozenset[str]], ...], Mapping[str, frozenset[str]]] = {}
_NO_CLIENT_ROLES: Final[Mapping[str, frozenset[str]]] = {}
_EMPTY: Final = frozenset[str]()


K = TypeVar("K")
S = TypeVar("S")


def _keep(memo: dict[K, S], key: K, value: S) -> S:
    """Store ``value`` as the shared one for ``key`` (the memo is emptied when full)."""
    if len(memo) >= _SHARED_SETS_MAX:
        memo.clear()
    memo[key] = value
    return value


def shared_strings(value: object) -> frozenset[str]:
    """The strings of a JSON list, as a frozenset shared by every token with the same list.

    Tokens of one user repeat the same role and scope lists; sharing the sets keeps a
    cached token smaller and gives the garbage collector fewer objects to walk.
    Anything but a list gives the empty set.
    """
    if not isinstance(value, list):
        return _EMPTY
    items = tuple(value)
    try:
        shared = _SHARED_SETS.get(items)  # only tuples of strings are ever stored
    except TypeError:  # an object or an array among the items
        shared = None
    if shared is not None:
        return shared
    if not all(type(v) is str for v in items):
        items = tuple([v for v in items if isinstance(v, str)])
    if len(items) > _SHARED_SET_LONGEST:
        return frozenset(items)
    shared = _SHARED_SETS.get(items)
    return _keep(_SHARED_SETS, items, frozenset(items)) if shared is None else shared


def shared_client_roles(resource_access: object) -> Mapping[str, frozenset[str]]:
    """Client roles by client id (``resource_access``), shared like `shared_strings`.

    The mapping is shared by every token with the same client roles: treat it as
    read-only.
    """
    if not isinstance(resource_access, dict) or not resource_access:
        return _NO_CLIENT_ROLES
    items = tuple((c, _roles_of(a)) for c, a in resource_access.items())
    shared = _SHARED_MAPS.get(items)
    return _keep(_SHARED_MAPS, items, dict(items)) if shared is None else shared


def client_id_of(raw: Mapping[str, Any]) -> str | None:
    """The client a token was issued to: ``client_id``, else ``clientId`` (Keycloak < 26),
    else ``azp``."""
    return _str(raw.get("client_id")) or _str(raw.get("clientId")) or _str(raw.get("azp"))


def _audiences(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _roles_of(access: object) -> frozenset[str]:
    return shared_strings(access.get("roles")) if isinstance(access, dict) else _EMPTY


def _is_number(value: object) -> TypeGuard[float]:
    # bool is an int subclass; JSON true is not a timestamp.
    return type(value) is int or (type(value) is float and math.isfinite(value))


class BaseClaims(msgspec.Struct, frozen=True, kw_only=True):
    """What access tokens and ``X-Auth-Assertion`` tokens have in common.

    The guards in :mod:`auth_service.verifier.litestar` accept any ``BaseClaims``.
    """

    raw: Mapping[str, Any]
    """Every claim of the token as decoded (treat as read-only)."""
    sub: str | None
    """Subject: the Keycloak user id (absent in lightweight access tokens)."""
    sid: str | None
    """Keycloak session id (opaque string)."""
    jti: str | None
    """Token id (opaque string; may carry a prefix such as ``onrtro:``)."""
    iss: str
    """Issuer."""
    exp: float
    """Expiry, seconds since the epoch."""
    iat: float | None
    """Issued-at, seconds since the epoch."""
    aud: tuple[str, ...]
    """Audiences; a single string ``aud`` becomes a one-element tuple."""
    realm_roles: frozenset[str]
    """Realm roles."""
    client_roles: Mapping[str, frozenset[str]]
    """Client roles, by client id."""
    scopes: frozenset[str]
    """Granted scopes (``scope`` split on spaces)."""

    def claim(self, path: str) -> object:
        """The value at a dotted ``path`` into the claims, or :data:`MISSING` (`claim_at`)."""
        return claim_at(self.raw, path)

    def attributes(self, paths: Mapping[str, str]) -> dict[str, object]:
        """``{name: value}`` for each ``name -> claim path`` whose claim is present.

        E.g. ``claims.attributes({"tenant": "tenant_id"})`` gives ``{"tenant": "t-001"}``.
        """
        found: dict[str, object] = {}
        for name, path in paths.items():
            value = self.claim(path)
            if value is not MISSING:
                found[name] = value
        return found

    @staticmethod
    def _common(raw: dict[str, Any]) -> dict[str, Any]:
        """The fields every claims type reads the same way (for ``from_raw``).

        Raises:
            ValueError: if ``exp`` is missing or not a number.
        """
        exp, iat, scope = raw.get("exp"), raw.get("iat"), raw.get("scope")
        if not _is_number(exp):
            raise ValueError("exp must be a number")
        return {
            "raw": raw,
            "sub": _str(raw.get("sub")),
            "sid": _str(raw.get("sid")),
            "jti": _str(raw.get("jti")),
            "iss": _str(raw.get("iss")) or "",
            "exp": exp,
            "iat": iat if _is_number(iat) else None,
            "aud": _audiences(raw.get("aud")),
            "scopes": frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
        }

    def has_client_role(self, client: str, role: str) -> bool:
        """Whether ``role`` of ``client`` was granted."""
        return role in self.client_roles.get(client, ())


class Claims(BaseClaims, frozen=True, kw_only=True):
    """The verified claims of a Keycloak access token (KEYCLOAK.md §2.2)."""

    username: str | None
    """``preferred_username`` (``service-account-<client>`` for service accounts)."""
    email: str | None
    """``email``."""
    azp: str | None
    """Authorized party: the client the token was issued to."""
    client_id: str | None
    """``client_id``, else ``clientId`` (Keycloak < 26), else ``azp``."""

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> Claims:
        """Build from a decoded claims object (already verified by the caller).

        Raises:
            ValueError: if ``exp`` is missing or not a number.
        """
        return cls(
            **cls._common(raw),
            realm_roles=_roles_of(raw.get("realm_access")),
            client_roles=shared_client_roles(raw.get("resource_access")),
            username=_str(raw.get("preferred_username")),
            email=_str(raw.get("email")),
            azp=_str(raw.get("azp")),
            client_id=client_id_of(raw),
        )


_FORBIDDEN_HEADERS: Final = ("jku", "x5u", "jwk", "x5c", "crit", "b64")
# jku/x5u/jwk/x5c would let the token name its own key; crit names extensions we do
# not implement (RFC 7515 §4.1.11), and b64 (RFC 7797) changes what is signed.
_MEMO_SIZE: Final = 64
"""Remembered header segments and key checks per verifier; cleared when full."""
_STRING_HEADERS: Final = ("typ", "cty", "x5t", "x5t#S256")
# The other registered header parameters (RFC 7515 §4.1): strings when present.

C = TypeVar("C")


def _short(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


_B64URL: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")
_UNUSED_BITS: Final = {2: 0b1111, 3: 0b11}
"""Bits of the last character that carry no data, by ``len(segment) % 4``."""


def _binascii_decode(padded: bytes) -> bytes:
    """Padded base64url without ``+`` or ``/``, strictly (the standard library's decoder)."""
    return binascii.a2b_base64(padded.translate(_TO_STANDARD), strict_mode=True)


try:  # the service installs pybase64 (SIMD); a downstream service need not
    import pybase64

    def _pybase64_decode(padded: bytes) -> bytes:
        """As `_binascii_decode`, about three times faster on a token's payload."""
        return pybase64.b64decode(padded, altchars=b"-_", validate=True)

    _decode_padded = _pybase64_decode
except ImportError:  # a downstream service without it (tested in a fresh interpreter)
    _decode_padded = _binascii_decode


def _b64url_decode(segment: str, decode: Callable[[bytes], bytes] = _decode_padded) -> bytes:
    """Strict, canonical, unpadded base64url (RFC 7515 §2, RFC 4648 §3.5); ValueError otherwise.

    A last character whose unused bits are set decodes to the same bytes as the
    canonical one, so without this check one token would have several spellings.
    Both decoders refuse anything outside the alphabet once translated, but they take
    the standard alphabet's ``+`` and ``/`` and padding, which are refused here first.
    """
    data = segment.encode("ascii")  # UnicodeEncodeError is a ValueError
    if b"+" in data or b"/" in data or b"=" in data:
        raise ValueError("not base64url")
    size = len(data) % 4
    if size == 1:
        raise ValueError("not base64url")
    if size and _B64URL.find(segment[-1]) & _UNUSED_BITS[size]:
        raise ValueError("not canonical base64url")
    return decode(data + b"=" * (-size % 4))


class _JWTVerifier(Generic[C]):
    """Shared engine of :class:`TokenVerifier` and ``AssertionVerifier``."""

    def __init__(
        self,
        *,
        issuer: str,
        audiences: Collection[str],
        keys: JWKSCache,
        algorithms: Collection[str],
        leeway: int,
        max_bytes: int,
        token_types: Collection[str] | None,
        accept_azp: bool,
        clock: Callable[[], float],
        claims_factory: Callable[[dict[str, Any]], C],
        header_types: Collection[str] | None = None,
    ) -> None:
        if not issuer:
            raise ValueError("issuer must not be empty")
        if isinstance(audiences, str) or not audiences:
            raise ValueError("audiences must be a non-empty collection of strings")
        unknown = set(algorithms) - set(JWSRegistry.algorithms)
        if not algorithms or "none" in algorithms or unknown:
            raise ValueError(f"algorithms must be signature algorithms, not {sorted(algorithms)}")
        if leeway < 0 or max_bytes <= 0:
            raise ValueError("leeway must be >= 0 and max_bytes > 0")
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        self.keys = keys
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        self.max_bytes = max_bytes
        self.token_types = None if token_types is None else frozenset(token_types)
        self.header_types = (
            None if header_types is None else frozenset(t.lower() for t in header_types)
        )
        self._accept_azp = accept_azp
        self._clock = clock
        self._claims_factory = claims_factory
        # joserfc's signature algorithm for each allowed alg. Unknown, non-critical
        # header parameters are ignorable (RFC 7515 §4); the dangerous ones and
        # mistyped registered ones are refused by _check_header before any of this.
        self._algs: dict[str, JWSAlgModel] = {
            alg: JWSRegistry(algorithms=[alg]).get_alg(alg) for alg in algorithms
        }
        self._headers: dict[str, tuple[str, str]] = {}
        """Header segments that passed `_parse_header`: ``(alg, kid)``."""
        self._fitting: dict[tuple[str, int], Key] = {}
        """Keys that passed joserfc's ``check_key`` per alg (kept, so their ids stay unique)."""

    async def verify(self, token: str) -> C:
        """Verify ``token`` and return its claims; raise :class:`TokenError` otherwise.

        Awaits only when the ``kid`` is not cached (one rate-limited JWKS refresh).
        """
        return self._claims_factory((await self.verify_claims(token))[0])

    async def verify_claims(self, token: str) -> tuple[dict[str, Any], bytes]:
        """Like `verify`, but the checked claims as decoded and their JSON text.

        For callers that build their own view of the claims (the token cache).
        """
        alg, kid = self._check_header(token)
        key = self.keys.get(kid)
        if key is None:
            key = await self.keys.get_or_refresh(kid)
            if key is None:
                raise TokenError("unknown_kid", f"no signing key with kid {_short(kid)}")
        return self._verify_payload(token, alg, key)

    def verify_claims_now(self, token: str) -> tuple[dict[str, Any], bytes] | None:
        """`verify_claims` without I/O: ``None`` when the token's key needs a JWKS refresh.

        A token refused by the header checks raises here: refusing it needs no key.
        """
        alg, kid = self._check_header(token)
        key = self.keys.get(kid)
        return None if key is None else self._verify_payload(token, alg, key)

    def header_of(self, token: str) -> tuple[str, str]:
        """``(alg, kid)`` of a token's header after the header checks (no signature check)."""
        return self._check_header(token)

    def verify_with_key(self, token: str, key: Key) -> C:
        """Verify ``token`` with ``key`` regardless of its ``kid``; all other checks apply."""
        alg, _ = self._check_header(token)
        return self._claims_factory(self._verify_payload(token, alg, key)[0])

    def _check_header(self, token: str) -> tuple[str, str]:
        if not isinstance(token, str):
            raise TokenError("malformed", "token is not a string")
        if len(token) > self.max_bytes:  # before any decoding: bounds all work below
            raise TokenError("token_too_large", f"token exceeds {self.max_bytes} bytes")
        if token.count(".") != 2:
            raise TokenError("malformed", "not a JWS in compact serialization")
        segment = token[: token.index(".")]
        known = self._headers.get(segment)
        if known is not None:  # every token of one signing key has the same header
            return known
        checked = self._parse_header(segment)
        if len(self._headers) >= _MEMO_SIZE:
            self._headers.clear()
        self._headers[segment] = checked
        return checked

    def _parse_header(self, segment: str) -> tuple[str, str]:
        try:
            header = msgspec.json.decode(_b64url_decode(segment))
        except ValueError:  # binascii.Error and msgspec.DecodeError are ValueErrors
            raise TokenError("malformed", "header is not base64url-encoded JSON") from None
        if not isinstance(header, dict):
            raise TokenError("malformed", "header is not a JSON object")
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise TokenError("malformed", "header has no alg")
        if alg not in self.algorithms:
            raise TokenError("unsupported_alg", f"alg {_short(alg)} is not allowed")
        for name in _FORBIDDEN_HEADERS:
            if name in header:
                raise TokenError("forbidden_header", f"header parameter {name!r} is refused")
        for name in _STRING_HEADERS:
            if name in header and not isinstance(header[name], str):
                raise TokenError("malformed", f"header parameter {name!r} is not a string")
        if self.header_types is not None:
            typ = header.get("typ")
            if not isinstance(typ, str) or typ.lower() not in self.header_types:
                raise TokenError("wrong_token_type", "header typ is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("malformed", "header has no kid")
        return alg, kid

    def _verify_payload(self, token: str, alg: str, key: Key) -> tuple[dict[str, Any], bytes]:
        """Signature, then claims: the claims and their JSON (``token`` passed `_check_header`)."""
        model = self._algs[alg]
        header_segment, payload_segment, signature_segment = token.split(".")
        try:
            payload = _b64url_decode(payload_segment)
        except ValueError:
            raise TokenError("malformed", "payload is not base64url") from None
        try:
            signature = _b64url_decode(signature_segment)
            if self._fitting.get((alg, id(key))) is not key:
                model.check_key(key)  # an RSA key never verifies HS256, an EC key never RS256
                if len(self._fitting) >= _MEMO_SIZE:
                    self._fitting.clear()
                self._fitting[(alg, id(key))] = key
            valid = model.verify(f"{header_segment}.{payload_segment}".encode(), signature, key)
        except (JoseError, ValueError, TypeError):
            valid = False
        if not valid:
            raise TokenError("bad_signature", "signature does not verify")
        try:
            raw = msgspec.json.decode(payload)
        except msgspec.DecodeError:
            raise TokenError("malformed", "payload is not JSON") from None
        if not isinstance(raw, dict):
            raise TokenError("malformed", "payload is not a JSON object")
        self._check_claims(raw)
        return raw, payload

    def _check_claims(self, raw: dict[str, Any]) -> None:
        now, leeway = self._clock(), self.leeway
        exp = raw.get("exp")
        if not _is_number(exp):
            raise TokenError("missing_claim", "exp is missing or not a number")
        if now > exp + leeway:
            raise TokenError("token_expired", "token has expired")
        for name in ("nbf", "iat"):
            value = raw.get(name)
            if value is None:
                continue
            if not _is_number(value):
                raise TokenError("malformed", f"{name} is not a number")
            if value > now + leeway:
                if name == "nbf":
                    raise TokenError("token_not_yet_valid", "token is not valid yet (nbf)")
                raise TokenError("iat_in_future", "token is issued in the future (iat)")
        if raw.get("iss") != self.issuer:
            raise TokenError("wrong_issuer", "token is from another issuer")
        if self.token_types is not None:
            typ = raw.get("typ")
            if not isinstance(typ, str) or typ not in self.token_types:
                raise TokenError("wrong_token_type", "not an access token (typ)")
        aud = raw.get("aud")
        if isinstance(aud, str):
            aud = (aud,)
        elif aud is None:
            aud = ()
        elif not isinstance(aud, list) or not all(isinstance(a, str) for a in aud):
            raise TokenError("malformed", "aud is not a string or a list of strings")
        if self.audiences.isdisjoint(aud):
            azp = raw.get("azp")
            if not (self._accept_azp and isinstance(azp, str) and azp in self.audiences):
                raise TokenError("wrong_audience", "token is for another audience")


class TokenVerifier(_JWTVerifier[Claims]):
    """Verifies Keycloak access tokens against one realm.

    Args:
        issuer: The realm issuer, compared exactly with ``iss``.
        audiences: Accepted ``aud`` values; a token also passes when its ``azp``
            is one of them. Do not list ``account``, which Keycloak adds to most tokens.
        keys: The realm's JWKS cache.
        algorithms: Allowed ``alg`` values. ``none`` is rejected here with ValueError.
        leeway: Clock skew tolerated for ``exp``, ``nbf`` and ``iat``, in seconds.
        max_bytes: Longer tokens are refused before decoding.
        token_types: Accepted values of the ``typ`` claim.
        clock: Wall-clock seconds since the epoch; injectable for tests.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audiences: Collection[str],
        keys: JWKSCache,
        algorithms: Collection[str] = ("RS256", "PS256", "ES256"),
        leeway: int = 30,
        max_bytes: int = 16384,
        token_types: Collection[str] = ("Bearer",),
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            issuer=issuer,
            audiences=audiences,
            keys=keys,
            algorithms=algorithms,
            leeway=leeway,
            max_bytes=max_bytes,
            token_types=token_types,
            accept_azp=True,
            clock=clock,
            claims_factory=Claims.from_raw,
        )


class RealmJWTVerifier(_JWTVerifier[dict[str, Any]]):
    """Verifies the realm's other JWTs (ID tokens, back-channel logout tokens).

    The header, key, signature, ``exp``/``nbf``/``iat``, ``iss`` and ``aud``
    checks are exactly those of :class:`TokenVerifier` (same reasons, same
    refused header parameters); what each token kind adds on top (``nonce``,
    ``at_hash``, ``events``, ``jti``) is the caller's. Returns the raw claims.

    Args:
        issuer: The realm issuer, compared exactly with ``iss``.
        audience: This client's id; ``aud`` must contain it (``azp`` is not enough).
        keys: The realm's JWKS cache.
        algorithms: Allowed ``alg`` values.
        leeway: Clock skew tolerated for ``exp``, ``nbf`` and ``iat``, in seconds.
        header_types: Accepted header ``typ`` values (case-insensitive); ``None``
            accepts any or none.
        clock: Wall-clock seconds since the epoch; injectable for tests.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: JWKSCache,
        algorithms: Collection[str] = ("RS256", "PS256", "ES256"),
        leeway: int = 30,
        max_bytes: int = 16384,
        header_types: Collection[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            issuer=issuer,
            audiences=(audience,),
            keys=keys,
            algorithms=algorithms,
            leeway=leeway,
            max_bytes=max_bytes,
            token_types=None,
            accept_azp=False,
            clock=clock,
            claims_factory=dict,
            header_types=header_types,
        )
