"""ES256 signing keys in PostgreSQL and the ``X-Auth-Assertion`` tokens signed with them.

Everything runs against the real database of this test run; time is a `FakeClock`
shared by the key store, the signer and the downstream verifier, so rotation
schedules are checked to the second without sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet
from litestar.testing import AsyncTestClient

from auth_service.app import create_app
from auth_service.config import SecretKey, Settings, load_settings
from auth_service.crypto import DecryptionError, SecretBox, key_id_of
from auth_service.errors import DependencyUnavailable
from auth_service.services import Services
from auth_service.tokens.assertion import AssertionSigner
from auth_service.tokens.identity import Authenticated
from auth_service.tokens.keys import NoSigningKey, SigningKeyStore
from auth_service.tokens.keys_cli import rotate_keys
from auth_service.verifier import AssertionClaims, AssertionVerifier, JWKSCache
from tests.support.processes import eventually

T0 = 1_767_225_600.0
AUDIENCE = "orders.app.test"
TTL = 60
RETIRE_AFTER = 60 + TTL + 30  # overlap + assertion lifetime + margin


class FakeClock:
    """Wall-clock seconds that move only when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def set(self, now: float) -> None:
        """Jump to ``now``."""
        self.now = now


def authenticated(
    *,
    exp: float = T0 + 3600,
    roles: list[str] | None = None,
    attributes: dict[str, object] | None = None,
    sub: str = "user-alice",
    sid: str = "sid-1",
    jti: str = "at-1",
) -> Authenticated:
    """A verified access token for alice, as the forward-auth layer caches it."""
    raw = {
        "iss": "http://127.0.0.1:9/realms/acme",
        "sub": sub,
        "sid": sid,
        "jti": jti,
        "iat": T0 - 10,
        "exp": exp,
        "preferred_username": "alice",
        "realm_access": {"roles": roles if roles is not None else ["app-user", "admin"]},
        "resource_access": {"orders-api": {"roles": ["writer", "reader"]}},
        "tenant_id": "t-001",
        "org": {"site": "paris", "internal": "not configured"},
    }
    attrs: dict[str, object] = {"tenant_id": "t-001", "org.site": "paris"}
    if attributes is not None:
        attrs = attributes
    entry = Authenticated.build(
        raw, key=b"h", payload=msgspec.json.encode(raw), claim_headers={"tenant_id": "X-T"}
    )
    return msgspec.structs.replace(entry, attributes=tuple(attrs.items()))


def header_of(token: str) -> dict[str, Any]:
    """The decoded JOSE header of a compact JWS."""
    segment = token.split(".")[0]
    padded = segment + "=" * (-len(segment) % 4)
    return msgspec.json.decode(base64.urlsafe_b64decode(padded), type=dict[str, Any])


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on this run's database, with ``signing_keys`` empty before and after."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    await pool.execute("TRUNCATE signing_keys")
    yield pool
    await pool.execute("TRUNCATE signing_keys")
    await pool.close()


@pytest.fixture
def clock() -> FakeClock:
    """Shared fake time, starting at `T0`."""
    return FakeClock()


@pytest.fixture
def box(settings: Settings) -> SecretBox:
    """The box built from ``AUTH_SECRET_KEYS`` (one key, ``k1``)."""
    return SecretBox(settings.secret_keys)


@pytest.fixture
def store(pool: asyncpg.Pool, box: SecretBox, clock: FakeClock) -> SigningKeyStore:
    """The key store of worker 1."""
    return SigningKeyStore(pool, box, assertion_ttl=TTL, clock=clock)


def make_signer(store: SigningKeyStore, settings: Settings, clock: FakeClock) -> AssertionSigner:
    return AssertionSigner(store, issuer=settings.public_url, ttl=TTL, clock=clock)


@pytest.fixture
async def signer(store: SigningKeyStore, settings: Settings, clock: FakeClock) -> AssertionSigner:
    """Worker 1's signer, keys loaded (creating the first key)."""
    signer = make_signer(store, settings, clock)
    await signer.refresh()
    return signer


Verify = Callable[[str], Awaitable[AssertionClaims]]


@pytest.fixture
async def verify(
    signer: AssertionSigner, settings: Settings, clock: FakeClock
) -> AsyncIterator[Verify]:
    """A downstream verifier whose JWKS cache downloads ``signer.jwks()`` (fresh each call)."""

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=signer.jwks())

    async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as http:
        keys = JWKSCache(f"{settings.public_url}/.well-known/jwks.json", http, clock=clock)
        verifier = AssertionVerifier(
            issuer=settings.public_url, audience=AUDIENCE, keys=keys, clock=clock
        )

        async def run(token: str) -> AssertionClaims:
            await keys.refresh(force=True)
            return await verifier.verify(token)

        yield run


def kids(signer: AssertionSigner) -> set[str]:
    return {k["kid"] for k in signer.jwks()["keys"]}


class TestStorage:
    async def test_private_key_is_stored_encrypted(
        self, store: SigningKeyStore, pool: asyncpg.Pool, box: SecretBox
    ) -> None:
        """The stored column holds neither the raw scalar, the DER nor a PEM of the key.

        It is a SecretBox blob under k1, bound to the key's kid; the public JWK has no ``d``.
        """
        await store.ensure_active()
        row = await pool.fetchrow(
            "SELECT kid, public_jwk::text AS jwk, private_enc, enc_key_id FROM signing_keys"
        )
        blob = bytes(row["private_enc"])
        key = (await store.load()).keys[0].private_key
        assert key is not None
        native = key.private_key
        assert native is not None
        scalar = native.private_numbers().private_value.to_bytes(32, "big")
        der = native.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        pems = [
            native.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
            for fmt in (
                serialization.PrivateFormat.PKCS8,
                serialization.PrivateFormat.TraditionalOpenSSL,
            )
        ]
        for secret in (scalar, der, *pems, b"PRIVATE KEY", base64.b64encode(scalar)):
            assert secret not in blob
        assert row["enc_key_id"] == "k1" and key_id_of(blob) == "k1"
        assert box.decrypt(blob, aad=b"signing_keys:" + row["kid"].encode()) == der
        with pytest.raises(DecryptionError):
            box.decrypt(blob, aad=b"signing_keys:another-kid")
        public = msgspec.json.decode(row["jwk"])
        assert "d" not in public
        assert public | {} == {**public, "kid": row["kid"], "use": "sig", "alg": "ES256"}

    async def test_concurrent_ensure_active_creates_exactly_one_key(
        self, database_url: str, box: SecretBox, pool: asyncpg.Pool, clock: FakeClock
    ) -> None:
        """Workers starting together (separate pools, racing tasks) end up with one key."""
        pools = [await asyncpg.create_pool(database_url, min_size=2, max_size=2) for _ in "ab"]
        try:
            stores = [SigningKeyStore(p, box, clock=clock) for p in pools]
            await asyncio.gather(*(s.ensure_active() for s in stores * 3))
        finally:
            for p in pools:
                await p.close()
        assert await pool.fetchval("SELECT count(*) FROM signing_keys") == 1

    async def test_ensure_active_keeps_an_active_key(self, store: SigningKeyStore) -> None:
        """A second call finds the active key and creates nothing."""
        await store.ensure_active()
        await store.ensure_active()
        assert len((await store.load()).keys) == 1

    async def test_keys_under_an_old_secret_key_still_sign(
        self, store: SigningKeyStore, pool: asyncpg.Pool, settings: Settings, clock: FakeClock
    ) -> None:
        """After ``AUTH_SECRET_KEYS=k2,k1``, keys encrypted under k1 load; new ones use k2."""
        await store.ensure_active()
        rotated = SecretBox([SecretKey("k2", secrets.token_bytes(32)), *settings.secret_keys])
        store2 = SigningKeyStore(pool, rotated, clock=clock)
        signer2 = make_signer(store2, settings, clock)
        await signer2.refresh()
        assert signer2.issue(authenticated(), AUDIENCE, mfa=False)
        await store2.rotate(0)
        rows = await pool.fetch("SELECT enc_key_id FROM signing_keys ORDER BY activated_at")
        assert [r["enc_key_id"] for r in rows] == ["k1", "k2"]

    async def test_undecryptable_key_is_published_but_not_used(
        self, store: SigningKeyStore, pool: asyncpg.Pool, settings: Settings, clock: FakeClock
    ) -> None:
        """A worker lacking the secret key answers 503 for assertions but still serves the JWKS."""
        await store.ensure_active()
        wrong = SecretBox([SecretKey("k9", secrets.token_bytes(32))])
        signer = make_signer(SigningKeyStore(pool, wrong, clock=clock), settings, clock)
        await signer.refresh()
        assert len(kids(signer)) == 1 and not signer.ready
        assert signer.ring is not None
        with pytest.raises(NoSigningKey):
            signer.ring.signer(clock())
        with pytest.raises(DependencyUnavailable):
            signer.issue(authenticated(), AUDIENCE, mfa=False)


class TestRotation:
    async def test_new_key_is_published_at_once_but_signs_only_from_activation(
        self, store: SigningKeyStore, signer: AssertionSigner, clock: FakeClock
    ) -> None:
        """``rotate(60)`` publishes the key now; assertions switch to it 60 s later."""
        old = header_of(signer.issue(authenticated(), AUDIENCE, mfa=False))["kid"]
        new = await store.rotate(60)
        await signer.refresh()
        assert kids(signer) == {old, new}
        clock.set(T0 + 59.999)
        assert header_of(signer.issue(authenticated(), AUDIENCE, mfa=False))["kid"] == old
        clock.set(T0 + 60)
        assert header_of(signer.issue(authenticated(), AUDIENCE, mfa=False))["kid"] == new

    async def test_old_key_is_published_until_its_last_assertion_expired(
        self, store: SigningKeyStore, signer: AssertionSigner, clock: FakeClock, verify: Verify
    ) -> None:
        """The predecessor stays in the JWKS until activation + ttl + margin, then disappears.

        An assertion it signed just before the switch verifies until it expires.
        """
        (old,) = kids(signer)
        new = await store.rotate(60)
        await signer.refresh()
        clock.set(T0 + 59)
        last_old = signer.issue(authenticated(), AUDIENCE, mfa=False)
        assert header_of(last_old)["kid"] == old
        clock.set(T0 + 59 + TTL)
        assert (await verify(last_old)).sub == "user-alice"
        clock.set(T0 + RETIRE_AFTER - 0.001)
        assert kids(signer) == {old, new}
        clock.set(T0 + RETIRE_AFTER)
        assert kids(signer) == {new}

    async def test_rotating_again_withdraws_the_pending_key(
        self, store: SigningKeyStore, signer: AssertionSigner, clock: FakeClock
    ) -> None:
        """A second rotation before activation replaces the pending key; the latest one wins."""
        first = next(iter(kids(signer)))
        pending = await store.rotate(60)
        clock.set(T0 + 10)
        latest = await store.rotate(60)
        await signer.refresh()
        assert kids(signer) == {first, latest} and pending not in kids(signer)
        clock.set(T0 + 69)
        assert header_of(signer.issue(authenticated(), AUDIENCE, mfa=False))["kid"] == first
        clock.set(T0 + 70)
        assert header_of(signer.issue(authenticated(), AUDIENCE, mfa=False))["kid"] == latest
        clock.set(T0 + 70 + TTL + 30)
        assert kids(signer) == {latest}

    async def test_withdrawn_key_is_replaced_at_next_refresh(
        self, signer: AssertionSigner, pool: asyncpg.Pool, clock: FakeClock
    ) -> None:
        """Setting ``retired_at`` by hand (compromise) unpublishes it; a refresh makes a new key."""
        (old,) = kids(signer)
        await pool.execute("UPDATE signing_keys SET retired_at = to_timestamp($1)", clock() - 1)
        await signer.refresh()
        (new,) = kids(signer)
        assert new != old and signer.ready

    async def test_rotate_prunes_keys_retired_long_ago(
        self, store: SigningKeyStore, signer: AssertionSigner, clock: FakeClock, pool: asyncpg.Pool
    ) -> None:
        """Rows retired more than a day ago are deleted by the next rotation."""
        (first,) = kids(signer)
        await store.rotate(0)
        clock.set(T0 + 86_400 + RETIRE_AFTER)
        await store.rotate(0)
        stored = {r["kid"] for r in await pool.fetch("SELECT kid FROM signing_keys")}
        assert first not in stored and len(stored) == 2

    async def test_negative_overlap_is_refused(self, store: SigningKeyStore) -> None:
        """Activation cannot lie in the past."""
        with pytest.raises(ValueError, match="overlap"):
            await store.rotate(-1)

    async def test_cli_rotation_prints_kid_and_activation(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """``rotate_keys`` (behind ``auth-service keys rotate``) reports the kid and its start."""
        kid = await asyncio.to_thread(rotate_keys, settings, 120)
        out = capsys.readouterr().out
        assert kid in out and "signs from" in out and "in 120 s" in out
        delay = await pool.fetchval(
            "SELECT extract(epoch FROM activated_at - created_at) FROM signing_keys WHERE kid = $1",
            kid,
        )
        assert 118 < float(delay) < 122


class TestAssertion:
    async def test_assertion_verifies_downstream(
        self, signer: AssertionSigner, settings: Settings, verify: Verify
    ) -> None:
        """AssertionVerifier accepts it with the contract's header and claims."""
        token = signer.issue(authenticated(), AUDIENCE, mfa=True)
        header = header_of(token)
        assert header == {"alg": "ES256", "typ": "JWT", "kid": next(iter(kids(signer)))}
        claims = await verify(token)
        assert claims.iss == settings.public_url and claims.aud == (AUDIENCE,)
        assert claims.sub == "user-alice" and claims.sid == "sid-1"
        assert claims.raw["roles"] == ["admin", "app-user"]
        assert claims.raw["client_roles"] == {"orders-api": ["reader", "writer"]}
        assert claims.raw["amr"] == ["pwd", "otp"] and claims.mfa
        assert claims.claim("tenant_id") == "t-001" and claims.claim("org.site") == "paris"
        assert claims.raw["org"] == {"site": "paris"}
        assert claims.iat == T0 and claims.exp == T0 + TTL
        assert claims.jti and len(claims.jti) >= 16

    async def test_joserfc_checked_api_accepts_it(
        self, signer: AssertionSigner, settings: Settings, clock: FakeClock
    ) -> None:
        """The lean signing path yields what joserfc's own JWT decoding accepts, key by key."""
        token = signer.issue(authenticated(), AUDIENCE, mfa=False)
        key_set = KeySet.import_key_set(signer.jwks())
        decoded = jwt.decode(token, key_set, algorithms=["ES256"])
        assert decoded.header == header_of(token)
        assert decoded.claims["aud"] == AUDIENCE and decoded.claims["amr"] == ["pwd"]
        assert decoded.claims["iss"] == settings.public_url
        tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        with pytest.raises(BadSignatureError):
            jwt.decode(tampered, key_set, algorithms=["ES256"])

    async def test_reused_while_more_than_half_its_lifetime_remains(
        self, signer: AssertionSigner, clock: FakeClock
    ) -> None:
        """Same credential and audience: the identical token until half the ttl, then a new one."""
        auth = authenticated()
        first = signer.issue(auth, AUDIENCE, mfa=False)
        clock.set(T0 + TTL / 2 - 0.001)
        assert signer.issue(auth, AUDIENCE, mfa=False) == first
        clock.set(T0 + TTL / 2)
        second = signer.issue(auth, AUDIENCE, mfa=False)
        assert second != first
        assert signer.issue(auth, AUDIENCE, mfa=False) == second

    async def test_mfa_completion_gives_a_new_assertion(
        self, signer: AssertionSigner, verify: Verify
    ) -> None:
        """After TOTP the next assertion is new and carries ``otp``; other slots are separate."""
        auth = authenticated()
        before = signer.issue(auth, AUDIENCE, mfa=False)
        after = signer.issue(auth, AUDIENCE, mfa=True)
        assert after != before
        assert (await verify(before)).amr == {"pwd"}
        assert (await verify(after)).amr == {"pwd", "otp"}
        assert signer.issue(auth, "other.app.test", mfa=True) not in (before, after)

    async def test_refreshed_roles_come_with_a_new_assertion(
        self, signer: AssertionSigner, verify: Verify
    ) -> None:
        """A new access token (new `Authenticated`) is never served the old token's assertion."""
        old = signer.issue(authenticated(), AUDIENCE, mfa=False)
        new = signer.issue(authenticated(roles=["app-user", "auditor"]), AUDIENCE, mfa=False)
        assert new != old
        assert (await verify(new)).realm_roles == {"app-user", "auditor"}

    async def test_reused_across_tokens_of_the_same_identity(
        self, signer: AssertionSigner, clock: FakeClock
    ) -> None:
        """Another token of the same subject, session, roles and attributes: same assertion,
        until half its lifetime; then one new assertion serves both tokens again."""
        first = signer.issue(authenticated(jti="at-1"), AUDIENCE, mfa=False)
        clock.set(T0 + TTL / 2 - 0.001)
        assert signer.issue(authenticated(jti="at-2"), AUDIENCE, mfa=False) == first
        clock.set(T0 + TTL / 2)
        renewed = signer.issue(authenticated(jti="at-3"), AUDIENCE, mfa=False)
        assert renewed != first
        assert signer.issue(authenticated(jti="at-4"), AUDIENCE, mfa=False) == renewed

    async def test_identity_change_is_signed_afresh_at_once(
        self, signer: AssertionSigner, verify: Verify
    ) -> None:
        """MFA state, roles, attributes, sid, audience: each change gives a new assertion."""
        base = signer.issue(authenticated(jti="at-1"), AUDIENCE, mfa=False)
        mfa = signer.issue(authenticated(jti="at-2"), AUDIENCE, mfa=True)
        assert mfa != base and (await verify(mfa)).amr == {"pwd", "otp"}
        roles = signer.issue(authenticated(jti="at-3", roles=["app-user"]), AUDIENCE, mfa=False)
        assert (await verify(roles)).realm_roles == {"app-user"}
        attrs = signer.issue(
            authenticated(jti="at-4", attributes={"tenant_id": "t-002"}), AUDIENCE, mfa=False
        )
        assert (await verify(attrs)).claim("tenant_id") == "t-002"
        sid = signer.issue(authenticated(jti="at-5", sid="sid-2"), AUDIENCE, mfa=False)
        assert (await verify(sid)).sid == "sid-2"
        other_aud = signer.issue(authenticated(jti="at-6"), "other.app.test", mfa=False)
        assert len({base, mfa, roles, attrs, sid, other_aud}) == 6
        assert signer.issue(authenticated(jti="at-7"), AUDIENCE, mfa=False) == base

    async def test_never_shared_between_subjects(
        self, signer: AssertionSigner, verify: Verify
    ) -> None:
        """Two subjects with identical roles, attributes and sid get assertions of their own."""
        alice = signer.issue(authenticated(sub="user-alice"), AUDIENCE, mfa=False)
        bob = signer.issue(authenticated(sub="user-bob"), AUDIENCE, mfa=False)
        assert alice != bob
        assert (await verify(alice)).sub == "user-alice"
        assert (await verify(bob)).sub == "user-bob"

    async def test_shared_assertion_never_outlives_the_new_token(
        self, signer: AssertionSigner, verify: Verify
    ) -> None:
        """A token of the same identity expiring before the cached assertion gets its own."""
        long_lived = signer.issue(authenticated(jti="at-1"), AUDIENCE, mfa=False)
        short = signer.issue(authenticated(jti="at-2", exp=T0 + 20), AUDIENCE, mfa=False)
        assert short != long_lived
        assert (await verify(short)).exp == T0 + 20

    async def test_assertion_never_outlives_the_access_token(
        self, signer: AssertionSigner, clock: FakeClock, verify: Verify
    ) -> None:
        """``exp`` is capped at the credential's expiry, and reuse at half that span."""
        auth = authenticated(exp=T0 + 20)
        token = signer.issue(auth, AUDIENCE, mfa=False)
        assert (await verify(token)).exp == T0 + 20
        clock.set(T0 + 10)
        assert signer.issue(auth, AUDIENCE, mfa=False) != token

    async def test_attributes_cannot_override_contract_claims(
        self, signer: AssertionSigner, verify: Verify
    ) -> None:
        """An attribute configured at ``sub``, ``roles`` or ``exp.x`` is left out."""
        auth = authenticated(
            attributes={"sub": "admin", "roles": ["root"], "exp.x": 1, "tenant_id": "t-001"}
        )
        claims = await verify(signer.issue(auth, AUDIENCE, mfa=False))
        assert claims.sub == "user-alice" and claims.raw["roles"] == ["admin", "app-user"]
        assert claims.exp == T0 + TTL and claims.claim("tenant_id") == "t-001"

    async def test_second_worker_publishes_the_same_keys(
        self,
        database_url: str,
        signer: AssertionSigner,
        box: SecretBox,
        settings: Settings,
        clock: FakeClock,
        verify: Verify,
    ) -> None:
        """Another worker on the same database serves the same JWKS; its assertions verify."""
        other_pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            other = make_signer(SigningKeyStore(other_pool, box, clock=clock), settings, clock)
            await other.refresh()
            assert other.jwks() == signer.jwks()
            token = other.issue(authenticated(), AUDIENCE, mfa=False)
            assert (await verify(token)).sub == "user-alice"
            new = await SigningKeyStore(other_pool, box, clock=clock).rotate(60)
            await signer.refresh()
            await other.refresh()
            assert new in kids(signer) and other.jwks() == signer.jwks()
        finally:
            await other_pool.close()


class TestLifecycle:
    async def test_start_loads_keys_and_stops_on_the_event(
        self, store: SigningKeyStore, settings: Settings, clock: FakeClock
    ) -> None:
        """``start`` creates the first key and loads it; setting ``stop`` ends the refresher."""
        signer = make_signer(store, settings, clock)
        stop = asyncio.Event()
        task = await signer.start(stop)
        assert signer.ready and len(kids(signer)) == 1
        stop.set()
        await asyncio.wait_for(task, 5)

    async def test_database_down_at_start_means_503_not_a_crash(
        self, settings: Settings, clock: FakeClock
    ) -> None:
        """With no keys loaded, the worker starts, ``issue`` raises 503, the JWKS is empty."""

        class DownStore:
            async def load(self) -> None:
                raise OSError("connection refused")

        signer = AssertionSigner(DownStore(), issuer=settings.public_url, ttl=TTL, clock=clock)  # type: ignore[arg-type]
        stop = asyncio.Event()
        task = await signer.start(stop)
        assert not signer.ready and signer.jwks() == {"keys": []}
        with pytest.raises(DependencyUnavailable) as caught:
            signer.issue(authenticated(), AUDIENCE, mfa=False)
        assert caught.value.status == 503
        stop.set()
        await asyncio.wait_for(task, 5)


class TestEndpoint:
    async def test_jwks_endpoint_serves_public_keys(
        self, signer: AssertionSigner, settings: Settings
    ) -> None:
        """``GET /.well-known/jwks.json``: public ES256 keys, cacheable for 60 s."""
        app = create_app(settings, configure_logs=False)
        async with AsyncTestClient(app) as client:
            services: Services = app.state.services
            await eventually(lambda: services.assertions.ready, "signing keys loaded")
            r = await client.get("/.well-known/jwks.json")
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=60"
        assert r.headers["content-type"].startswith("application/jwk-set+json")
        keys = r.json()["keys"]
        assert keys and {k["kid"] for k in keys} >= kids(signer)
        for key in keys:
            assert key["kty"] == "EC" and key["crv"] == "P-256" and "d" not in key
            assert key["use"] == "sig" and key["alg"] == "ES256"

    async def test_jwks_endpoint_without_keys_is_503(self, base_env: dict[str, str]) -> None:
        """No keys (PostgreSQL unreachable): a problem+json 503, not a cacheable empty set."""
        down = {**base_env, "AUTH_DATABASE_URL": "postgresql://postgres@127.0.0.1:9/none"}
        app = create_app(load_settings(down, env_file=False), configure_logs=False)
        async with AsyncTestClient(app) as client:
            r = await client.get("/.well-known/jwks.json")
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert "public" not in r.headers.get("cache-control", "")
