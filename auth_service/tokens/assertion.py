"""``X-Auth-Assertion``: the short-lived ES256 JWT handed downstream with allowed requests.

CONTRACT §4 fixes its shape::

    header  {"alg": "ES256", "typ": "JWT", "kid": "<current signing key>"}
    claims  {"iss": AUTH_PUBLIC_URL, "aud": "<original host>", "sub", "roles": [...sorted],
             "client_roles": {client: [...sorted]}, "amr": ["pwd"] (+ "otp"), "sid",
             "iat", "exp" (<= iat + AUTH_ASSERTION_TTL <= 60), "jti",
             <configured attributes at their claim paths, e.g. "tenant_id", "org": {"site"}>}

Configured attributes sit at the same dotted paths as in the access token, so a
downstream ``claims.claim("org.site")`` reads the same value from either; they
never override the claims above. ``exp`` is also capped at the access token's
own expiry: an assertion never outlives the credential it stands for.

:meth:`AssertionSigner.issue` runs on the forward-auth path, so it does no I/O:
the keys come from an in-memory `KeyRing` that :meth:`AssertionSigner.start`
loads and a background task refreshes every ``refresh_interval`` seconds
(``auth-service keys rotate`` reaches every worker within one interval).

Reuse (CONTRACT §4): an assertion is reused while more than half its lifetime
remains, for the same identity and audience, not only the same access token. It
is kept on the cached `Authenticated` token in one slot (its last audience and MFA
state: a repeated token costs a comparison) and in the signer under its identity: its own claims but
``iat``, ``exp`` and ``jti`` (subject, sid, realm and client roles, configured
attributes, ``amr``, audience, issuer), so a new token of the same session costs
building and encoding those claims instead of an ES256 signature. Anything that
changes the identity (MFA done, roles refreshed) changes the key, so the next
request is signed afresh; a token without ``sub`` never shares. A shared
assertion is reused only if it does not outlive the new token and was signed by
the key that signs now.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import itertools
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import structlog
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey

from auth_service.errors import DependencyUnavailable
from auth_service.tokens.identity import Authenticated
from auth_service.tokens.keys import KeyRing, NoSigningKey, SigningKeyStore

__all__ = ("AssertionSigner",)

log = structlog.get_logger("auth_service.tokens.assertion")

_ES256 = jws.JWSRegistry(algorithms=["ES256"]).get_alg("ES256")
"""joserfc's ES256, used to check that a key fits it (type, curve, ``use``, ``key_ops``)."""
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_AMR_PWD = ("pwd",)
_AMR_OTP = ("pwd", "otp")
_MAX_SLOTS = 64
"""Signing keys prepared at once (one per ``kid``; the ring holds few)."""
_RESERVED = frozenset(
    {"iss", "aud", "sub", "roles", "client_roles", "amr", "sid", "iat", "exp", "jti", "nbf", "typ"}
)
"""Claims an attribute may not set, not even below them."""
_MAX_IDENTITIES = 20_000
"""Identities whose assertion is kept for other tokens of theirs; the oldest goes first."""
_ENCODE = msgspec.json.Encoder().encode
_RETRY_INTERVAL = 2.0
"""Seconds between load attempts while no key ring has been loaded yet."""


def _b64(data: bytes) -> bytes:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@functools.lru_cache(maxsize=1024)
def _in_order(roles: frozenset[str]) -> tuple[str, ...]:
    """``roles`` sorted, remembered: every new token of a user repeats its role sets.

    msgspec encodes the tuple as a JSON array.
    """
    return tuple(sorted(roles))


_CLIENTS_IN_ORDER: dict[int, tuple[Mapping[str, frozenset[str]], dict[str, tuple[str, ...]]]] = {}


def _clients_in_order(client_roles: Mapping[str, frozenset[str]]) -> dict[str, tuple[str, ...]]:
    """``client_roles`` with clients and roles sorted, remembered per shared mapping.

    The mappings are shared between tokens (`shared_client_roles`), so this is computed
    once per distinct set of client roles; the mapping itself is kept next to the result
    so that its id is never reused for another one while remembered.
    """
    known = _CLIENTS_IN_ORDER.get(id(client_roles))
    if known is not None and known[0] is client_roles:
        return known[1]
    ordered = {client: _in_order(r) for client, r in sorted(client_roles.items())}
    if len(_CLIENTS_IN_ORDER) >= 1024:
        _CLIENTS_IN_ORDER.clear()
    _CLIENTS_IN_ORDER[id(client_roles)] = (client_roles, ordered)
    return ordered


def _put(claims: dict[str, Any], path: str, value: object) -> None:
    """Set ``value`` at dotted ``path`` in ``claims``, copying dicts on the way (no aliasing)."""
    *parents, leaf = path.split(".")
    node = claims
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, dict):
            child = node[part] = dict(child)
        else:
            return  # a scalar already sits on the path; keep it
        node = child
    node[leaf] = value


class AssertionSigner:
    """Signs ``X-Auth-Assertion`` tokens and serves their JWKS; one per worker.

    Args:
        store: the shared signing keys.
        issuer: ``iss`` of every assertion (``settings.public_url``).
        ttl: assertion lifetime in seconds (``settings.assertion_ttl``, 5 to 60).
        refresh_interval: seconds between key ring reloads.
        clock: seconds since the epoch; injectable for tests.
    """

    def __init__(
        self,
        store: SigningKeyStore,
        *,
        issuer: str,
        ttl: int,
        refresh_interval: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= ttl <= 60:
            raise ValueError("assertion ttl must be between 1 and 60 seconds")
        self.issuer = issuer
        self.ttl = ttl
        self._store = store
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._ring: KeyRing | None = None
        self._task: asyncio.Task[None] | None = None
        self._signers: dict[str, tuple[ECKey, bytes, ec.EllipticCurvePrivateKey]] = {}
        self._jti_prefix = _b64(os.urandom(12)).decode("ascii")
        self._jti_counter = itertools.count()
        """``jti`` = a random prefix per signer (per worker) and a counter: unique, no syscall."""
        self._by_identity: OrderedDict[bytes, tuple[bytes, float, int, str]] = OrderedDict()
        """Identity (the assertion's claims but iat/exp/jti, encoded) → (assertion,
        reuse-until, exp, kid), shared by all tokens of that identity."""

    @property
    def ring(self) -> KeyRing | None:
        """The key ring in use; ``None`` until the first successful load."""
        return self._ring

    @property
    def ready(self) -> bool:
        """Whether assertions can be signed now."""
        ring = self._ring
        if ring is None:
            return False
        current = ring.current(self._clock())
        return current is not None and current.private_key is not None

    async def refresh(self) -> None:
        """Reload the keys, first creating an active one if none can sign now.

        Raises:
            Exception: whatever the database raises; the previous ring stays in use.
        """
        ring = await self._store.load()
        if ring.current(self._clock()) is None:
            await self._store.ensure_active()
            ring = await self._store.load()
        self._ring = ring

    async def start(self, stop: asyncio.Event) -> asyncio.Task[None]:
        """Load the keys once, then keep refreshing them until ``stop`` is set.

        A failed first load is logged, not raised: the worker starts, `issue`
        raises `DependencyUnavailable` (503) and the background task retries
        every few seconds. Await the returned task after setting ``stop``.
        """
        await self._try_refresh()
        self._task = asyncio.get_running_loop().create_task(
            self._run(stop), name="assertion-keys-refresh"
        )
        return self._task

    async def _try_refresh(self) -> bool:
        try:
            await self.refresh()
        except Exception as exc:  # database down: keep the old ring, retry later
            log.warning(
                "signing_keys_refresh_failed",
                error=exc.__class__.__name__,
                have_keys=self._ring is not None,
            )
            return False
        return True

    async def _run(self, stop: asyncio.Event) -> None:
        ok = self._ring is not None
        while not stop.is_set():
            delay = self._refresh_interval if ok else _RETRY_INTERVAL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            if stop.is_set():
                return
            ok = await self._try_refresh() or self._ring is not None

    def issue(self, auth: Authenticated, audience: str, *, mfa: bool) -> str:
        """`issue_header` as text."""
        return self.issue_header(auth, audience, mfa=mfa).decode("ascii")

    def issue_header(
        self, auth: Authenticated, audience: str, *, mfa: bool, rid: str | None = None
    ) -> bytes:
        """The assertion for ``auth`` towards ``audience`` (the original host); no I/O.

        Reused, in this order: the one cached on ``auth`` for ``(audience, mfa)`` (a
        repeated token); else the one of the same identity and audience (another token
        of the same subject and session with the same roles, attributes and MFA state:
        its claims are identical but for ``iat``/``exp``/``jti``); else a new one.

        Raises:
            DependencyUnavailable: no signing key is loaded or active.
        """
        now = self._clock()
        if (
            auth.assertion is not None
            and now < auth.assertion_until
            and auth.assertion_audience == audience
            and auth.assertion_mfa is mfa
        ):
            return auth.assertion
        if self._ring is None:
            raise DependencyUnavailable(
                "signing keys are not loaded", reason="signing_keys_unavailable"
            )
        try:
            kid, key = self._ring.signer(now)
        except NoSigningKey as exc:
            if rid is None:
                log.error("assertion_not_signed", error=str(exc))
            else:  # the lean forward-auth path binds no request id: name it here
                log.error("assertion_not_signed", error=str(exc), request_id=rid)
            raise DependencyUnavailable(
                "no usable signing key", reason="signing_keys_unavailable"
            ) from None
        # The claims are built in a fixed order, so one identity always encodes the same.
        identity = _ENCODE(self._claims(auth, audience, mfa))
        if auth.sub is not None:  # never shared between subjects, nor without one
            shared = self._by_identity.get(identity)
            if shared is not None:
                token, reuse_until, exp, signed_by = shared
                if now < reuse_until and exp <= auth.exp and signed_by == kid:
                    self._remember(auth, audience, mfa, token, reuse_until)
                    return token
                del self._by_identity[identity]
        iat = int(now)
        exp = max(iat + 1, min(iat + self.ttl, int(auth.exp)))
        jti = f"{self._jti_prefix}{next(self._jti_counter):x}"
        # The identity's JSON object, closed with the three claims of this assertion.
        payload = b'%s,"iat":%d,"exp":%d,"jti":"%s"}' % (identity[:-1], iat, exp, jti.encode())
        token = self._sign(kid, key, payload)
        reuse_until = iat + (exp - iat) / 2
        self._remember(auth, audience, mfa, token, reuse_until)
        if auth.sub is not None:
            shared_cache = self._by_identity
            if len(shared_cache) >= _MAX_IDENTITIES:
                shared_cache.popitem(last=False)
            shared_cache[identity] = (token, reuse_until, exp, kid)
        return token

    @staticmethod
    def _remember(
        auth: Authenticated, audience: str, mfa: bool, token: bytes, reuse_until: float
    ) -> None:
        """Keep ``token`` on the cached token: its one slot (the last audience and MFA state)."""
        auth.assertion = token
        auth.assertion_until = reuse_until
        auth.assertion_audience = audience
        auth.assertion_mfa = mfa

    def _claims(self, auth: Authenticated, audience: str, mfa: bool) -> dict[str, Any]:
        """The claims of ``auth``'s assertion but ``iat``, ``exp`` and ``jti``: its identity."""
        claims: dict[str, Any] = {}
        for path, value in auth.attributes:
            if path.partition(".")[0] not in _RESERVED:
                _put(claims, path, value)
        claims.update(
            iss=self.issuer,
            aud=audience,
            roles=_in_order(auth.realm_roles),
            client_roles=_clients_in_order(auth.client_roles),
            amr=_AMR_OTP if mfa else _AMR_PWD,
        )
        if auth.sub is not None:
            claims["sub"] = auth.sub
        if auth.sid is not None:
            claims["sid"] = auth.sid
        return claims

    def _sign(self, kid: str, key: ECKey, payload: bytes) -> bytes:
        """The compact JWS (RFC 7515 §7.1) of the claims JSON ``payload`` under ES256.

        What is the same for every assertion of a key is prepared once per ``kid``:
        joserfc's ES256 checks that the key fits (P-256, may sign), and the encoded
        header. Per assertion, OpenSSL signs (through ``cryptography``) and the DER
        signature is laid out as R || S, 32 bytes each (RFC 7518 §3.4), which is
        what joserfc's ``ESAlgorithm.sign`` does, minus its per-call key lookups.
        """
        prepared = self._signers.get(kid)
        if prepared is None or prepared[0] is not key:
            _ES256.check_key(key)
            native = key.get_op_key("sign")
            assert isinstance(native, ec.EllipticCurvePrivateKey)
            head = _b64(msgspec.json.encode({"alg": "ES256", "typ": "JWT", "kid": kid})) + b"."
            if len(self._signers) >= _MAX_SLOTS:
                self._signers.clear()
            prepared = self._signers[kid] = (key, head, native)
        signing_input = prepared[1] + _b64(payload)
        r, s = decode_dss_signature(prepared[2].sign(signing_input, _ECDSA_SHA256))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input + b"." + _b64(signature)

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """``{"keys": [...]}``: the public keys downstream services verify assertions with."""
        ring = self._ring
        return {"keys": [] if ring is None else ring.published(self._clock())}
