"""CSRF tokens for this service's HTML forms, bound to the browser session.

A token is ``HMAC-SHA256(k, "csrf:" + SHA-256(session id))`` in base64url, with
``k`` derived from each ``AUTH_SECRET_KEYS`` entry. It is stateless (no Redis
write per page), useless without the session it was issued for, and survives
a key rotation because every configured key is tried on verification. Forms
carry it in a hidden ``csrf_token`` field; handlers of state-changing POSTs call
`CsrfTokens.verify` before doing anything.
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
    def _mac(key: bytes, session_id: str) -> str:
        digest = hmac.new(key, b"csrf:" + session_hash(session_id).encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()

    def issue(self, session_id: str) -> str:
        """The CSRF token for forms shown to this session."""
        return self._mac(self._keys[0], session_id)

    def verify(self, session_id: str | None, token: str | None) -> bool:
        """Whether ``token`` was issued for ``session_id`` (constant-time)."""
        if not session_id or not token or len(token) > 128:
            return False
        return any(hmac.compare_digest(self._mac(k, session_id), token) for k in self._keys)
