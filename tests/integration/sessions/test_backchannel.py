"""Back-channel logout (OIDC Back-Channel Logout 1.0, KEYCLOAK.md §2.5)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from tests.fakes.keycloak import FakeKeycloak
from tests.integration.sessions.conftest import (
    Events,
    audited,
    browser_login,
    forward_auth,
    session_cookie,
)

DAY = 86_400
ORIGINAL = {"X-Original-URL": "https://app.test/orders/1", "X-Original-Method": "GET"}


def _sid(idp: FakeKeycloak, username: str = "alice") -> str:
    return [s.sid for s in idp.sessions.values() if s.username == username and s.active][-1]


async def _post(client: AsyncTestClient[Litestar], token: str) -> Any:
    return await client.post("/auth/backchannel-logout", data={"logout_token": token})


async def test_logout_token_ends_session_and_revokes_sid(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak, audit_events: Events
) -> None:
    """A valid logout token: 200; the session cookie and bearer tokens of that sid are refused."""
    await browser_login(web)
    sid = _sid(idp)
    bearer = idp.mint_access_token("alice", sid=sid)
    assert (await forward_auth(web)).status_code == 200
    r = await _post(web, idp.mint_logout_token("alice", sid=sid))
    assert r.status_code == 200, r.text
    assert (await forward_auth(web)).status_code == 401
    api = await web.get(
        "/authz/auth-request", headers={**ORIGINAL, "Authorization": f"Bearer {bearer}"}
    )
    assert api.status_code == 401
    assert api.json()["reason"] == "token_revoked"
    await audited(audit_events, "logout.backchannel")
    await audited(audit_events, "session.revoked", "backchannel")


async def test_replayed_logout_token_is_400(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak, audit_events: Events
) -> None:
    """The same ``jti`` twice: the second delivery is refused with 400."""
    await browser_login(web)
    token = idp.mint_logout_token("alice", sid=_sid(idp))
    assert (await _post(web, token)).status_code == 200
    again = await _post(web, token)
    assert again.status_code == 400
    assert again.json()["reason"] == "replayed"
    await audited(audit_events, "logout.backchannel", "replayed")


async def test_sub_only_token_ends_every_session_of_the_user(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """Without ``sid`` the token ends every session of ``sub``."""
    await browser_login(web)
    first = session_cookie(web)
    web.cookies.clear()
    await browser_login(web)
    second = session_cookie(web)
    r = await _post(web, idp.mint_logout_token("alice", include_sid=False))
    assert r.status_code == 200
    for cookie in (first, second):
        assert (await forward_auth(web, cookie=cookie)).status_code == 401


def _tampered_signature(token: str) -> str:
    head, body, sig = token.split(".")
    flipped = ("A" if sig[10] != "A" else "B") + sig[11:]
    return f"{head}.{body}.{sig[:10]}{flipped}"


BAD_TOKENS: list[tuple[str, dict[str, Any], str]] = [
    ("nonce", {"extra_claims": {"nonce": "n-1"}}, "nonce_present"),
    ("no events", {"events": {}}, "missing_event"),
    ("other event", {"events": {"http://example.com/other": {}}}, "missing_event"),
    ("typ claim", {"extra_claims": {"typ": "ID"}}, "wrong_token_type"),
    ("typ header", {"typ_header": "at+jwt"}, "wrong_token_type"),
    ("aud", {"client_id": "orders-api"}, "wrong_audience"),
    ("iss", {"extra_claims": {"iss": "http://evil.example/realms/acme"}}, "wrong_issuer"),
    ("no jti", {"extra_claims": {"jti": None}}, "missing_jti"),
    ("no iat", {"extra_claims": {"iat": None}}, "bad_iat"),
    ("expired", {"now": 1_000_000}, "token_expired"),
    ("no exp", {"extra_claims": {"exp": None}}, "missing_exp"),
    ("iat 400 days old", {"now": time.time() - 400 * DAY, "lifetime": 401 * DAY}, "iat_too_old"),
    ("iat 5 min + leeway + 10 s old", {"now": time.time() - 340, "lifetime": 600}, "iat_too_old"),
    ("b64 header", {"header_overrides": {"b64": True}}, "forbidden_header"),
    ("jku header", {"header_overrides": {"jku": "https://evil.example/jwks"}}, "forbidden_header"),
    ("no sid nor sub", {"username": None, "include_sid": False}, "missing_sid_and_sub"),
]


@pytest.mark.parametrize(
    ("kwargs", "reason"), [(k, r) for _, k, r in BAD_TOKENS], ids=[n for n, _, _ in BAD_TOKENS]
)
async def test_bad_logout_tokens_are_400(
    web: AsyncTestClient[Litestar],
    idp: FakeKeycloak,
    audit_events: Events,
    kwargs: dict[str, Any],
    reason: str,
) -> None:
    """Each defect of the receiver checklist makes a 400 and ends nothing."""
    await browser_login(web)
    kwargs = {"sid": _sid(idp), **kwargs}
    if kwargs.get("username", "alice") is None and not kwargs.get("include_sid", True):
        kwargs.pop("sid")
    username = kwargs.pop("username", "alice")
    r = await _post(web, idp.mint_logout_token(username, **kwargs))
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == reason
    assert (await forward_auth(web)).status_code == 200
    await audited(audit_events, "logout.backchannel", reason)


async def test_bad_signature_is_400(web: AsyncTestClient[Litestar], idp: FakeKeycloak) -> None:
    """A logout token whose signature does not verify → 400."""
    await browser_login(web)
    token = _tampered_signature(idp.mint_logout_token("alice", sid=_sid(idp)))
    r = await _post(web, token)
    assert r.status_code == 400
    assert r.json()["reason"] == "bad_signature"
    assert (await forward_auth(web)).status_code == 200


async def test_keycloak_24_typ_jwt_is_accepted(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """Keycloak 24 sends ``typ: JWT`` in the header; that is accepted."""
    await browser_login(web)
    token = idp.mint_logout_token("alice", sid=_sid(idp), typ_header="JWT")
    assert (await _post(web, token)).status_code == 200
    assert (await forward_auth(web)).status_code == 401


async def test_missing_logout_token_is_400(web: AsyncTestClient[Litestar]) -> None:
    """No ``logout_token`` form field → 400 problem+json."""
    r = await web.post("/auth/backchannel-logout", data={})
    assert r.status_code == 400


async def test_sub_only_token_without_exp_and_400_days_old_ends_nothing(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak, audit_events: Events
) -> None:
    """The token that used to end every session of a user (only ``sub``, no ``exp``, ``iat``
    400 days old) is refused with 400 and the user's sessions stay."""
    await browser_login(web)
    token = idp.mint_logout_token(
        "alice", include_sid=False, now=time.time() - 400 * DAY, extra_claims={"exp": None}
    )
    r = await _post(web, token)
    assert r.status_code == 400
    assert r.json()["reason"] in ("missing_exp", "iat_too_old")
    assert (await forward_auth(web)).status_code == 200
    await audited(audit_events, "logout.backchannel", r.json()["reason"])


async def test_iat_within_five_minutes_and_leeway_is_accepted(
    web: AsyncTestClient[Litestar], idp: FakeKeycloak
) -> None:
    """``iat`` 5 minutes + 20 s old (under the 30 s leeway) is still fresh enough."""
    await browser_login(web)
    token = idp.mint_logout_token("alice", sid=_sid(idp), now=time.time() - 320, lifetime=600)
    assert (await _post(web, token)).status_code == 200
    assert (await forward_auth(web)).status_code == 401


async def test_jti_is_remembered_until_exp(
    web: AsyncTestClient[Litestar],
    idp: FakeKeycloak,
    redis_client: Redis,
    redis_prefix: str,
) -> None:
    """A token valid for another hour has its ``jti`` remembered for that hour (plus the
    leeway), not a fixed 600 s, so it cannot be replayed while it is valid."""
    await browser_login(web)
    jti = "jti-remembered-until-exp"
    token = idp.mint_logout_token("alice", sid=_sid(idp), lifetime=3600, extra_claims={"jti": jti})
    assert (await _post(web, token)).status_code == 200
    key = f"{redis_prefix}logout-jti:{hashlib.sha256(jti.encode()).hexdigest()}"
    ttl = await redis_client.ttl(key)
    assert 3600 - 60 < ttl <= 3600 + 30
    again = await _post(web, token)
    assert again.status_code == 400 and again.json()["reason"] == "replayed"
