"""TOTP second factor (CONTRACT §6): storage, verification, sid-bound state, API and pages.

::

    totp.py       RFC 6238 matching (pyotp), injectable clock          pure
    recovery.py   recovery codes, argon2id                             pure (CPU)
    store.py      totp_credentials / totp_recovery_codes, replay CAS   PostgreSQL
    lockout.py    atomic attempt slots and locks per user, per-IP count Redis
    state.py      MFA-verified sids, mirrored in memory (hot path)     Redis + pub/sub
    service.py    the domain logic; raises auth_service.errors only
    controllers.py  JSON API /mfa/totp, admin reset
    pages.py      HTML /auth/mfa and /auth/mfa/setup

`start_mfa` builds everything for one worker (called by
`auth_service.services.build_services`) and returns the `MfaState` (also given
to forward-auth) and the `MfaService`. The route handlers (`controllers`, `pages`)
are registered by `auth_service.app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from auth_service.crypto import SecretBox
from auth_service.mfa.lockout import Limits, Lockout
from auth_service.mfa.recovery import RecoveryCodes
from auth_service.mfa.service import AuditSink, MfaService
from auth_service.mfa.state import MfaState
from auth_service.mfa.store import TotpStore
from auth_service.mfa.totp import TotpCodes
from auth_service.resources import Resources
from auth_service.tokens.revocation import Revocations

__all__ = ("MfaService", "MfaState", "start_mfa")


async def start_mfa(
    res: Resources,
    stack: contextlib.AsyncExitStack,
    *,
    audit: AuditSink,
    revocations: Revocations,
    clock: Callable[[], float] = time.time,
) -> tuple[MfaState, MfaService]:
    """Build the MFA capability for this worker and start its state subscriber.

    A sid revoked in ``revocations`` is never MFA-verified.
    """
    settings = res.settings

    def revoked(sid: str) -> bool:
        return bool(revocations.is_revoked(sid, None))

    state = MfaState(res.redis, prefix=settings.redis_prefix, revoked=revoked, clock=clock)
    lockout = Lockout(
        res.redis,
        prefix=settings.redis_prefix,
        user=Limits(
            settings.mfa_max_failures,
            settings.mfa_failure_window,
            settings.mfa_lockout_seconds,
        ),
        ip=Limits(
            settings.mfa_ip_max_failures,
            settings.mfa_failure_window,
            settings.mfa_ip_lockout_seconds,
        ),
        clock=clock,
    )
    service = MfaService(
        TotpStore(res.pg),
        SecretBox(settings.secret_keys),
        TotpCodes(window=settings.mfa_window, clock=clock),
        RecoveryCodes(),
        lockout,
        state,
        audit,
        verified_ttl=settings.mfa_verified_ttl,
        issuer=settings.mfa_issuer,
        metrics=res.metrics,
    )
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(state.run(stop), name="mfa-state")

    async def shutdown() -> None:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
            await asyncio.wait_for(task, 5.0)

    stack.push_async_callback(shutdown)
    return state, service
