"""ID-token and back-channel logout-token checks beyond the JWS ones.

The JWS part (header, key, signature, ``exp``/``nbf``/``iat`` not in the future,
``iss``, ``aud``) is `auth_service.verifier.RealmJWTVerifier`, the same code that
verifies access tokens. What each kind adds:

* ID token (OIDC Core §3.1.3.7): ``sub``, numeric ``iat``, ``nonce`` equal to the
  login's, ``azp`` when there are several audiences, claim ``typ`` ``ID`` when
  present, ``at_hash`` when present.
* Logout token (Back-Channel Logout 1.0 §2.6, CONTRACT §5): header ``typ``
  (checked by the verifier), ``exp`` (required by the verifier), ``iat`` at most
  `LOGOUT_TOKEN_MAX_AGE` seconds (plus leeway) old, claim ``typ`` ``Logout`` when
  present, the back-channel event, no ``nonce``, ``sid`` or ``sub``, a ``jti``.
  Remembering the ``jti`` (until ``exp``) is the caller's.

Every refusal is an `IdPTokenInvalid` whose ``reason`` is machine-readable.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from authlib.oidc.core.util import create_half_hash

from auth_service.verifier import RealmJWTVerifier, TokenError

__all__ = (
    "BACKCHANNEL_EVENT",
    "LOGOUT_TOKEN_MAX_AGE",
    "IdPTokenInvalid",
    "LogoutClaims",
    "validate_id_token",
    "validate_logout_token",
)

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_MAX_AGE = 300
"""Seconds a logout token's ``iat`` may lie in the past (plus leeway), CONTRACT §5."""
_REASONS = {"missing_claim": "missing_exp"}
"""Verifier reasons renamed here (``exp`` is the only claim it requires)."""


class IdPTokenInvalid(Exception):
    """An ID or logout token that must not be trusted; ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotReady(Exception):
    """The realm's keys are not loaded yet (discovery pending)."""


@dataclass(frozen=True, slots=True)
class LogoutClaims:
    """What a valid logout token asks for."""

    sid: str | None
    sub: str | None
    jti: str
    exp: float


def _is_time(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


async def _verify(verifier: RealmJWTVerifier | None, token: str) -> dict[str, Any]:
    if verifier is None:
        raise NotReady("identity provider keys unavailable")
    try:
        return await verifier.verify(token)
    except TokenError as exc:
        raise IdPTokenInvalid(_REASONS.get(exc.reason, exc.reason)) from None


async def validate_id_token(
    verifier: RealmJWTVerifier | None,
    id_token: str,
    *,
    client_id: str,
    nonce: str,
    access_token: str | None,
) -> dict[str, Any]:
    """The claims of a valid ID token.

    Raises:
        IdPTokenInvalid: a check failed.
        NotReady: the realm's keys are not loaded yet.
    """
    claims = await _verify(verifier, id_token)
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise IdPTokenInvalid("missing_sub")
    if not _is_time(claims.get("iat")):
        raise IdPTokenInvalid("bad_iat")
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not hmac.compare_digest(
        token_nonce.encode(), nonce.encode()
    ):
        raise IdPTokenInvalid("nonce_mismatch")
    aud = claims["aud"]
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise IdPTokenInvalid("wrong_audience")
    if "typ" in claims and claims["typ"] != "ID":
        raise IdPTokenInvalid("wrong_token_type")
    at_hash = claims.get("at_hash")
    if at_hash is not None and access_token is not None:
        assert verifier is not None  # _verify passed
        alg, _ = verifier.header_of(id_token)
        expected = create_half_hash(access_token, alg)
        if not isinstance(at_hash, str) or expected is None:
            raise IdPTokenInvalid("at_hash_mismatch")
        if not hmac.compare_digest(expected, at_hash.encode()):
            raise IdPTokenInvalid("at_hash_mismatch")
    return claims


async def validate_logout_token(
    verifier: RealmJWTVerifier | None,
    logout_token: str,
    *,
    leeway: int,
    clock: Callable[[], float] = time.time,
) -> LogoutClaims:
    """The sid/sub, jti and exp of a valid back-channel logout token.

    Raises:
        IdPTokenInvalid: a check failed.
        NotReady: the realm's keys are not loaded yet.
    """
    claims = await _verify(verifier, logout_token)
    iat, exp = claims.get("iat"), claims["exp"]  # the verifier required a numeric exp
    if not _is_time(iat):
        raise IdPTokenInvalid("bad_iat")
    if clock() - iat > LOGOUT_TOKEN_MAX_AGE + leeway:
        raise IdPTokenInvalid("iat_too_old")
    if claims.get("typ", "Logout") != "Logout":
        raise IdPTokenInvalid("wrong_token_type")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
        raise IdPTokenInvalid("missing_event")
    if "nonce" in claims:
        raise IdPTokenInvalid("nonce_present")
    sid, sub = claims.get("sid"), claims.get("sub")
    if not isinstance(sid, str | None) or not isinstance(sub, str | None) or not (sid or sub):
        raise IdPTokenInvalid("missing_sid_and_sub")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise IdPTokenInvalid("missing_jti")
    return LogoutClaims(sid=sid or None, sub=sub or None, jti=jti, exp=float(exp))
