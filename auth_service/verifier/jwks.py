"""Signing keys: OIDC discovery and a JWKS cache that keeps working when the IdP does not.

The cache answers the question "which public key has this ``kid``?" for every token
the verifier sees, so it is built around three rules:

* **The hot path never awaits.** :meth:`JWKSCache.get` is a dictionary lookup.
  Only an *unknown* ``kid`` goes through :meth:`JWKSCache.get_or_refresh`.
* **An unknown kid cannot be used to hammer the IdP.** A token with a made-up
  ``kid`` costs at most one JWKS download per ``min_refresh_interval`` seconds,
  however many arrive; concurrent callers share one in-flight download
  (single-flight: one :class:`asyncio.Task`, awaited through :func:`asyncio.shield`
  so a cancelled caller never cancels it for the others).
* **A failed download changes nothing.** Network errors, non-200 answers, and
  documents that are not a JWKS with at least one usable signing key are failed
  fetches: the keys already held stay in service. A *successful* download replaces
  the key set, so a key the IdP withdrew (e.g. after a compromise) stops verifying.

Which JWKS entries become keys: ``use`` is ``"sig"`` or absent (Keycloak also
publishes its ``RSA-OAEP`` ``use: "enc"`` key, which is skipped), ``kid`` is a
non-empty string, ``kty`` is not ``oct`` (a symmetric secret never belongs in a
public JWKS; refusing it means an ``HS*`` token can never meet a matching key),
and joserfc can import it. Entries failing any rule are skipped one by one.

Freshness: :meth:`JWKSCache.run_background` refreshes before ``max_age`` runs out
(at a jittered 75-90 % of it), and after a failure retries with jittered exponential
backoff starting at ``min_refresh_interval``. :attr:`JWKSCache.healthy` says whether
the keys are younger than ``max_age``; stale keys still verify tokens.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import httpx
import msgspec
from joserfc.jwk import Key, import_key

__all__ = (
    "DiscoveryError",
    "JWKSCache",
    "ProviderMetadata",
    "discover",
    "parse_jwks",
)

logger = logging.getLogger(__name__)

FetchOutcome = Literal["ok", "error"]


class DiscoveryError(Exception):
    """Raised by :func:`discover` when the discovery document cannot be used.

    That is: the request failed, the answer was not ``200``, the body is not a
    discovery document, or its ``issuer`` is not exactly the expected one.
    """


class ProviderMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of an OpenID Provider's discovery document that this project uses.

    Unknown members of the document are ignored.
    """

    issuer: str
    """Issuer identifier; equal, character for character, to the ``iss`` of its tokens."""
    jwks_uri: str
    """Where the signing keys are published (Keycloak: ``.../protocol/openid-connect/certs``)."""
    token_endpoint: str | None = None
    """OAuth 2.0 token endpoint."""
    introspection_endpoint: str | None = None
    """RFC 7662 token introspection endpoint."""
    authorization_endpoint: str | None = None
    """Where browsers are sent to log in."""
    end_session_endpoint: str | None = None
    """RP-initiated logout endpoint."""
    userinfo_endpoint: str | None = None
    """OIDC UserInfo endpoint."""
    revocation_endpoint: str | None = None
    """RFC 7009 token revocation endpoint."""


async def discover(
    issuer: str,
    http: httpx.AsyncClient,
    *,
    fetch_timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> ProviderMetadata:
    """Read ``<issuer>/.well-known/openid-configuration`` and check that it belongs to ``issuer``.

    A trailing slash on ``issuer`` is dropped to build the URL (OIDC Discovery §4),
    but the document's ``issuer`` must equal ``issuer`` exactly, as token ``iss``
    claims are compared exactly too.

    Raises:
        DiscoveryError: for any failure; the message says which.
    """
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = await http.get(url, headers=dict(headers or {}), timeout=fetch_timeout)
    except httpx.HTTPError as exc:
        raise DiscoveryError(f"GET {url} failed: {exc.__class__.__name__}") from exc
    if response.status_code != 200:
        raise DiscoveryError(f"GET {url} answered {response.status_code}")
    try:
        metadata = msgspec.json.decode(response.content, type=ProviderMetadata)
    except msgspec.DecodeError as exc:
        raise DiscoveryError(f"{url} is not a discovery document: {exc}") from exc
    if metadata.issuer != issuer:
        raise DiscoveryError(f"{url} names issuer {metadata.issuer!r}, expected {issuer!r}")
    return metadata


class _JWKSDocument(msgspec.Struct):
    keys: list[Any]


def parse_jwks(document: bytes | str) -> dict[str, Key]:
    """Turn a JWKS document into ``{kid: key}`` holding only usable signing keys.

    Entries that are not signing keys or cannot be imported are skipped (see the
    module docstring for the rules); the first entry wins when a ``kid`` repeats.

    Raises:
        ValueError: if the document is not a JSON object with a ``keys`` array, or
            if no entry is usable. (:class:`msgspec.DecodeError` is a ``ValueError``.)
    """
    entries = msgspec.json.decode(document, type=_JWKSDocument).keys
    keys: dict[str, Key] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
            continue
        if not isinstance(kid, str) or not kid or kid in keys:
            continue
        try:
            keys[kid] = import_key(entry)
        except Exception:  # joserfc raises ValueError, TypeError, KeyError, its own errors...
            logger.warning("jwks: skipping key %r that cannot be imported", kid)
    if not keys:
        raise ValueError("JWKS holds no usable signing key")
    return keys


class JWKSCache:
    """Public signing keys of one JWKS endpoint, by ``kid``.

    Args:
        jwks_uri: The JWKS URL (see :func:`discover` to find it from an issuer).
        http: The client used for downloads; the caller owns and closes it.
        min_refresh_interval: Least time between two downloads caused by unknown
            ``kid`` values or :meth:`refresh` without ``force``; also the first
            backoff step of :meth:`run_background`.
        max_age: Keys older than this are stale: :attr:`healthy` turns false and
            :meth:`run_background` refreshes before it is reached.
        fetch_timeout: Timeout of one download, in seconds.
        clock: Monotonic seconds; injectable for tests. :attr:`last_success` uses it.
        on_fetch: Called with ``"ok"`` or ``"error"`` after each download (metrics).
        headers_factory: Called before each download for extra request headers,
            e.g. to propagate ``X-Request-ID``.
    """

    def __init__(
        self,
        jwks_uri: str,
        http: httpx.AsyncClient,
        *,
        min_refresh_interval: float = 10.0,
        max_age: float = 300.0,
        fetch_timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        on_fetch: Callable[[str], None] | None = None,
        headers_factory: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.jwks_uri = jwks_uri
        """The URL keys are downloaded from."""
        self.last_success: float | None = None
        """``clock()`` at the end of the last successful download; ``None`` before one."""
        self.consecutive_failures = 0
        """Failed downloads since the last successful one."""
        self._http = http
        self._min_refresh_interval = min_refresh_interval
        self._max_age = max_age
        self._fetch_timeout = fetch_timeout
        self._clock = clock
        self._on_fetch = on_fetch
        self._headers_factory = headers_factory
        self._keys: dict[str, Key] = {}
        self._last_attempt: float | None = None
        self._inflight: asyncio.Task[bool] | None = None

    def __repr__(self) -> str:
        return f"JWKSCache({self.jwks_uri!r}, kids={sorted(self._keys)!r})"

    @property
    def keys(self) -> Mapping[str, Key]:
        """A read-only view of the current ``{kid: key}`` set."""
        return MappingProxyType(self._keys)

    @property
    def healthy(self) -> bool:
        """True when keys are loaded and the last successful download is at most ``max_age`` old.

        False means the IdP has not answered for a while; the cached keys still
        verify tokens, so this is a signal for readiness probes and alerts, not a
        reason to refuse requests.
        """
        return (
            bool(self._keys)
            and self.last_success is not None
            and self._clock() - self.last_success <= self._max_age
        )

    def get(self, kid: str) -> Key | None:
        """The key with this ``kid`` if already cached. Never does I/O."""
        return self._keys.get(kid)

    async def get_or_refresh(self, kid: str) -> Key | None:
        """The key with this ``kid``, downloading the JWKS first if it is unknown.

        The download is rate-limited and shared (see :meth:`refresh`): when the
        interval has not passed, this returns ``None`` at once without any I/O.
        """
        key = self._keys.get(kid)
        if key is not None:
            return key
        await self.refresh()
        return self._keys.get(kid)

    async def refresh(self, force: bool = False) -> bool:
        """Download the JWKS; True when this produced a new key set.

        If a download is already in flight, wait for it instead of starting another.
        Otherwise, without ``force``, do nothing (and return False) when the last
        on-demand download started less than ``min_refresh_interval`` ago.
        """
        task = self._inflight
        if task is None:
            if not force:
                # Only on-demand refreshes (unknown kids) are rate-limited against each
                # other; a scheduled or forced download does not use up the allowance.
                now = self._clock()
                last = self._last_attempt
                if last is not None and now - last < self._min_refresh_interval:
                    return False
                self._last_attempt = now
            task = self._inflight = asyncio.get_running_loop().create_task(self._fetch())
            task.add_done_callback(self._fetch_done)
        return await asyncio.shield(task)

    def next_refresh_in(self) -> float:
        """Seconds until :meth:`run_background` downloads again (jittered; 0 means now)."""
        if self.consecutive_failures:
            step = self._min_refresh_interval * 2.0 ** (self.consecutive_failures - 1)
            return min(step, self._max_age) * random.uniform(0.5, 1.0)
        if self.last_success is None:
            return 0.0
        due = self.last_success + self._max_age * random.uniform(0.75, 0.9)
        return max(0.0, due - self._clock())

    async def run_background(self, stop: asyncio.Event) -> None:
        """Keep the keys fresh until ``stop`` is set; meant to run as a lifespan task.

        Downloads at once when nothing is cached, then before ``max_age`` runs out;
        after failures, backs off exponentially (with jitter) from
        ``min_refresh_interval`` up to ``max_age``.
        """
        while not stop.is_set():
            delay = self.next_refresh_in()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
                else:
                    return
            await self.refresh(force=True)

    def _fetch_done(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch(self) -> bool:
        try:
            headers = self._headers_factory() if self._headers_factory is not None else None
            response = await self._http.get(
                self.jwks_uri, headers=headers, timeout=self._fetch_timeout
            )
            if response.status_code != 200:
                raise ValueError(f"answered HTTP {response.status_code}")
            keys = parse_jwks(response.content)
        except Exception as exc:  # any failure keeps the old keys; none may escape
            self.consecutive_failures += 1
            logger.warning(
                "jwks: fetching %s failed (%s: %s); keeping %d cached keys",
                self.jwks_uri,
                exc.__class__.__name__,
                exc,
                len(self._keys),
            )
            self._notify("error")
            return False
        self._keys = keys
        self.last_success = self._clock()
        self.consecutive_failures = 0
        self._notify("ok")
        return True

    def _notify(self, outcome: FetchOutcome) -> None:
        if self._on_fetch is None:
            return
        try:
            self._on_fetch(outcome)
        except Exception:  # a broken metrics hook must not break key rotation
            logger.exception("jwks: on_fetch callback failed")
