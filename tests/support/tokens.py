"""Crafting hostile tokens for tests: raw JWS assembly without any library's safety checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


def b64url(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj: Any) -> str:
    """base64url of compact JSON."""
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Decode header and payload of a compact JWS (no verification)."""
    h, p, s = token.split(".")
    pad = lambda x: x + "=" * (-len(x) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(h))),
        json.loads(base64.urlsafe_b64decode(pad(p))),
        s,
    )


def hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 token signed with ``secret`` (e.g. the realm's RSA public key PEM)."""
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """An ``alg: none`` token."""
    return f"{b64json(header)}.{b64json(payload)}."


def with_payload(token: str, payload: dict[str, Any]) -> str:
    """The same header and signature over a different payload (tampering)."""
    h, _, s = token.split(".")
    return f"{h}.{b64json(payload)}.{s}"


def rs256(header: dict[str, Any], payload: dict[str, Any], key: Any) -> str:
    """An RS256 token over any header (joserfc refuses unknown ``crit``; we want to send it)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signing_input = f"{b64json(header)}.{b64json(payload)}"
    sig = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(sig)}"
