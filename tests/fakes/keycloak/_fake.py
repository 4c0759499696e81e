"""``FakeKeycloak``: realm state, token minting, sessions, faults and back-channel logout.

The HTTP side lives in ``_endpoints`` (protocol) and ``_app`` (ASGI routing); this module is the
in-process control surface that tests drive directly.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from auth_service.keycloak_admin import export_realm, load_desired_state

from ._admin import AdminStore
from ._claims import ClaimsMixin, at_hash
from ._keys import KeyRing, SigningKey
from ._model import (
    AuthCode,
    BackchannelDelivery,
    Client,
    Session,
    User,
)

if TYPE_CHECKING:
    from ._app import ASGIApp

__all__ = ("FaultMode", "FakeKeycloak", "IssuedToken")

FaultMode = Literal["ok", "slow", "error500", "garbage", "hang"]
ENDPOINTS = (
    "discovery",
    "realm",
    "jwks",
    "token",
    "introspect",
    "userinfo",
    "revoke",
    "logout",
    "auth",
)
"""Endpoint names used by ``requests``, ``request_log`` and ``set_fault``."""

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
REALM_FILE = Path(__file__).resolve().parents[3] / "keycloak" / "acme-dev.toml"
"""The desired state the stand-in's realm is seeded from (base file + development overlay):
one realm truth for the tests, ``make dev`` and ``docker compose`` (whose import JSON is exported
from the same file)."""


@dataclass
class IssuedToken:
    """Server-side record of an access token, kept so introspection can return the full claim
    set even for lightweight tokens (§2.6)."""

    claims: dict[str, Any]
    client_id: str
    username: str | None


class FakeKeycloak(ClaimsMixin):
    """A Keycloak realm in a box: OIDC endpoints (``app``), seeded users/clients, key rotation,
    fault injection and back-channel logout delivery.

    ``issuer_base`` defaults to ``http://127.0.0.1:8080``; ``StandInServer`` sets it to the URL it
    serves on. Thread-safe enough to be driven from a test thread while uvicorn serves ``app``
    from another.
    """

    access_token_lifespan = 300
    """``expires_in`` of issued access tokens (seconds)."""
    sso_session_idle = 1800
    """``refresh_expires_in`` of issued refresh tokens (seconds)."""
    offline_session_idle = 2592000
    code_lifespan = 60
    """Authorization codes expire after this many seconds."""

    def __init__(
        self,
        *,
        realm: str = "acme",
        issuer_base: str | None = None,
        realm_file: Path | None = REALM_FILE,
    ) -> None:
        """``realm_file=None`` starts an empty Keycloak (no realm yet: create it through the
        admin API, e.g. with ``auth-service keycloak apply``)."""
        self.realm = realm
        self.issuer_base = (issuer_base or "http://127.0.0.1:8080").rstrip("/")
        self.keys = KeyRing()
        self.users: dict[str, User] = {}
        self.clients: dict[str, Client] = {}
        self.sessions: dict[str, Session] = {}
        self.codes: dict[str, AuthCode] = {}
        self.issued: dict[str, IssuedToken] = {}
        self.revoked_jtis: set[str] = set()
        self.used_refresh_jtis: set[str] = set()
        self.requests: collections.Counter[str] = collections.Counter()
        """Requests per endpoint name, counted on arrival (before any fault applies)."""
        self.request_log: list[tuple[str, dict[str, str]]] = []
        """``(endpoint, headers)`` per request; header names lower-cased (``x-request-id``)."""
        self.faults: dict[str, tuple[FaultMode, float]] = {}
        self.backchannel_deliveries: list[BackchannelDelivery] = []
        self.logout_token_typ = "logout+jwt"
        """JWS ``typ`` of logout tokens: ``"logout+jwt"`` (KC 25+) or ``"JWT"`` (KC 24)."""
        self.clock_offset = 0.0
        self._lock = threading.RLock()
        self._app: ASGIApp | None = None
        self.admin = AdminStore(self)
        """The admin REST API's realm state (shared with the OIDC side through projection)."""
        if realm_file is not None:
            self._seed(realm_file)

    # -- realm ------------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        """``<issuer_base>/realms/<realm>``."""
        return f"{self.issuer_base}/realms/{self.realm}"

    @property
    def app(self) -> ASGIApp:
        """The ASGI application serving every endpoint (and the ``/_standin`` control API)."""
        if self._app is None:
            from ._app import build_app

            self._app = build_app(self)
        return self._app

    def now(self) -> float:
        """The stand-in's clock: wall time plus ``clock_offset``."""
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the stand-in's clock forward (expire codes and tokens without sleeping)."""
        self.clock_offset += seconds

    def _seed(self, realm_file: Path) -> None:
        """Import the realm described by the desired-state file, as ``--import-realm`` would,
        with the placeholders' development defaults (the environment is not consulted)."""
        rep = export_realm(load_desired_state(realm_file, env={}))
        rep["realm"] = self.realm
        self.admin.lenient_redirects = True
        self.admin.import_realm(rep, seeding=True)

    def add_user(
        self,
        username: str,
        password: str,
        *,
        realm_roles: Iterable[str] = (),
        client_roles: dict[str, list[str]] | None = None,
        attributes: dict[str, Any] | None = None,
        email: str | None = None,
        sub: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> User:
        """Create (or replace) a user. Usernames are stored lower-cased, as Keycloak does."""
        user = User(
            username=username.lower(),
            password=password,
            email=email,
            first_name=first_name,
            last_name=last_name,
            realm_roles=list(realm_roles),
            client_roles={k: list(v) for k, v in (client_roles or {}).items()},
            attributes=dict(attributes or {}),
        )
        if sub is not None:
            user.sub = sub
        self.users[user.username] = user
        return user

    def add_client(
        self,
        client_id: str,
        *,
        secret: str | None = None,
        public: bool = False,
        redirect_uris: Iterable[str] = ("*",),
        lightweight: bool = False,
        audiences: Iterable[str] = (),
        service_account_roles: Iterable[str] = (),
        backchannel_logout_url: str | None = None,
        bearer_only: bool = False,
        service_accounts: bool | None = None,
    ) -> Client:
        """Create (or replace) a client. Confidential clients (with a ``secret``) get a service
        account unless ``service_accounts=False``."""
        client = Client(
            client_id=client_id,
            secret=None if public else secret,
            public=public,
            bearer_only=bearer_only,
            redirect_uris=list(redirect_uris),
            lightweight=lightweight,
            audiences=list(audiences),
            service_accounts=(secret is not None and not public and not bearer_only)
            if service_accounts is None
            else service_accounts,
            service_account_roles=list(service_account_roles),
            backchannel_logout_url=backchannel_logout_url,
        )
        self.clients[client_id] = client
        return client

    # -- keys -------------------------------------------------------------------------------

    @property
    def active_kid(self) -> str:
        """Kid of the RS256 key that currently signs."""
        return self.keys.active_kid

    def rotate_keys(self) -> str:
        """Add a new RS256 key and make it the signer; the old one stays published (passive)."""
        return self.keys.add("RS256", active=True)

    def retire_key(self, kid: str) -> None:
        """Remove a key from the JWKS; tokens it signed no longer introspect as active."""
        self.keys.retire(kid)

    def add_key(self, alg: str = "RS256", active: bool = False) -> str:
        """Publish an extra key (``RS256``, ``PS256`` or ``ES256``); returns its kid.

        ``active=True`` makes it the signer for its algorithm (for RS256: the realm default)."""
        return self.keys.add(alg, active=active)

    def private_jwk(self, kid: str) -> SigningKey:
        """The joserfc private key behind ``kid`` (to sign forged tokens in tests)."""
        return self.keys.keys[kid].key

    def jwks(self) -> dict[str, Any]:
        """The JWKS document (signing keys plus the RSA-OAEP encryption key)."""
        return self.keys.jwks()

    # -- faults -----------------------------------------------------------------------------

    def set_fault(self, endpoint: str, mode: FaultMode, *, delay: float = 2.0) -> None:
        """Make ``endpoint`` (a name from ``ENDPOINTS`` or ``"*"``) misbehave.

        ``slow`` answers after ``delay`` seconds, ``error500`` returns Keycloak's 500 body,
        ``garbage`` returns 200 with a non-JSON body (a junk key set for ``jwks``), ``hang``
        holds the request until the fault is cleared; ``ok`` removes the fault.
        """
        if endpoint != "*" and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; use one of {ENDPOINTS} or '*'")
        if mode not in ("ok", "slow", "error500", "garbage", "hang"):
            raise ValueError(f"unknown fault mode {mode!r}")
        with self._lock:
            if mode == "ok":
                self.faults.pop(endpoint, None)
            else:
                self.faults[endpoint] = (mode, delay)

    def clear_faults(self) -> None:
        """Remove every fault (releases hanging requests)."""
        with self._lock:
            self.faults.clear()

    def fault_for(self, endpoint: str) -> tuple[FaultMode, float]:
        """The fault applying to ``endpoint`` (specific beats ``"*"``)."""
        return self.faults.get(endpoint) or self.faults.get("*") or ("ok", 0.0)

    # -- sessions ---------------------------------------------------------------------------

    def start_session(self, username: str, *, sid: str | None = None) -> Session:
        """Open a user session (as a successful login does) and return it."""
        now = int(self.now())
        session = Session(
            sid=sid or str(uuid.uuid4()), username=username, started=now, auth_time=now
        )
        with self._lock:
            self.sessions[session.sid] = session
        return session

    def session(self, sid: str | None) -> Session | None:
        """The *active* session with this id, if any."""
        found = self.sessions.get(sid) if sid else None
        return found if found is not None and found.active else None

    def _claim_session(self, username: str, sid: str | None, client_id: str) -> Session:
        with self._lock:
            existing = self.sessions.get(sid) if sid else None
            session = existing or self.start_session(username, sid=sid)
            session.clients.add(client_id)
            return session

    async def end_session(self, sid: str) -> list[BackchannelDelivery]:
        """End a session and send back-channel logout tokens to its clients that have a URL."""
        with self._lock:
            session = self.session(sid)
            if session is None:
                return []
            session.active = False
        deliveries = []
        for client_id in sorted(session.clients):
            client = self.clients.get(client_id)
            if client is None or not client.backchannel_logout_url:
                continue
            token = self.mint_logout_token(session.username, client_id=client_id, sid=sid)
            delivery = await self.send_logout_token(client.backchannel_logout_url, token)
            delivery.client_id, delivery.sid = client_id, sid
            deliveries.append(delivery)
        return deliveries

    async def admin_logout_user(self, username: str) -> list[BackchannelDelivery]:
        """``POST /admin/realms/{r}/users/{id}/logout``: end every session of the user."""
        sids = [s.sid for s in self.sessions.values() if s.active and s.username == username]
        deliveries: list[BackchannelDelivery] = []
        for sid in sids:
            deliveries += await self.end_session(sid)
        return deliveries

    async def send_logout_token(self, url: str, token: str) -> BackchannelDelivery:
        """POST ``logout_token=<token>`` form-encoded to ``url``, as Keycloak does; the outcome
        is appended to ``backchannel_deliveries`` and returned."""
        delivery = BackchannelDelivery(
            url=url, client_id="", sid=None, logout_token=token, status_code=None
        )
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.post(url, data={"logout_token": token})
            delivery.status_code = response.status_code
        except httpx.HTTPError as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
        self.backchannel_deliveries.append(delivery)
        return delivery

    def sign_access_token(
        self, full: dict[str, Any], *, lightweight: bool, username: str | None, **sign: Any
    ) -> str:
        """Record ``full`` for introspection and sign it (reduced when ``lightweight``)."""
        self.issued[full["jti"]] = IssuedToken(full, full["azp"], username)
        body = self.lightweight_claims(full) if lightweight else full
        return self.keys.sign(body, **sign)

    # -- minting ----------------------------------------------------------------------------

    def _user(self, username: str) -> User:
        try:
            return self.users[username.lower()]
        except KeyError:
            raise KeyError(f"unknown user {username!r}; add_user() it first") from None

    def _client(self, client_id: str) -> Client:
        return self.clients.get(client_id) or Client(client_id=client_id)

    def mint_access_token(
        self,
        username: str = "alice",
        *,
        client_id: str = "acme-web",
        audience: str | list[str] | tuple[str, ...] | None | Literal["auto"] = "auto",
        scope: str = "openid profile email",
        sid: str | None = None,
        lifetime: int = 300,
        lightweight: bool = False,
        extra_claims: dict[str, Any] | None = None,
        header_overrides: dict[str, Any] | None = None,
        kid: str | None = None,
        alg: str | None = None,
        now: float | None = None,
    ) -> str:
        """Mint a signed user access token without a grant round trip.

        ``audience="auto"`` computes ``aud`` as the token endpoint does (the client's audience
        mappers, then clients the user has roles on); pass values to force it.

        A session is opened (or joined when ``sid`` names one, created under that id otherwise)
        so introspection and ``end_session`` behave as for a real login. ``extra_claims`` are
        merged last; a ``None`` value deletes the claim. ``kid``/``alg`` choose the signing key;
        ``header_overrides`` are merged into the JWS header after signing-key selection.
        """
        user, client = self._user(username), self._client(client_id)
        session = self._claim_session(user.username, sid, client_id)
        full = self.user_access_claims(
            user,
            client,
            scope=scope,
            sid=session.sid,
            lifetime=lifetime,
            now=now,
            audience=audience,
        )
        for name, value in (extra_claims or {}).items():
            if value is None:
                full.pop(name, None)
            else:
                full[name] = value
        return self.sign_access_token(
            full,
            lightweight=lightweight or client.lightweight,
            username=user.username,
            kid=kid,
            alg=alg,
            header_overrides=header_overrides,
        )

    def mint_id_token(
        self,
        username: str = "alice",
        *,
        client_id: str = "acme-web",
        sid: str | None = None,
        nonce: str | None = None,
        access_token: str | None = None,
        scope: str = "openid profile email",
        lifetime: int = 300,
        extra_claims: dict[str, Any] | None = None,
        header_overrides: dict[str, Any] | None = None,
        kid: str | None = None,
        alg: str | None = None,
        now: float | None = None,
    ) -> str:
        """Mint an ID token; ``access_token`` adds a matching ``at_hash``. Opens/joins a session
        like ``mint_access_token`` so it can serve as an ``id_token_hint``."""
        user = self._user(username)
        session = self._claim_session(user.username, sid, client_id)
        claims = self.id_token_claims(
            user,
            client_id,
            scope=scope,
            sid=session.sid,
            nonce=nonce,
            access_token=access_token,
            lifetime=lifetime,
            now=now,
        )
        for name, value in (extra_claims or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return self.keys.sign(claims, kid=kid, alg=alg, header_overrides=header_overrides)

    def mint_logout_token(
        self,
        username: str | None = "alice",
        *,
        client_id: str = "auth-service",
        sid: str | None = None,
        typ_header: str | None = None,
        include_sid: bool = True,
        lifetime: int = 120,
        events: dict[str, Any] | None = None,
        extra_claims: dict[str, Any] | None = None,
        header_overrides: dict[str, Any] | None = None,
        kid: str | None = None,
        alg: str | None = None,
        now: float | None = None,
    ) -> str:
        """Mint a back-channel logout token (§2.5). ``typ_header`` defaults to
        ``logout_token_typ``; ``sid`` defaults to the user's newest active session (or a fresh
        id); ``username=None`` omits ``sub``."""
        iat = int(self.now() if now is None else now)
        if sid is None and username is not None:
            mine = [s for s in self.sessions.values() if s.active and s.username == username]
            sid = mine[-1].sid if mine else str(uuid.uuid4())
        claims: dict[str, Any] = {
            "iat": iat,
            "exp": iat + lifetime,
            "jti": str(uuid.uuid4()),
            "iss": self.issuer,
            "aud": client_id,
        }
        if username is not None:
            claims["sub"] = self._user(username).sub
        claims["typ"] = "Logout"
        if include_sid and sid is not None:
            claims["sid"] = sid
        claims["events"] = events if events is not None else {BACKCHANNEL_EVENT: {}}
        for name, value in (extra_claims or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        typ = typ_header or self.logout_token_typ
        return self.keys.sign(claims, kid=kid, alg=alg, typ=typ, header_overrides=header_overrides)

    def mint_refresh_token(self, username: str, client_id: str, *, sid: str, scope: str) -> str:
        """An opaque HS512 refresh token (``typ`` ``Refresh``; ``Offline`` for offline_access)."""
        iat = int(self.now())
        offline = "offline_access" in scope.split()
        lifespan = self.offline_session_idle if offline else self.sso_session_idle
        claims = {
            "exp": iat + lifespan,
            "iat": iat,
            "jti": str(uuid.uuid4()),
            "iss": self.issuer,
            "aud": self.issuer,
            "sub": self._user(username).sub,
            "typ": "Offline" if offline else "Refresh",
            "azp": client_id,
            "sid": sid,
            "scope": scope,
        }
        return self.keys.sign_internal(claims)

    # -- grants (shared by the HTTP endpoints) ----------------------------------------------

    def token_response(
        self,
        user: User,
        client: Client,
        session: Session,
        *,
        scope: str,
        nonce: str | None = None,
        auth_time: int | None = None,
    ) -> dict[str, Any]:
        """The nine-key token response (§2.1) for a user grant; ``id_token`` only with openid."""
        session.clients.add(client.client_id)
        full = self.user_access_claims(
            user, client, scope=scope, sid=session.sid, auth_time=auth_time
        )
        access = self.sign_access_token(
            full, lightweight=client.lightweight, username=user.username
        )
        refresh = self.mint_refresh_token(
            user.username, client.client_id, sid=session.sid, scope=scope
        )
        offline = "offline_access" in scope.split()
        body: dict[str, Any] = {
            "access_token": access,
            "expires_in": self.access_token_lifespan,
            "refresh_expires_in": self.offline_session_idle if offline else self.sso_session_idle,
            "refresh_token": refresh,
            "token_type": "Bearer",
        }
        if "openid" in scope.split():
            id_claims = self.id_token_claims(
                user,
                client.client_id,
                scope=scope,
                sid=session.sid,
                nonce=nonce,
                access_token=access,
                auth_time=auth_time,
            )
            body["id_token"] = self.keys.sign(id_claims)
        body.update({"not-before-policy": 0, "session_state": session.sid, "scope": scope})
        return body

    def service_account_response(self, client: Client, *, scope: str) -> dict[str, Any]:
        """``client_credentials`` response: no refresh token, ``refresh_expires_in`` 0."""
        full = self.service_account_claims(client, scope=scope)
        access = self.sign_access_token(full, lightweight=client.lightweight, username=None)
        body: dict[str, Any] = {
            "access_token": access,
            "expires_in": self.access_token_lifespan,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
        }
        if "openid" in scope.split():
            id_claims = {
                k: v
                for k, v in full.items()
                if k not in ("realm_access", "resource_access", "scope", "jti", "typ", "aud")
            }
            id_claims.update(
                {"jti": str(uuid.uuid4()), "aud": client.client_id, "typ": "ID"},
                at_hash=at_hash(access),
            )
            body["id_token"] = self.keys.sign(id_claims)
        body.update({"not-before-policy": 0, "scope": scope})
        return body

    def verify(self, token: str) -> dict[str, Any] | None:
        """Claims of a token this realm issued that is still valid: signature by a published key
        (or the HMAC key), not expired, not revoked, and its session (if any) still active."""
        verified = self.keys.verify(token)
        if verified is None:
            return None
        _, claims = verified
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp < self.now():
            return None
        if claims.get("jti") in self.revoked_jtis:
            return None
        if "sid" in claims and self.session(claims["sid"]) is None:
            return None
        return claims

    def consume_refresh_token(self, jti: str) -> bool:
        """Mark a refresh token used; ``False`` if it already was (rotation: single use)."""
        with self._lock:
            if jti in self.used_refresh_jtis:
                return False
            self.used_refresh_jtis.add(jti)
            return True

    def full_claims(self, claims: dict[str, Any]) -> dict[str, Any]:
        """The recorded full claim set behind a (possibly lightweight) access token."""
        issued = self.issued.get(str(claims.get("jti")))
        return dict(issued.claims) if issued is not None else dict(claims)

    def username_for(self, claims: dict[str, Any]) -> str | None:
        """The username a token belongs to (``preferred_username`` or the issuing record)."""
        issued = self.issued.get(str(claims.get("jti")))
        if issued is not None and issued.username is not None:
            return issued.username
        if "preferred_username" in claims:
            return str(claims["preferred_username"])
        return next((u.username for u in self.users.values() if u.sub == claims.get("sub")), None)
