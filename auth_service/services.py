"""The composition root: `build_services` builds every capability service of a worker.

One function builds them in dependency order from the worker's `Resources`
and starts and stops their background tasks through one `AsyncExitStack`::

    audit ─▶ assertions ─▶ policy ─▶ idp (provider, client) ─▶ revocations ─▶ mfa
          ─▶ authenticator ─▶ sessions (store, refresher, resolver) ─▶ login, logout, CSRF
          ─▶ forward_auth

The result is a frozen, typed `Services`; Litestar handlers receive its pieces
through the ``provide_*`` dependencies of `auth_service.deps`, the lean
forward-auth path uses `Services.forward_auth`. Nothing is looked up by name, so
the type checker sees the whole graph. Tests build the app through the same
function (`auth_service.app.create_app` with a stand-in IdP client and a clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from auth_service.audit import AuditLog, start_audit
from auth_service.crypto import SecretBox
from auth_service.forward_auth.audit import audit_hook
from auth_service.forward_auth.endpoint import ForwardAuthEndpoint
from auth_service.health.readiness import IdpProbe
from auth_service.idp import IdPClient, OIDCProvider
from auth_service.mfa import MfaService, MfaState, start_mfa
from auth_service.oidc.login import BrowserLogin
from auth_service.oidc.logout import Logout
from auth_service.oidc.refresh import RefreshGrant
from auth_service.policy import CompiledPolicy, PolicyHolder, PolicyIssue
from auth_service.resources import Resources
from auth_service.sessions import (
    CsrfTokens,
    SessionRefresher,
    SessionResolver,
    SessionStore,
    session_cookie_name,
)
from auth_service.stores.rate_limit import FixedWindowLimiter
from auth_service.tokens.assertion import AssertionSigner
from auth_service.tokens.keys import SigningKeyStore
from auth_service.tokens.revocation import Revocations
from auth_service.tokens.service import Authenticator

__all__ = ("Services", "build_services", "needed_claims")

log = structlog.get_logger("auth_service.services")


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """Every capability service of one worker, built once by `build_services`."""

    resources: Resources
    """Pools, clients, settings and metrics the services run on."""
    audit: AuditLog
    assertions: AssertionSigner
    """Signs ``X-Auth-Assertion`` and publishes its JWKS."""
    policy: PolicyHolder
    """The current compiled access policy (reloaded on change and SIGHUP)."""
    idp: OIDCProvider
    """Discovery, JWKS and token verifiers of the realm."""
    idp_client: IdPClient
    """The realm's token, revocation and introspection endpoints."""
    idp_probe: IdpProbe
    """Whether the realm answers (readiness)."""
    revocations: Revocations
    authenticator: Authenticator
    mfa_state: MfaState
    """MFA-verified sids, mirrored in memory for the hot path."""
    mfa: MfaService
    session_store: SessionStore
    sessions: SessionResolver
    login: BrowserLogin
    login_limiter: FixedWindowLimiter
    """Login starts per client address (``AUTH_LOGIN_RATE_LIMIT``)."""
    logout: Logout
    csrf: CsrfTokens
    forward_auth: ForwardAuthEndpoint
    """The lean ASGI handler of ``/authz/*``."""


def needed_claims(policy: CompiledPolicy, claim_headers: dict[str, str]) -> frozenset[str]:
    """Top-level claims a token must carry for the policy and header map to be decided.

    A token lacking any of them (a Keycloak lightweight access token) is completed
    from the IdP's introspection endpoint once.
    """
    needed = {"sub", *policy.needed_claims, *(p.split(".", 1)[0] for p in claim_headers)}
    for rule in policy.rules:
        if rule.require_roles:
            needed.add("realm_access")
        if rule.require_client_roles:
            needed.add("resource_access")
        if rule.require_scopes:
            needed.add("scope")
    return frozenset(needed)


def _spawn(stack: contextlib.AsyncExitStack, coro: Coroutine[Any, Any, Any], name: str) -> None:
    task = asyncio.get_running_loop().create_task(coro, name=name)

    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
            await asyncio.wait_for(task, 5.0)

    stack.push_async_callback(cancel)


def _policy(res: Resources, stack: contextlib.AsyncExitStack) -> PolicyHolder:
    settings, metrics = res.settings, res.metrics

    def on_reload(ok: bool, issues: list[PolicyIssue]) -> None:
        metrics.policy_reloads.labels("ok" if ok else "refused").inc()
        if ok:
            log.info("policy_reloaded", file=settings.policy_file)
        else:
            log.error(
                "policy_refused",
                file=settings.policy_file,
                errors=[i.format(settings.policy_file) for i in issues],
            )

    policy = PolicyHolder(settings.policy_file, on_reload=on_reload)
    if settings.policy_watch_interval > 0:
        _spawn(stack, policy.watch(settings.policy_watch_interval), "policy-watch")
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, policy.reload)
        stack.callback(loop.remove_signal_handler, signal.SIGHUP)
    return policy


def _needed(policy: PolicyHolder, claim_headers: dict[str, str]) -> Callable[[], frozenset[str]]:
    """`needed_claims` of the current policy, recomputed only when the policy changes."""
    last: list[Any] = [None, frozenset()]  # (policy object, its needed claims)

    def needed() -> frozenset[str]:
        current = policy.current
        if last[0] is not current:
            last[:] = [current, needed_claims(current, claim_headers)]
        found: frozenset[str] = last[1]
        return found

    return needed


@contextlib.asynccontextmanager
async def build_services(
    res: Resources, *, clock: Callable[[], float] = time.time
) -> AsyncIterator[Services]:
    """Build and start every service of a worker; stop them all when the block ends.

    Args:
        res: the worker's pools and clients (`auth_service.lifespan`).
        clock: wall clock of the MFA capability (TOTP steps, lockout windows);
            tests hand in one they move.
    """
    settings, metrics = res.settings, res.metrics
    async with contextlib.AsyncExitStack() as stack:
        # First on the stack, so it is flushed last on shutdown.
        audit = await start_audit(res, stack)
        stop = asyncio.Event()
        signer = AssertionSigner(
            SigningKeyStore(
                res.pg, SecretBox(settings.secret_keys), assertion_ttl=settings.assertion_ttl
            ),
            issuer=settings.public_url,
            ttl=settings.assertion_ttl,
        )
        refresher_task = await signer.start(stop)

        async def stop_signer() -> None:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(refresher_task, 5.0)

        stack.push_async_callback(stop_signer)
        policy = _policy(res, stack)

        idp = OIDCProvider(settings, res.http, metrics)
        _spawn(stack, idp.run(stop), "oidc-provider")
        idp_client = IdPClient(settings, idp)
        idp_probe = IdpProbe(settings.oidc_issuer, res.http, timeout=settings.idp_timeout)
        _spawn(stack, idp_probe.run(stop), "idp-probe")  # readiness: is the realm reachable?
        revocations = Revocations(res.redis, prefix=settings.redis_prefix, metrics=metrics)
        _spawn(stack, revocations.run(stop), "revocations")
        metrics.watch_dependencies(
            idp_reachable=lambda: idp_probe.reachable,
            revocations_synced=revocations.synced.is_set,
        )

        mfa_state, mfa = await start_mfa(
            res, stack, audit=audit, revocations=revocations, clock=clock
        )
        authenticator = Authenticator(
            settings,
            idp,
            idp_client,
            revocations,
            metrics,
            needed_claims=_needed(policy, settings.claim_header_map),
            claim_paths=lambda: policy.current.claim_paths,
        )

        session_store = SessionStore(
            res.redis,
            SecretBox(settings.secret_keys),
            prefix=settings.redis_prefix,
            idle_timeout=settings.session_idle_timeout,
            absolute_timeout=settings.session_absolute_timeout,
        )
        login = BrowserLogin(
            settings,
            idp_client,
            authenticator,
            session_store,
            res.redis,
            audit=audit,
            state_ttl=settings.login_state_ttl,
            scopes=settings.oidc_scopes,
        )
        logout = Logout(settings, idp_client, session_store, revocations, res.redis, audit=audit)
        refresh = RefreshGrant(idp_client, authenticator)
        sessions = SessionResolver(
            session_store,
            SessionRefresher(session_store, refresh, call_timeout=settings.idp_timeout),
            authenticator,
            revocations,
            cookie_name=session_cookie_name(settings.public_url),
            audit=audit,
            refresh_margin=settings.session_refresh_margin,
        )
        forward_auth = ForwardAuthEndpoint(
            settings,
            authenticator,
            policy,
            metrics,
            assertions=signer,
            mfa=mfa_state,
            sessions=sessions,
            on_decision=audit_hook(audit, settings.trusted_proxies),
        )
        # Registered last, so it runs first on shutdown: loops see `stop` before being cancelled.
        stack.callback(stop.set)
        yield Services(
            resources=res,
            audit=audit,
            assertions=signer,
            policy=policy,
            idp=idp,
            idp_client=idp_client,
            idp_probe=idp_probe,
            revocations=revocations,
            authenticator=authenticator,
            mfa_state=mfa_state,
            mfa=mfa,
            session_store=session_store,
            sessions=sessions,
            login=login,
            login_limiter=FixedWindowLimiter(
                res.redis,
                prefix=settings.redis_prefix,
                name="login",
                limit=settings.login_rate_limit,
                window=settings.login_rate_window,
            ),
            logout=logout,
            csrf=CsrfTokens(settings.secret_keys),
            forward_auth=forward_auth,
        )
