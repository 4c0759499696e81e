"""A callback that cannot be trusted is a 400/401 with an audit event, never a 500 or a session."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from auth_service.config import load_settings
from auth_service.oidc.login import LoginState
from tests.fakes.keycloak import FakeKeycloak
from tests.integration.sessions.conftest import (
    BROWSER,
    Events,
    audited,
    browser_login,
    idp_login,
    path_of,
    running,
    start_login,
)


def _state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


async def _edit_state(
    redis: Redis, prefix: str, url: str, change: Callable[[LoginState], LoginState]
) -> None:
    """Rewrite the server-side login state behind an authorization URL."""
    key = f"{prefix}login-state:{hashlib.sha256(_state_of(url).encode()).hexdigest()}"
    raw = await redis.get(key)
    assert raw is not None
    state = change(msgspec.msgpack.decode(raw, type=LoginState))
    await redis.set(key, msgspec.msgpack.encode(state), keepttl=True)


def _no_session(client: AsyncTestClient[Litestar]) -> bool:
    return client.cookies.get("auth_session") is None


async def test_replayed_callback_is_400(
    web: AsyncTestClient[Litestar], audit_events: Events
) -> None:
    """The same callback URL a second time: the state was single use → 400 state_mismatch."""
    url = await start_login(web)
    callback = path_of(await idp_login(url))
    assert (await web.get(callback)).status_code == 302
    replay = await web.get(callback)
    assert replay.status_code == 400
    assert replay.json()["reason"] == "state_mismatch"
    await audited(audit_events, "login.failure", "state_mismatch")


async def test_unknown_state_is_400(web: AsyncTestClient[Litestar], audit_events: Events) -> None:
    """A state this service never issued → 400, audited."""
    await start_login(web)
    r = await web.get("/auth/callback", params={"code": "x", "state": "not-a-state"})
    assert r.status_code == 400
    assert r.json()["reason"] == "state_mismatch"
    await audited(audit_events, "login.failure", "state_mismatch")
    assert _no_session(web)


async def test_state_from_another_browser_is_400(
    web: AsyncTestClient[Litestar], idp_settings: Any, audit_events: Events
) -> None:
    """A callback carried to a browser that did not start the login (login CSRF) → 400."""
    url = await start_login(web)
    callback = path_of(await idp_login(url))
    web.cookies.clear()  # another browser: no binding cookie
    r = await web.get(callback)
    assert r.status_code == 400
    assert r.json()["reason"] == "state_mismatch"
    assert _no_session(web)


async def test_expired_state_is_400(
    web: AsyncTestClient[Litestar], redis_client: Redis, redis_prefix: str, audit_events: Events
) -> None:
    """A login state whose TTL ran out → 400 state_mismatch."""
    url = await start_login(web)
    key = f"{redis_prefix}login-state:{hashlib.sha256(_state_of(url).encode()).hexdigest()}"
    callback = path_of(await idp_login(url))
    await redis_client.pexpire(key, 1)

    deadline = time.monotonic() + 5
    while await redis_client.exists(key):  # poll until Redis has expired it
        assert time.monotonic() < deadline, "login state did not expire"
        await asyncio.sleep(0.005)
    r = await web.get(callback)
    assert r.status_code == 400
    assert r.json()["reason"] == "state_mismatch"


@pytest.mark.parametrize(
    "verifier",
    ["", "wrong-verifier-" + "x" * 40],
    ids=["missing", "wrong"],
)
async def test_bad_pkce_verifier_is_400(
    web: AsyncTestClient[Litestar],
    redis_client: Redis,
    redis_prefix: str,
    audit_events: Events,
    verifier: str,
) -> None:
    """A missing or wrong PKCE verifier: the IdP refuses the code → 400 code_exchange_failed."""
    url = await start_login(web)
    await _edit_state(
        redis_client, redis_prefix, url, lambda s: msgspec.structs.replace(s, verifier=verifier)
    )
    r = await web.get(path_of(await idp_login(url)))
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == "code_exchange_failed"
    await audited(audit_events, "login.failure", "code_exchange_failed")
    assert _no_session(web)


async def test_wrong_nonce_is_401(
    web: AsyncTestClient[Litestar], redis_client: Redis, redis_prefix: str, audit_events: Events
) -> None:
    """An ID token whose nonce is not the one sent → 401 invalid_id_token."""
    url = await start_login(web)
    await _edit_state(
        redis_client, redis_prefix, url, lambda s: msgspec.structs.replace(s, nonce="other")
    )
    r = await web.get(path_of(await idp_login(url)))
    assert r.status_code == 401, r.text
    assert r.json()["reason"] == "invalid_id_token"
    assert "nonce_mismatch" in r.json()["detail"]
    await audited(audit_events, "login.failure", "invalid_id_token")
    assert _no_session(web)


@pytest.mark.parametrize(
    ("claim", "value", "expected"),
    [
        ("aud", "someone-else", "wrong_audience"),
        ("iss", "http://evil.example/realms/acme", "wrong_issuer"),
        ("exp", 1_000_000, "token_expired"),
        ("typ", "Bearer", "wrong_token_type"),
        ("at_hash", "AAAAAAAAAAAAAAAAAAAAAA", "at_hash_mismatch"),
    ],
)
async def test_bad_id_token_claims_are_401(
    web: AsyncTestClient[Litestar],
    idp: FakeKeycloak,
    audit_events: Events,
    monkeypatch: pytest.MonkeyPatch,
    claim: str,
    value: Any,
    expected: str,
) -> None:
    """An ID token with a wrong ``aud``/``iss``/``exp``/``typ``/``at_hash`` → 401."""
    original = idp.id_token_claims

    def tampered(*args: Any, **kwargs: Any) -> dict[str, Any]:
        claims = original(*args, **kwargs)
        claims[claim] = value
        return claims

    monkeypatch.setattr(idp, "id_token_claims", tampered)
    r = await browser_login(web)
    assert r.status_code == 401, r.text
    assert r.json()["reason"] == "invalid_id_token"
    assert expected in r.json()["detail"]
    await audited(audit_events, "login.failure", "invalid_id_token")
    assert _no_session(web)


async def test_id_token_with_disallowed_alg_is_401(
    idp: FakeKeycloak,
    idp_env: dict[str, str],
    audit_events: Events,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An ID token signed with an algorithm outside ``AUTH_OIDC_ALGORITHMS`` → 401."""
    idp.add_key("ES256")
    original = idp.keys.sign

    def sign(claims: dict[str, Any], **kwargs: Any) -> str:
        if claims.get("typ") == "ID":
            kwargs["alg"] = "ES256"
        return original(claims, **kwargs)

    monkeypatch.setattr(idp.keys, "sign", sign)
    settings = load_settings({**idp_env, "AUTH_OIDC_ALGORITHMS": "RS256,PS256"}, env_file=False)
    async with running(settings) as client:
        r = await browser_login(client)
        assert r.status_code == 401, r.text
        assert "unsupported_alg" in r.json()["detail"]
    await audited(audit_events, "login.failure", "invalid_id_token")


async def test_idp_error_response_is_400(
    web: AsyncTestClient[Litestar], audit_events: Events
) -> None:
    """``error=access_denied`` from the IdP → 400 idp_error, audited."""
    url = await start_login(web)
    r = await web.get("/auth/callback", params={"error": "access_denied", "state": _state_of(url)})
    assert r.status_code == 400
    assert r.json()["reason"] == "idp_error"
    await audited(audit_events, "login.failure", "idp_error")


async def test_token_endpoint_down_is_503(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """The IdP's token endpoint failing with 500 → 503, not 500."""
    url = await start_login(web)
    callback = path_of(await idp_login(url))
    idp.set_fault("token", "error500")
    r = await web.get(callback)
    assert r.status_code == 503, r.text


async def test_failure_page_is_html_for_browsers(web: AsyncTestClient[Litestar]) -> None:
    """Browsers get a small HTML page with the request id, a CSP without scripts,
    ``frame-ancestors 'none'``, ``no-store`` and a ``Referrer-Policy``."""
    await start_login(web)
    r = await web.get(
        "/auth/callback",
        params={"code": "x", "state": "bogus"},
        headers={**BROWSER, "X-Request-ID": "rid-login-1"},
    )
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/html")
    assert "rid-login-1" in r.text
    assert "<script" not in r.text.lower()
    assert '<html lang="en">' in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp and "unsafe-inline" not in csp
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert 'href="http://auth.test/auth/login"' in r.text
