"""What readiness means (CONTRACT §10): ``ok``, ``degraded`` or ``down``.

A readiness probe takes a worker out of the load balancer. That is right only
when the worker cannot decide forward-auth checks correctly, so ``down`` (503)
is reserved for exactly two cases:

* no usable IdP keys at all (never discovered, or no key cached): no token can
  be verified;
* the revocation mirror never synchronised since start: revoked tokens would
  be unknown (forward-auth answers them 503 until then, see
  `auth_service.tokens.revocation`).

Everything else that is down makes the worker ``degraded`` (200) and is named
in the body: PostgreSQL (audit events spool locally and are written once it is
back), Redis after the first sync (the last known revocations stay in force),
the IdP (cached keys keep verifying), keys older than ``AUTH_JWKS_MAX_AGE``,
no ``X-Auth-Assertion`` signing key (never loaded because PostgreSQL was down
at start: allowed requests answer 503 ``signing_keys_unavailable``, denials and
anonymous rules still answer; every worker shares that database, so taking
them out would only add the anonymous rules to the outage).
Taking every worker out for one of those would turn a Keycloak or PostgreSQL
outage into a total outage.

`oidc` is the realm's reachability, not the state of the key cache: `IdpProbe`
asks the discovery document every `PROBE_INTERVAL` seconds, so ``oidc`` turns
``down`` within ``PROBE_INTERVAL`` + the IdP timeout (at most 15 s) of the
realm becoming unreachable, even while cached keys still verify.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Literal

import httpx
import structlog

from auth_service.verifier import JWKSCache

__all__ = (
    "PROBE_INTERVAL",
    "DependencyStatus",
    "IdpProbe",
    "KeysState",
    "OverallStatus",
    "RevocationsState",
    "keys_state",
    "overall_status",
)

log = structlog.get_logger("auth_service.health")

DependencyStatus = Literal["ok", "down"]
OverallStatus = Literal["ok", "degraded", "down"]
KeysState = Literal["fresh", "stale", "none"]
"""IdP keys: fetched within ``AUTH_JWKS_MAX_AGE``, older but cached, or none at all."""
RevocationsState = Literal["synced", "stale", "never"]
"""The revocation mirror: in sync, last known set (Redis lost since), or never synchronised."""

PROBE_INTERVAL = 10.0
"""Seconds between two reachability checks of the realm."""
_PROBE_TIMEOUT_MAX = 5.0


def keys_state(jwks: JWKSCache | None) -> KeysState:
    """How usable the IdP keys are (``None``: the realm was never discovered)."""
    if jwks is None or not jwks.keys:
        return "none"
    return "fresh" if jwks.healthy else "stale"


def overall_status(
    *,
    postgres: DependencyStatus,
    redis: DependencyStatus,
    oidc: DependencyStatus,
    keys: KeysState,
    revocations: RevocationsState,
    assertion_keys: DependencyStatus = "ok",
) -> OverallStatus:
    """The worker's readiness from its parts (see the module docstring)."""
    if keys == "none" or revocations == "never":
        return "down"
    if "down" in (postgres, redis, oidc, assertion_keys) or "stale" in (keys, revocations):
        return "degraded"
    return "ok"


class IdpProbe:
    """Reachability of the realm: ``GET`` its discovery document every `PROBE_INTERVAL` s.

    ``reachable`` is false until the first answer and after any failed check
    (connection error, timeout or a status other than 200).
    """

    def __init__(
        self,
        issuer: str,
        http: httpx.AsyncClient,
        *,
        timeout: float = _PROBE_TIMEOUT_MAX,
        interval: float = PROBE_INTERVAL,
    ) -> None:
        self.url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        self.http = http
        self.timeout = min(timeout, _PROBE_TIMEOUT_MAX)
        self.interval = interval
        self.reachable = False
        self.checked_at: float | None = None
        """``time.monotonic()`` of the last completed check."""

    async def check(self) -> bool:
        """One check; updates and returns ``reachable`` (never raises on IdP failures)."""
        try:
            response = await self.http.get(self.url, timeout=self.timeout)
            ok, error = response.status_code == 200, f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok, error = False, exc.__class__.__name__
        if ok != self.reachable:
            if ok:
                log.info("idp_reachable", url=self.url)
            else:
                log.warning("idp_unreachable", url=self.url, error=error)
        self.reachable = ok
        self.checked_at = time.monotonic()
        return ok

    async def run(self, stop: asyncio.Event) -> None:
        """Check at once, then every ``interval`` seconds until ``stop``."""
        while not stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
