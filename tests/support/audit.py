"""Audit chain keys shared by the audit tests (the service derives them from AUTH_SECRET_KEYS)."""

from __future__ import annotations

import base64

from auth_service.audit.chain import ChainKeys
from auth_service.config import SecretKey

KEY_1 = SecretKey("a1", bytes(range(32)))
KEY_2 = SecretKey("a2", bytes(range(100, 132)))
KEYS = ChainKeys([KEY_1])
"""What the tests seal with unless they rotate."""


def env_value(*keys: SecretKey) -> str:
    """``AUTH_SECRET_KEYS`` listing ``keys`` (the first seals)."""
    return ",".join(f"{k.id}:{base64.b64encode(k.key).decode()}" for k in keys)
