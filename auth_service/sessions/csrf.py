"""CSRF tokens: the one scheme of every HTML form of this service.

A token is ``HMAC-SHA256(k, "csrf:" + SHA-256(binding))`` in base64url, with
``k`` derived from each ``AUTH_SECRET_KEYS`` entry. The binding is the browser
session id (the secret value of the ``HttpOnly`` session cookie) for a caller
authenticated by the session cookie, and the token's sid (or subject) for a
caller that sent a bearer token, which a cross-site form cannot send
(`auth_service.tokens.guards.CallerAuth.csrf_binding`). A token is stateless
(no Redis write per page), useless without the session it was issued for, and
survives a key rotation because every configured key is tried on
verification. Forms carry it in a hidden ``csrf_token`` field; handlers of
state-changing POSTs (the sign-out form, the MFA code form, the MFA setup
confirmation) call `CsrfTokens.verify` before doing anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from auth_service.config import SecretKey
from auth_service.sessions.store import session_hash

__all__ = ("CsrfTokens",)


class CsrfTokens:
    """Issues and checks session-bound CSRF tokens."""

    def __init__(self, keys: Sequence[SecretKey]) -> None:
        if not keys:
            raise ValueError("CsrfTokens needs at least one key")
        self._keys = [
            hmac.new(k.key, b"auth-service csrf v1", hashlib.sha256).digest() for k in keys
        ]

    @staticmethod
    def _mac(key: bytes, binding: str) -> str:
        digest = hmac.new(key, b"csrf:" + session_hash(binding).encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()

    def issue(self, binding: str) -> str:
        """The CSRF token for forms shown to this binding (a session id, see above)."""
        return self._mac(self._keys[0], binding)

    def verify(self, binding: str | None, token: str | None) -> bool:
        """Whether ``token`` was issued for ``binding`` (constant-time; empty never matches)."""
        if not binding or not token or len(token) > 128:
            return False
        return any(hmac.compare_digest(self._mac(k, binding), token) for k in self._keys)
