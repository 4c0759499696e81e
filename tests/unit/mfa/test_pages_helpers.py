"""Page helpers: CSRF tokens bound to the caller, and the ``rd`` allow-list."""

from __future__ import annotations

import base64
import secrets

import pytest

from auth_service.config import Settings, load_settings
from auth_service.mfa.pages import _csrf_ok, csrf_token, safe_redirect
from auth_service.mfa.service import Caller


@pytest.fixture
def conf() -> Settings:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    return load_settings(
        {
            "AUTH_OIDC_ISSUER": "http://idp.test/realms/acme",
            "AUTH_OIDC_CLIENT_SECRET": "x",
            "AUTH_PUBLIC_URL": "https://auth.example.com",
            "AUTH_DATABASE_URL": "postgresql://db/auth",
            "AUTH_REDIS_URL": "redis://redis/0",
            "AUTH_POLICY_FILE": "/dev/null",
            "AUTH_SECRET_KEYS": f"k1:{key}",
            "AUTH_ALLOWED_REDIRECT_HOSTS": "app.example.com,*.apps.example.com",
        },
        env_file=False,
    )


ALICE = Caller(subject="s-alice", sid="sid-1", username="alice")
ALICE_OTHER_SESSION = Caller(subject="s-alice", sid="sid-2", username="alice")


def test_csrf_token_is_bound_to_sid_and_cookie(conf: Settings) -> None:
    """The token checks only with its own cookie nonce and its own sid."""
    token = csrf_token(conf, ALICE, "nonce-1")
    assert _csrf_ok(conf, ALICE, "nonce-1", token)
    assert not _csrf_ok(conf, ALICE, "nonce-2", token)
    assert not _csrf_ok(conf, ALICE, None, token)
    assert not _csrf_ok(conf, ALICE_OTHER_SESSION, "nonce-1", token)
    assert not _csrf_ok(conf, ALICE, "nonce-1", "nonce-1.forged")
    assert not _csrf_ok(conf, ALICE, "nonce-1", "")


@pytest.mark.parametrize(
    ("rd", "expected"),
    [
        ("/orders/1?x=1", "/orders/1?x=1"),
        ("https://app.example.com/a", "https://app.example.com/a"),
        ("https://x.apps.example.com/a", "https://x.apps.example.com/a"),
        ("https://auth.example.com/auth/userinfo", "https://auth.example.com/auth/userinfo"),
        ("https://apps.example.com/a", "https://auth.example.com/"),
        ("https://evil.test/", "https://auth.example.com/"),
        ("//evil.test/", "https://auth.example.com/"),
        ("/\\evil.test", "https://auth.example.com/"),
        ("javascript:alert(1)", "https://auth.example.com/"),
        ("https://app.example.com.evil.test/", "https://auth.example.com/"),
        ("/x\r\nSet-Cookie: a=b", "https://auth.example.com/"),
        (None, "https://auth.example.com/"),
    ],
)
def test_safe_redirect(conf: Settings, rd: str | None, expected: str) -> None:
    """Relative paths and allowed hosts pass; everything else falls back to the public URL."""
    assert safe_redirect(conf, rd) == expected
