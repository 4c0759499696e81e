"""JWKSCache, parse_jwks and discover: key selection, single-flight refresh, failures, freshness."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from auth_service.verifier import DiscoveryError, JWKSCache, ProviderMetadata, discover, parse_jwks

from .support import JWKS_URI, FakeClock, JWKSEndpoint, ec_key, public_jwk, rsa_key


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def endpoint() -> JWKSEndpoint:
    return JWKSEndpoint([public_jwk(rsa_key())])


@pytest.fixture
async def http(endpoint: JWKSEndpoint) -> AsyncIterator[httpx.AsyncClient]:
    async with endpoint.client() as client:
        yield client


@pytest.fixture
def outcomes() -> list[str]:
    return []


@pytest.fixture
def cache(http: httpx.AsyncClient, clock: FakeClock, outcomes: list[str]) -> JWKSCache:
    return JWKSCache(JWKS_URI, http, clock=clock, on_fetch=outcomes.append)


class TestParseJWKS:
    def test_keeps_sig_keys_and_keys_without_use(self) -> None:
        """Entries with ``use: sig`` or no ``use`` become keys, indexed by kid."""
        no_use = {k: v for k, v in public_jwk(ec_key()).items() if k != "use"}
        keys = parse_jwks(json.dumps({"keys": [public_jwk(rsa_key()), no_use]}))
        assert set(keys) == {"rsa-1", "ec-1"}
        assert keys["rsa-1"].as_dict(private=False) == public_jwk(rsa_key())

    def test_ignores_encryption_and_symmetric_keys(self) -> None:
        """Keycloak's ``use: enc`` RSA-OAEP key and any ``oct`` key are never verification keys."""
        enc = public_jwk(rsa_key("enc-1"), use="enc", alg="RSA-OAEP")
        oct_key = {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "use": "sig"}
        keys = parse_jwks(json.dumps({"keys": [enc, oct_key, public_jwk(rsa_key())]}))
        assert set(keys) == {"rsa-1"}

    def test_skips_bad_entries_one_by_one(self) -> None:
        """Unparsable entries, entries without a string kid and repeats are skipped alone."""
        broken = {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"}
        no_kid = {k: v for k, v in public_jwk(ec_key()).items() if k != "kid"}
        numeric_kid = public_jwk(ec_key(), kid=7)
        twin = public_jwk(ec_key(), kid="rsa-1")
        doc = {"keys": ["nope", 3, broken, no_kid, numeric_kid, public_jwk(rsa_key()), twin]}
        keys = parse_jwks(json.dumps(doc))
        assert list(keys) == ["rsa-1"]
        assert keys["rsa-1"].key_type == "RSA"

    @pytest.mark.parametrize(
        "document",
        [
            b"<html>502</html>",
            b"[]",
            b'{"keys": "x"}',
            b'{"keys": []}',
            b'{"keys": [{"use": "enc"}]}',
        ],
    )
    def test_refuses_documents_without_usable_keys(self, document: bytes) -> None:
        """Anything that is not a JWKS with at least one usable key is a ValueError."""
        with pytest.raises(ValueError):
            parse_jwks(document)


class TestLookup:
    async def test_get_never_fetches(self, cache: JWKSCache, endpoint: JWKSEndpoint) -> None:
        """``get`` is a pure lookup: an unknown kid is None and costs no request."""
        assert cache.get("rsa-1") is None
        assert endpoint.count == 0

    async def test_first_unknown_kid_loads_the_set(
        self, cache: JWKSCache, endpoint: JWKSEndpoint, outcomes: list[str]
    ) -> None:
        """The first lookup downloads the JWKS; later lookups of known kids do not."""
        assert await cache.get_or_refresh("rsa-1") is not None
        assert await cache.get_or_refresh("rsa-1") is cache.get("rsa-1")
        assert endpoint.count == 1
        assert outcomes == ["ok"]
        assert str(endpoint.requests[0].url) == JWKS_URI

    async def test_request_carries_factory_headers_and_timeout(
        self, http: httpx.AsyncClient, endpoint: JWKSEndpoint
    ) -> None:
        """``headers_factory`` is called per download (X-Request-ID); ``fetch_timeout`` is used."""
        ids = iter(["rid-1", "rid-2"])
        cache = JWKSCache(
            JWKS_URI, http, fetch_timeout=1.5, headers_factory=lambda: {"X-Request-ID": next(ids)}
        )
        await cache.refresh(force=True)
        await cache.refresh(force=True)
        assert [r.headers["x-request-id"] for r in endpoint.requests] == ["rid-1", "rid-2"]
        assert endpoint.requests[0].extensions["timeout"]["connect"] == 1.5


class TestSingleFlight:
    async def test_200_concurrent_callers_share_one_fetch(
        self, cache: JWKSCache, endpoint: JWKSEndpoint
    ) -> None:
        """200 concurrent lookups of a new kid cause exactly one HTTP GET, and all get the key."""
        results = await asyncio.gather(*(cache.get_or_refresh("rsa-1") for _ in range(200)))
        assert endpoint.count == 1
        assert all(key is results[0] is not None for key in results)

    async def test_unknown_kids_are_rate_limited(
        self, cache: JWKSCache, endpoint: JWKSEndpoint, clock: FakeClock
    ) -> None:
        """After a download, another unknown kid within 10 s is free; after 10 s it fetches."""
        await cache.get_or_refresh("rsa-1")
        clock.advance(9.9)
        assert await cache.get_or_refresh("new") is None
        assert endpoint.count == 1
        clock.advance(0.1)
        endpoint.serve(rsa_key(), ec_key("new"))
        assert await cache.get_or_refresh("new") is not None
        assert endpoint.count == 2

    async def test_forced_refresh_ignores_the_interval(
        self, cache: JWKSCache, endpoint: JWKSEndpoint
    ) -> None:
        """``refresh(force=True)`` downloads even right after another download."""
        assert await cache.refresh() is True
        assert await cache.refresh() is False
        assert await cache.refresh(force=True) is True
        assert endpoint.count == 2

    async def test_cancelled_caller_does_not_cancel_the_shared_fetch(
        self, http: httpx.AsyncClient, endpoint: JWKSEndpoint
    ) -> None:
        """A caller that gives up leaves the in-flight download running for the others."""
        release = asyncio.Event()
        entered = asyncio.Event()

        async def slow(request: httpx.Request) -> httpx.Response:
            entered.set()
            await release.wait()
            return endpoint(request)

        async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as client:
            cache = JWKSCache(JWKS_URI, client)
            quitter = asyncio.ensure_future(cache.get_or_refresh("rsa-1"))
            stayer = asyncio.ensure_future(cache.get_or_refresh("rsa-1"))
            await entered.wait()
            quitter.cancel()
            release.set()
            assert await stayer is not None
            assert quitter.cancelled()
            assert endpoint.count == 1


class TestFailures:
    @pytest.mark.parametrize(
        ("status", "body"),
        [
            (200, b"<html>oops</html>"),
            (200, b'{"keys": []}'),
            (200, b'{"keys": [{"kty": "RSA", "kid": "x"}]}'),
            (200, b'"keys"'),
            (500, b'{"keys": []}'),
            (404, b"not found"),
        ],
    )
    async def test_garbage_keeps_old_keys(
        self,
        cache: JWKSCache,
        endpoint: JWKSEndpoint,
        outcomes: list[str],
        status: int,
        body: bytes,
    ) -> None:
        """A bad answer is a failed fetch: the keys already held stay, and ``error`` is reported."""
        await cache.refresh()
        endpoint.status, endpoint.body = status, body
        assert await cache.refresh(force=True) is False
        assert cache.get("rsa-1") is not None
        assert outcomes == ["ok", "error"]
        assert cache.consecutive_failures == 1

    async def test_unreachable_endpoint_keeps_serving_known_keys(
        self, cache: JWKSCache, endpoint: JWKSEndpoint, clock: FakeClock
    ) -> None:
        """When the IdP is down, known kids still resolve and unknown ones stay rate-limited."""
        await cache.refresh()
        endpoint.error = httpx.ConnectError("connection refused")
        clock.advance(11)
        assert await cache.get_or_refresh("other") is None
        assert await cache.get_or_refresh("rsa-1") is not None
        assert await cache.get_or_refresh("another") is None
        assert endpoint.count == 2

    async def test_successful_fetch_replaces_the_set(
        self, cache: JWKSCache, endpoint: JWKSEndpoint
    ) -> None:
        """A key the IdP no longer publishes stops resolving after the next good download."""
        await cache.refresh()
        endpoint.serve(ec_key())
        await cache.refresh(force=True)
        assert cache.get("rsa-1") is None
        assert set(cache.keys) == {"ec-1"}

    async def test_broken_metrics_hook_is_contained(
        self, http: httpx.AsyncClient, endpoint: JWKSEndpoint
    ) -> None:
        """An exception in ``on_fetch`` does not undo or fail the download."""

        def explode(outcome: str) -> None:
            raise RuntimeError(outcome)

        cache = JWKSCache(JWKS_URI, http, on_fetch=explode)
        assert await cache.refresh() is True
        assert cache.get("rsa-1") is not None


class TestFreshness:
    async def test_healthy_tracks_the_age_of_the_keys(
        self, cache: JWKSCache, endpoint: JWKSEndpoint, clock: FakeClock
    ) -> None:
        """Healthy once loaded, unhealthy when the last success is older than ``max_age``."""
        assert not cache.healthy
        assert cache.last_success is None
        await cache.refresh()
        assert cache.healthy
        assert cache.last_success == clock.now
        endpoint.error = httpx.ConnectError("down")
        clock.advance(300)
        await cache.refresh(force=True)
        assert cache.healthy
        clock.advance(1)
        assert not cache.healthy
        assert cache.get("rsa-1") is not None

    async def test_next_refresh_is_before_max_age(self, cache: JWKSCache) -> None:
        """After a success the next background refresh is due at 75-90 % of ``max_age``."""
        assert cache.next_refresh_in() == 0.0
        await cache.refresh()
        delays = [cache.next_refresh_in() for _ in range(50)]
        assert all(225 <= d <= 270 for d in delays)
        assert len(set(delays)) > 1

    async def test_backoff_grows_with_failures_and_is_capped(
        self, cache: JWKSCache, endpoint: JWKSEndpoint
    ) -> None:
        """Failures back off from ``min_refresh_interval``, doubling with jitter, up to max_age."""
        endpoint.error = httpx.ConnectError("down")
        bounds = []
        for _ in range(8):
            await cache.refresh(force=True)
            bounds.append(max(cache.next_refresh_in() for _ in range(50)))
        assert all(d <= cap for d, cap in zip(bounds, [10, 20, 40, 80, 160, 300, 300, 300]))
        assert bounds[0] >= 5
        assert bounds[-1] >= 150

    async def test_run_background_loads_at_once_and_stops(
        self, http: httpx.AsyncClient, endpoint: JWKSEndpoint
    ) -> None:
        """With nothing cached the loop downloads immediately; setting ``stop`` ends it."""
        stop = asyncio.Event()
        cache = JWKSCache(JWKS_URI, http, on_fetch=lambda outcome: stop.set())
        await asyncio.wait_for(cache.run_background(stop), timeout=5)
        assert endpoint.count == 1
        assert cache.get("rsa-1") is not None

    async def test_run_background_retries_failures(
        self, http: httpx.AsyncClient, endpoint: JWKSEndpoint
    ) -> None:
        """Failed downloads are retried (here with a zero backoff) until one succeeds."""
        stop = asyncio.Event()
        seen: list[str] = []

        def record(outcome: str) -> None:
            seen.append(outcome)
            if len(seen) == 3:
                endpoint.error = None
            if outcome == "ok":
                stop.set()

        endpoint.error = httpx.ConnectError("down")
        cache = JWKSCache(JWKS_URI, http, min_refresh_interval=0.0, on_fetch=record)
        await asyncio.wait_for(cache.run_background(stop), timeout=5)
        assert seen == ["error", "error", "error", "ok"]
        assert cache.consecutive_failures == 0

    async def test_run_background_waits_until_stopped(
        self, cache: JWKSCache, endpoint: JWKSEndpoint
    ) -> None:
        """With fresh keys the loop waits; ``stop`` wakes it without another download."""
        await cache.refresh()
        stop = asyncio.Event()
        task = asyncio.ensure_future(cache.run_background(stop))
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        assert endpoint.count == 1


DISCOVERY = {
    "issuer": "https://sso.example.com/realms/acme",
    "jwks_uri": "https://sso.example.com/realms/acme/protocol/openid-connect/certs",
    "token_endpoint": "https://sso.example.com/realms/acme/protocol/openid-connect/token",
    "introspection_endpoint": "https://sso.example.com/realms/acme/protocol/openid-connect/token/introspect",
    "authorization_endpoint": "https://sso.example.com/realms/acme/protocol/openid-connect/auth",
    "end_session_endpoint": "https://sso.example.com/realms/acme/protocol/openid-connect/logout",
    "grant_types_supported": ["authorization_code"],
}


def discovery_client(
    status: int = 200, body: object = DISCOVERY, seen: list[httpx.Request] | None = None
) -> httpx.AsyncClient:
    """A client whose requests get ``status`` and ``body``, recorded in ``seen``."""

    def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


class TestDiscover:
    async def test_reads_the_document(self) -> None:
        """The well-known document is read; absent optional endpoints are None."""
        seen: list[httpx.Request] = []
        async with discovery_client(seen=seen) as http:
            meta = await discover("https://sso.example.com/realms/acme", http)
        assert meta == ProviderMetadata(
            **{k: v for k, v in DISCOVERY.items() if k != "grant_types_supported"}  # type: ignore[arg-type]
        )
        assert meta.userinfo_endpoint is None
        assert str(seen[0].url) == (
            "https://sso.example.com/realms/acme/.well-known/openid-configuration"
        )

    async def test_issuer_must_match_exactly(self) -> None:
        """A trailing slash is a different issuer, though the URL is built the same way."""
        seen: list[httpx.Request] = []
        async with discovery_client(seen=seen) as http:
            with pytest.raises(DiscoveryError, match="expected"):
                await discover("https://sso.example.com/realms/acme/", http)
        assert seen[0].url.path == "/realms/acme/.well-known/openid-configuration"

    @pytest.mark.parametrize(
        ("status", "body"),
        [
            (503, DISCOVERY),
            (200, b"<html>"),
            (200, {"issuer": "https://sso.example.com/realms/acme"}),
        ],
    )
    async def test_unusable_answers_raise(self, status: int, body: object) -> None:
        """Non-200 answers, non-JSON and documents without ``jwks_uri`` raise DiscoveryError."""
        async with discovery_client(status, body) as http:
            with pytest.raises(DiscoveryError):
                await discover("https://sso.example.com/realms/acme", http)

    async def test_network_errors_raise(self) -> None:
        """A transport error becomes DiscoveryError."""

        def down(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as http:
            with pytest.raises(DiscoveryError, match="ConnectError"):
                await discover("https://sso.example.com/realms/acme", http)
