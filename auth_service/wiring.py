"""Wires the capability services into a worker at startup (called by the lifespan).

Each capability owns its routes, models and storage; this module only builds
them with the worker's resources, starts their background tasks, and registers
what the HTTP layer needs (`app.state.forward_auth` for the lean path,
`res.components` for Litestar controllers).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any

import structlog
from litestar import Litestar

from auth_service.audit import start_audit
from auth_service.crypto import SecretBox
from auth_service.forward_auth.audit import audit_hook
from auth_service.forward_auth.endpoint import ForwardAuthEndpoint
from auth_service.health.readiness import IdpProbe
from auth_service.mfa import start_mfa
from auth_service.oidc.provider import OIDCProvider
from auth_service.policy import CompiledPolicy, PolicyHolder, PolicyIssue
from auth_service.resources import Resources
from auth_service.sessions import start_sessions
from auth_service.stores.rate_limit import FixedWindowLimiter
from auth_service.tokens.assertion import AssertionSigner
from auth_service.tokens.keys import SigningKeyStore
from auth_service.tokens.revocation import Revocations
from auth_service.tokens.service import Authenticator

__all__ = ("needed_claims", "start_services")

log = structlog.get_logger("auth_service.wiring")


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


async def start_services(app: Litestar, res: Resources, stack: contextlib.AsyncExitStack) -> None:
    """Start every capability service; shutdown callbacks go on ``stack``."""
    settings, metrics = res.settings, res.metrics
    # First on the stack, so it is flushed last on shutdown.
    audit = res.components["audit"] = await start_audit(res, stack)
    stop = asyncio.Event()

    signer = AssertionSigner(
        SigningKeyStore(
            res.pg, SecretBox(settings.secret_keys), assertion_ttl=settings.assertion_ttl
        ),
        issuer=settings.public_url,
        ttl=settings.assertion_ttl,
    )
    refresher = await signer.start(stop)
    res.components["assertions"] = signer

    async def stop_signer() -> None:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(refresher, 5.0)

    stack.push_async_callback(stop_signer)

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
    res.components["policy"] = policy
    if settings.policy_watch_interval > 0:
        _spawn(stack, policy.watch(settings.policy_watch_interval), "policy-watch")
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, policy.reload)
        stack.callback(loop.remove_signal_handler, signal.SIGHUP)

    provider = OIDCProvider(settings, res.http, metrics)
    res.components["oidc"] = provider
    _spawn(stack, provider.run(stop), "oidc-provider")
    idp_probe = res.components["idp_probe"] = IdpProbe(
        settings.oidc_issuer, res.http, timeout=settings.idp_timeout
    )
    _spawn(stack, idp_probe.run(stop), "idp-probe")  # readiness: is the realm reachable?

    revocations = Revocations(res.redis, prefix=settings.redis_prefix, metrics=metrics)
    res.components["revocations"] = revocations
    _spawn(stack, revocations.run(stop), "revocations")
    metrics.watch_dependencies(
        idp_reachable=lambda: idp_probe.reachable, revocations_synced=revocations.synced.is_set
    )

    last: list[Any] = [None, frozenset()]  # (policy object, its needed claims)

    def needed() -> frozenset[str]:
        current = policy.current
        if last[0] is not current:
            last[:] = [current, needed_claims(current, settings.claim_header_map)]
        found: frozenset[str] = last[1]
        return found

    mfa = await start_mfa(res, stack)  # registers res.components["mfa"] and ["mfa_service"]

    authenticator = Authenticator(settings, provider, revocations, metrics, needed_claims=needed)
    res.components["authenticator"] = authenticator
    sessions = await start_sessions(app, res, stack)
    res.components["login_limiter"] = FixedWindowLimiter(
        res.redis,
        prefix=settings.redis_prefix,
        name="login",
        limit=settings.login_rate_limit,
        window=settings.login_rate_window,
    )
    app.state.forward_auth = ForwardAuthEndpoint(
        settings,
        authenticator,
        policy,
        metrics,
        assertions=signer,
        mfa=mfa,
        sessions=sessions,
        on_decision=audit_hook(audit, settings.trusted_proxies),
    )
    # Registered last, so it runs first on shutdown: loops see `stop` before being cancelled.
    stack.callback(stop.set)
