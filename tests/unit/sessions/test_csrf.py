"""Session-bound CSRF tokens."""

from __future__ import annotations

import secrets

from auth_service.config import SecretKey
from auth_service.sessions.csrf import CsrfTokens

K1 = SecretKey("k1", secrets.token_bytes(32))
K2 = SecretKey("k2", secrets.token_bytes(32))


def test_token_is_bound_to_its_session() -> None:
    """A token verifies for the session it was issued for, not for another or none."""
    csrf = CsrfTokens([K1])
    token = csrf.issue("session-a")
    assert csrf.verify("session-a", token)
    assert not csrf.verify("session-b", token)
    assert not csrf.verify(None, token)
    assert not csrf.verify("session-a", None)
    assert not csrf.verify("session-a", token[:-1] + ("A" if token[-1] != "A" else "B"))


def test_tokens_survive_key_rotation() -> None:
    """After ``k2,k1`` a token issued under ``k1`` still verifies; new ones use ``k2``."""
    old = CsrfTokens([K1]).issue("s")
    rotated = CsrfTokens([K2, K1])
    assert rotated.verify("s", old)
    assert rotated.issue("s") != old
    assert not CsrfTokens([K2]).verify("s", old)


def test_non_ascii_token_is_refused_not_raised() -> None:
    """A token with non-ASCII characters (from a hostile form) is simply not valid."""
    csrf = CsrfTokens([K1])
    assert not csrf.verify("s", "\u00e9" * 43)
    assert not csrf.verify("\u00e9", "x" * 43)
