"""TOTP domain logic: enrollment, confirmation, verification, disabling, admin reset.

Raises only `auth_service.errors` domain errors; the HTTP edge renders them.
Every outcome is audited (CONTRACT §9). Secrets, codes and recovery codes are
never logged nor put in audit details: details carry counts and the method.

Order of checks for a code submission: first an attempt slot is reserved
(`auth_service.mfa.lockout`: atomic in Redis, refused with 429 while locked or
while failures and checks in flight fill the allowance, so a locked caller
learns nothing about the code and a burst cannot check more codes than the
limit), then the code within the window, then the replay compare-and-set.
A wrong code settles the slot as a failure (the one that reaches the limit
sets the lock and is still answered ``invalid_code``); a success resets the
count. A code that matches but was already used is refused with
``code_reused`` and audited, but not counted as a guess: it is a double submit,
not brute force (a guesser who hits it gains nothing, the step is spent).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

import msgspec
import segno
import structlog

from auth_service.audit.sink import AuditSink
from auth_service.crypto import DecryptionError, SecretBox
from auth_service.errors import (
    BadRequest,
    Conflict,
    DependencyUnavailable,
    NotFound,
    TooManyAttempts,
)
from auth_service.mfa.lockout import Attempt, Lockout, Refused
from auth_service.mfa.recovery import RecoveryCodes
from auth_service.mfa.state import MfaState
from auth_service.mfa.store import TotpRecord, TotpStore
from auth_service.mfa.totp import TotpCodes, new_secret, otpauth_uri
from auth_service.observability.metrics import Metrics

__all__ = (
    "AuditSink",
    "Caller",
    "Enrollment",
    "MfaDetails",
    "MfaService",
    "TotpStatus",
)

log = structlog.get_logger("auth_service.mfa")

Method = Literal["totp", "recovery_code"]


class MfaDetails(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Audit details of MFA events: never a secret or a code."""

    method: str | None = None
    """``totp`` or ``recovery_code``."""
    failures: int | None = None
    """Failures of the user in the current window, this one included."""
    retry_after: int | None = None
    """Seconds a lockout lasts."""
    remaining: int | None = None
    """Unused recovery codes left."""
    sessions_ended: int | None = None
    """MFA-verified sids cleared."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who submits: the verified identity plus request facts for audit and lockout."""

    subject: str
    sid: str | None
    username: str
    client_id: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None


class TotpStatus(msgspec.Struct):
    """``GET /mfa/totp``."""

    enrolled: bool
    confirmed_at: datetime | None
    recovery_codes_left: int


class Enrollment(msgspec.Struct):
    """A pending enrollment: shown to its owner only, never stored in plaintext."""

    secret: str
    otpauth_uri: str
    qr_svg: str


def _aad(subject: str) -> bytes:
    return b"totp:" + subject.encode()


class MfaService:
    """The TOTP capability of one worker.

    Args:
        verified_ttl: seconds a sid stays MFA-verified (at most the IdP's SSO session
            maximum; the sid's end by logout clears it earlier).
        issuer: the issuer label of ``otpauth://`` URIs (shown in authenticator apps).
    """

    def __init__(
        self,
        store: TotpStore,
        box: SecretBox,
        codes: TotpCodes,
        recovery: RecoveryCodes,
        lockout: Lockout,
        state: MfaState,
        audit: AuditSink,
        *,
        verified_ttl: int,
        issuer: str,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.box = box
        self.codes = codes
        self.recovery = recovery
        self.lockout = lockout
        self.state = state
        self.audit = audit
        self.verified_ttl = verified_ttl
        self.issuer = issuer

    # -- queries -------------------------------------------------------------------------

    async def status(self, subject: str) -> TotpStatus:
        """Whether the subject has a confirmed credential, since when, codes left."""
        rec = await self.store.get(subject)
        if rec is None or rec.state != "confirmed":
            return TotpStatus(enrolled=False, confirmed_at=None, recovery_codes_left=0)
        left = await self.store.codes_left(subject)
        return TotpStatus(enrolled=True, confirmed_at=rec.confirmed_at, recovery_codes_left=left)

    # -- enrollment ----------------------------------------------------------------------

    async def enroll(self, caller: Caller) -> Enrollment:
        """Start (or restart) an enrollment with a fresh secret.

        Raises:
            Conflict: ``already_enrolled`` when a confirmed credential exists.
        """
        secret = new_secret()
        blob = self.box.encrypt(secret.encode("ascii"), aad=_aad(caller.subject))
        if not await self.store.put_pending(caller.subject, blob):
            raise Conflict("TOTP is already enrolled; disable it first", reason="already_enrolled")
        self._emit("mfa.enrollment.started", caller, "success")
        return self._enrollment(caller, secret)

    async def pending_or_new(self, caller: Caller) -> Enrollment:
        """The caller's pending enrollment if any, else a new one (the setup page)."""
        rec = await self.store.get(caller.subject)
        if rec is not None and rec.state == "pending":
            return self._enrollment(caller, self._secret(rec))
        return await self.enroll(caller)

    def _enrollment(self, caller: Caller, secret: str) -> Enrollment:
        uri = otpauth_uri(secret, account=caller.username or caller.subject, issuer=self.issuer)
        svg = segno.make(uri, error="m").svg_inline(scale=4, border=4)
        return Enrollment(secret=secret, otpauth_uri=uri, qr_svg=svg)

    async def confirm(self, caller: Caller, code: str) -> list[str]:
        """Confirm the pending enrollment with a current code; returns recovery codes (once).

        Raises:
            NotFound: ``no_pending_enrollment``; Conflict: ``already_enrolled`` or
            ``enrollment_changed``; BadRequest: ``invalid_code``; TooManyAttempts.
        """
        async with await self._attempt(caller) as attempt:
            rec = await self.store.get(caller.subject)
            if rec is not None and rec.state == "confirmed":
                raise Conflict("TOTP is already enrolled", reason="already_enrolled")
            if rec is None:
                raise NotFound("no TOTP enrollment is pending", reason="no_pending_enrollment")
            step = self.codes.match(self._secret(rec), code)
            if step is None:
                await self._failed(attempt, caller, "totp", "invalid_code")
            plain = self.recovery.generate()
            hashes = await asyncio.to_thread(lambda: [self.recovery.hash(c) for c in plain])
            if not await self.store.confirm(caller.subject, rec.secret, step, hashes):
                raise Conflict(
                    "the enrollment changed meanwhile; start again", reason="enrollment_changed"
                )
            await attempt.succeeded()
        self._emit("mfa.enrollment.confirmed", caller, "success", remaining=len(plain))
        return plain

    # -- verification --------------------------------------------------------------------

    async def verify(
        self, caller: Caller, *, code: str | None = None, recovery_code: str | None = None
    ) -> datetime:
        """Check a TOTP or recovery code and mark the caller's sid MFA-verified; its expiry.

        Raises:
            BadRequest: ``no_session`` (no sid to bind), ``invalid_code``, ``code_reused``;
            NotFound: ``not_enrolled``; TooManyAttempts (429, ``Retry-After``).
        """
        if caller.sid is None:
            raise BadRequest(
                "the credential carries no Keycloak session (sid)", reason="no_session"
            )
        if (code is None) == (recovery_code is None):
            raise BadRequest("send exactly one of code and recovery_code", reason="bad_request")
        async with await self._attempt(caller) as attempt:
            rec = await self._confirmed(caller.subject)
            if code is not None:
                method: Method = "totp"
                await self._accept_totp(attempt, caller, rec, code)
            else:
                method = "recovery_code"
                await self._accept_recovery(attempt, caller, recovery_code or "")
            await attempt.succeeded()
        expiry = await self.state.mark_verified(
            caller.sid, self.verified_ttl, subject=caller.subject
        )
        self._emit("mfa.success", caller, "success", method=method)
        return datetime.fromtimestamp(expiry, UTC)

    async def _accept_totp(
        self, attempt: Attempt, caller: Caller, rec: TotpRecord, code: str
    ) -> None:
        step = self.codes.match(self._secret(rec), code)
        if step is None:
            await self._failed(attempt, caller, "totp", "invalid_code")
        if not await self.store.accept_step(caller.subject, step):
            self._emit("mfa.failure", caller, "failure", reason="code_reused", method="totp")
            raise BadRequest(
                "this code was already used; wait for the next one", reason="code_reused"
            )

    async def _accept_recovery(self, attempt: Attempt, caller: Caller, code: str) -> None:
        hashes = await self.store.unused_codes(caller.subject)
        found = await asyncio.to_thread(self.recovery.find, code, hashes)
        if found is None:
            await self._failed(attempt, caller, "recovery_code", "invalid_code")
        if not await self.store.use_code(caller.subject, found):
            self._emit(
                "mfa.failure", caller, "failure", reason="code_reused", method="recovery_code"
            )
            raise BadRequest("this recovery code was already used", reason="code_reused")
        left = await self.store.codes_left(caller.subject)
        self._emit("mfa.recovery_code.used", caller, "success", remaining=left)

    # -- disabling -----------------------------------------------------------------------

    async def disable(self, caller: Caller, code: str) -> None:
        """Remove the caller's TOTP after checking a current code; ends its verified sids."""
        async with await self._attempt(caller) as attempt:
            rec = await self._confirmed(caller.subject)
            await self._accept_totp(attempt, caller, rec, code)
            await attempt.succeeded()
        await self.store.delete(caller.subject)
        ended = await self.state.clear_subject(caller.subject)
        self._emit("mfa.disabled", caller, "success", sessions_ended=ended)

    async def admin_reset(self, admin: Caller, subject: str) -> None:
        """Remove ``subject``'s TOTP (lost device), its lock and verified sids.

        Raises:
            NotFound: ``not_enrolled`` when the subject has no credential.
        """
        if not await self.store.delete(subject):
            raise NotFound("the user has no TOTP credential", reason="not_enrolled")
        ended = await self.state.clear_subject(subject)
        await self.lockout.reset(subject)
        self._emit("mfa.admin_reset", admin, "success", subject=subject, sessions_ended=ended)

    # -- helpers -------------------------------------------------------------------------

    async def _confirmed(self, subject: str) -> TotpRecord:
        rec = await self.store.get(subject)
        if rec is None or rec.state != "confirmed":
            raise NotFound("TOTP is not enrolled", reason="not_enrolled")
        return rec

    def _secret(self, rec: TotpRecord) -> str:
        try:
            return self.box.decrypt(rec.secret, aad=_aad(rec.subject)).decode("ascii")
        except DecryptionError as exc:
            log.error("totp_secret_unreadable", subject=rec.subject, error=str(exc))
            raise DependencyUnavailable(
                "the TOTP credential cannot be read", reason="secret_unreadable"
            ) from None

    async def _attempt(self, caller: Caller) -> Attempt:
        """Reserve the slot of one code check (429 with ``Retry-After`` when refused)."""
        try:
            return await self.lockout.attempt(caller.subject, caller.source_ip)
        except Refused as exc:
            raise TooManyAttempts(
                "too many wrong codes; try again later",
                reason="mfa_locked",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None

    async def _failed(
        self, attempt: Attempt, caller: Caller, method: Method, reason: str
    ) -> NoReturn:
        """Count a wrong code, audit it, and raise ``invalid_code``.

        The failure that reaches the limit sets the lock (audited as ``mfa.lockout``)
        but is answered like any wrong code; the next attempt gets the 429.
        """
        failures, locked = await attempt.failed()
        if self.metrics is not None:
            self.metrics.mfa_failures.inc()
            if locked:
                self.metrics.mfa_lockouts.inc()
        self._emit(
            "mfa.failure", caller, "failure", reason=reason, method=method, failures=failures
        )
        if locked:
            self._emit(
                "mfa.lockout", caller, "failure", reason="too_many_failures", retry_after=locked
            )
        wrong = BadRequest("the code is not valid", reason=reason)
        wrong.attempts_left = 0 if locked else max(0, self.lockout.user.failures - failures)
        raise wrong

    def _emit(
        self,
        type: str,
        caller: Caller,
        outcome: str,
        *,
        reason: str | None = None,
        subject: str | None = None,
        **details: Any,
    ) -> None:
        self.audit.emit(
            type,
            outcome=outcome,
            actor_sub=caller.subject,
            subject_sub=subject or caller.subject,
            client_id=caller.client_id,
            source_ip=caller.source_ip,
            user_agent=caller.user_agent,
            reason=reason,
            details=MfaDetails(**details),
        )
