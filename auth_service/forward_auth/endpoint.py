"""The lean ASGI handler of ``/authz/*``: no framework on the hot path.

A cached bearer token costs: read the headers, one hash and dict lookup, an
in-memory revocation check, the policy match, and reuse of a cached
``X-Auth-Assertion``. Only a new token awaits anything (signature check,
maybe introspection). The decision itself is `decision.decide`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import Any, Protocol

import structlog

from auth_service.config import Settings
from auth_service.errors import PROBLEM_JSON, DependencyUnavailable, problem_body
from auth_service.forward_auth.decision import Credentials, Verdict, decide
from auth_service.forward_auth.gateways import (
    Dialect,
    ForwardedRequest,
    GatewayError,
    dialect_for,
    read_request,
)
from auth_service.observability.edge import Receive, Send, finish, send_500
from auth_service.observability.metrics import Metrics
from auth_service.policy import PolicyHolder
from auth_service.request_id import request_id, request_id_from
from auth_service.tokens.credentials import presented_credential
from auth_service.tokens.identity import Authenticated
from auth_service.tokens.service import Authenticator, TokenRejected

__all__ = ("AssertionIssuer", "ForwardAuthEndpoint", "MfaStatus", "SessionResolver")

log = structlog.get_logger("auth_service.http")


class AssertionIssuer(Protocol):
    """Signs ``X-Auth-Assertion`` (CPU only; see `auth_service.tokens.assertion`)."""

    def issue_header(
        self, auth: Authenticated, audience: str, *, mfa: bool, rid: str | None = None
    ) -> bytes: ...


class MfaStatus(Protocol):
    """Whether a Keycloak session passed TOTP (in memory; see `auth_service.mfa`)."""

    def is_verified(self, sid: str | None) -> bool: ...


class SessionResolver(Protocol):
    """Resolves this service's session cookie to an identity (see `auth_service.sessions`)."""

    cookie_name: bytes

    async def resolve(self, session_id: str) -> Authenticated: ...


DecisionHook = Callable[[Verdict, ForwardedRequest | None, MutableMapping[str, Any], str], None]
"""Called with the verdict, the original request (if readable), the scope and the request id."""


class ForwardAuthEndpoint:
    """ASGI app answering the three forward-auth front doors."""

    def __init__(
        self,
        settings: Settings,
        authenticator: Authenticator,
        policy: PolicyHolder,
        metrics: Metrics,
        *,
        mfa: MfaStatus,
        assertions: AssertionIssuer | None = None,
        sessions: SessionResolver | None = None,
        on_decision: DecisionHook | None = None,
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.policy = policy
        self.metrics = metrics
        self.assertions = assertions
        # Never ``mfa or default``: `MfaState` has a length, and an empty one is falsy.
        self.mfa = mfa
        self.sessions = sessions
        self.on_decision = on_decision
        self.public_url = settings.public_url
        self.log_refusals = settings.access_log
        self.log_allowed = settings.access_log_checks == "all"
        self._cells: dict[tuple[Dialect, str, str | None], tuple[Any, Any]] = {}
        """(dialect, outcome, reason) → its decision counter and latency histogram cells."""

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        """The ASGI app, behind `EdgeMiddleware`'s general path (which sets the request id)."""
        headers: dict[bytes, bytes] = dict(scope["headers"])
        await self._answer(scope, headers, request_id(scope), send, time.perf_counter())

    async def lean(self, scope: MutableMapping[str, Any], send: Send) -> bool:
        """Answer without the general edge path; ``False``: the caller must take it instead.

        The request id, the HTTP metrics and the access line are done here with the
        same functions `EdgeMiddleware` uses (`edge.finish`); a request carrying a
        W3C ``traceparent`` goes the general way, which opens its server span.
        """
        start = time.perf_counter()
        headers: dict[bytes, bytes] = dict(scope["headers"])
        if b"traceparent" in headers:
            return False
        rid = request_id_from(headers.get(b"x-request-id"))
        try:
            status = await self._answer(scope, headers, rid, send, start, rid.encode("ascii"))
        except Exception as exc:  # as EdgeMiddleware does on the general path
            log.error("unhandled_error", path=scope["path"], request_id=rid, exc_info=exc)
            status = 500
            if not scope.get("auth_answered"):
                await send_500(send, rid, with_id=True)
        elapsed = time.perf_counter() - start
        write = self.log_refusals and (status != 200 or self.log_allowed)
        finish(self.metrics, scope, status, elapsed, rid, log=write)
        return True

    async def _answer(
        self,
        scope: MutableMapping[str, Any],
        headers: dict[bytes, bytes],
        rid: str,
        send: Send,
        start: float,
        rid_header: bytes | None = None,
    ) -> int:
        dialect = dialect_for(scope["path"])
        scope["auth_route"] = dialect.value if dialect else "/authz/unknown"
        req: ForwardedRequest | None = None
        if dialect is None:
            verdict = _refusal(
                404, "bad_request", "not_found", "no such forward-auth endpoint", rid
            )
            await _send(send, verdict, rid_header)
            return 404
        try:
            req = read_request(dialect, scope, headers)
            unavailable: DependencyUnavailable | None = None
            try:
                creds = await self._credentials(headers, rid)
            except DependencyUnavailable as exc:  # IdP keys or revocations not usable yet
                creds, unavailable = Credentials(), exc
            verdict = decide(
                dialect, req, creds, self.policy.current, public_url=self.public_url, rid=rid
            )
            if unavailable is not None and verdict.outcome != "allow":
                raise unavailable  # only an anonymous rule answers without the credentials
            verdict.caller = creds.identity
            if verdict.identity is not None:  # signing the assertion may find no usable key
                self._identity_headers(verdict, verdict.identity, req, rid)
        except GatewayError as exc:
            verdict = _refusal(400, "bad_request", "bad_forwarded_request", str(exc), rid)
        except DependencyUnavailable as exc:
            verdict = _refusal(503, "unavailable", exc.reason, exc.detail, rid)
            verdict.headers.append((b"retry-after", b"5"))
        await _send(send, verdict, rid_header)
        scope["auth_answered"] = True
        key = (dialect, verdict.outcome, verdict.reason)
        cells = self._cells.get(key)
        if cells is None:  # a bounded set: three dialects, a few outcomes and reasons
            endpoint, metrics = dialect.value, self.metrics
            cells = self._cells[key] = (
                metrics.decisions.labels(endpoint, verdict.outcome, verdict.reason or ""),
                metrics.decision_latency.labels(endpoint),
            )
        cells[0].inc()
        cells[1].observe(time.perf_counter() - start)
        if verdict.audit and self.on_decision is not None:
            self.on_decision(verdict, req, scope, rid)
        return verdict.status

    async def _credentials(self, headers: dict[bytes, bytes], rid: str) -> Credentials:
        creds = Credentials()
        cookie_name = self.sessions.cookie_name if self.sessions is not None else None
        presented = presented_credential(
            headers.get(b"authorization"), headers.get(b"cookie"), cookie_name
        )
        if presented is not None and presented.kind == "bearer":
            creds.bearer = True
            try:
                key, auth = self.authenticator.lookup(presented.value)
                if auth is None:  # its I/O, if any, logs with the request id
                    auth = await self.authenticator.verify_new(presented.value, key, rid)
                creds.identity = auth
            except TokenRejected as exc:
                creds.rejection = exc
        elif presented is not None and self.sessions is not None:
            creds.session = True
            try:
                with structlog.contextvars.bound_contextvars(request_id=rid):
                    creds.identity = await self.sessions.resolve(presented.value)
            except TokenRejected as exc:
                creds.rejection = exc
        if creds.identity is not None:
            creds.mfa_done = self.mfa.is_verified(creds.identity.sid)
        return creds

    def _identity_headers(
        self, verdict: Verdict, auth: Authenticated, req: ForwardedRequest, rid: str
    ) -> None:
        mfa = verdict.mfa
        verdict.headers.extend(auth.headers)
        verdict.headers.append((b"x-auth-mfa", b"totp" if mfa else b"none"))
        if self.assertions is not None:
            token = self.assertions.issue_header(auth, req.audience, mfa=mfa, rid=rid)
            verdict.headers.append((b"x-auth-assertion", token))


def _refusal(status: int, outcome: str, reason: str, detail: str, rid: str) -> Verdict:
    body = problem_body(status, detail, rid, reason=reason)
    return Verdict(
        status, outcome, reason, None, [(b"content-type", PROBLEM_JSON.encode())], body, audit=True
    )


_EMPTY_BODY = (b"content-length", b"0")


async def _send(send: Send, verdict: Verdict, rid_header: bytes | None) -> None:
    headers = verdict.headers
    body = verdict.body
    headers.append((b"content-length", str(len(body)).encode()) if body else _EMPTY_BODY)
    headers.append((b"cache-control", b"no-store"))
    if rid_header is not None:  # the lean path; the general one adds it on the way out
        headers.append((b"x-request-id", rid_header))
    await send({"type": "http.response.start", "status": verdict.status, "headers": headers})
    await send({"type": "http.response.body", "body": verdict.body})
