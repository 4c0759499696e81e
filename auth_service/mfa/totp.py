"""RFC 6238 codes (pyotp): SHA-1, 6 digits, 30 s steps, a window of ±N steps.

This module is pure: no I/O, and the time comes from an injectable clock so
tests can move it. It answers *which step* a code matches, never just "valid";
the caller stores the step and refuses any step not newer than the last
accepted one (replay protection lives in `auth_service.mfa.store`).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections.abc import Callable
from urllib.parse import quote

import pyotp

__all__ = ("DIGITS", "PERIOD", "SECRET_BYTES", "Clock", "TotpCodes", "new_secret", "otpauth_uri")

DIGITS = 6
PERIOD = 30
SECRET_BYTES = 20
"""160-bit secrets (RFC 4226 §4 recommends at least 160 bits)."""

Clock = Callable[[], float]
"""Seconds since the epoch."""


def new_secret() -> str:
    """A fresh random secret, base32 without padding (32 characters for 160 bits)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def otpauth_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` provisioning URI authenticator apps read from the QR code."""
    label = quote(f"{issuer}:{account}", safe="@:")
    return (
        f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer, safe='')}"
        f"&algorithm=SHA1&digits={DIGITS}&period={PERIOD}"
    )


class TotpCodes:
    """Matches codes against a secret at the clock's current step, within ``window`` steps.

    Args:
        window: steps accepted either side of the current one (CONTRACT §6: 1).
        clock: seconds since the epoch (``time.time``; tests inject their own).
    """

    def __init__(self, *, window: int = 1, clock: Clock = time.time) -> None:
        if not 0 <= window <= 10:
            raise ValueError("TOTP window must be between 0 and 10 steps")
        self.window = window
        self.clock = clock

    def step(self, at: float | None = None) -> int:
        """The time step at ``at`` (default: now)."""
        return int((self.clock() if at is None else at) // PERIOD)

    def code_at(self, secret: str, step: int) -> str:
        """The code of ``secret`` for ``step``."""
        return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).at(step * PERIOD)

    def match(self, secret: str, code: str) -> int | None:
        """The step within the window whose code equals ``code``, or ``None``.

        Every step of the window is compared (in constant time per comparison),
        so the time taken does not reveal which step matched or where a wrong
        code differed. When two steps share a code, the newest wins.
        """
        code = code.strip().replace(" ", "")
        if len(code) != DIGITS or not code.isascii() or not code.isdigit():
            return None
        now = self.step()
        found: int | None = None
        for step in range(now - self.window, now + self.window + 1):
            if hmac.compare_digest(self.code_at(secret, step).encode(), code.encode()):
                found = step
        return found
