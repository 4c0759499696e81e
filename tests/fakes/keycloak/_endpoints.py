"""The realm's OIDC endpoints, with Keycloak's status codes and error bodies (KEYCLOAK.md §1-§3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ._http import Request, Response, oauth_error
from ._model import AuthCode, Client

if TYPE_CHECKING:
    from ._fake import FakeKeycloak

__all__ = (
    "auth",
    "discovery",
    "introspect",
    "jwks",
    "logout",
    "realm_info",
    "revoke",
    "token",
    "userinfo",
)

_BAD_CLIENT = "Invalid client or Invalid client credentials"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_AUTH_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
)


class ClientAuthError(Exception):
    """Client authentication failed; ``unknown`` tells an unknown client from a bad secret."""

    def __init__(self, *, unknown: bool) -> None:
        super().__init__("unknown client" if unknown else "bad client credentials")
        self.unknown = unknown


def authenticate_client(fake: FakeKeycloak, req: Request) -> Client:
    """``client_secret_basic`` or ``client_secret_post``; public clients need only ``client_id``."""
    basic = req.basic_credentials()
    client_id, secret = basic if basic else (req.param("client_id"), req.param("client_secret"))
    client = fake.clients.get(client_id or "")
    if client is None:
        raise ClientAuthError(unknown=True)
    if client.public:
        return client
    if client.secret is None or not secret or not hmac.compare_digest(secret, client.secret):
        raise ClientAuthError(unknown=False)
    return client


# -- metadata -----------------------------------------------------------------------------------


def discovery(fake: FakeKeycloak, req: Request) -> Response:
    """``/.well-known/openid-configuration`` shaped like KC 26's (§1.2)."""
    oidc = f"{fake.issuer}/protocol/openid-connect"
    algs = ["PS384", "RS384", "EdDSA", "ES384", "HS256", "HS512", "ES256", "RS256", "HS384"]
    algs += ["ES512", "PS256", "PS512", "RS512"]
    auth_methods = ["private_key_jwt", "client_secret_basic", "client_secret_post"]
    auth_methods += ["tls_client_auth", "client_secret_jwt"]
    doc: dict[str, Any] = {
        "issuer": fake.issuer,
        "authorization_endpoint": f"{oidc}/auth",
        "token_endpoint": f"{oidc}/token",
        "introspection_endpoint": f"{oidc}/token/introspect",
        "userinfo_endpoint": f"{oidc}/userinfo",
        "end_session_endpoint": f"{oidc}/logout",
        "frontchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "jwks_uri": f"{oidc}/certs",
        "check_session_iframe": f"{oidc}/login-status-iframe.html",
        "grant_types_supported": [
            "authorization_code",
            "client_credentials",
            "implicit",
            "password",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:openid:params:grant-type:ciba",
        ],
        "acr_values_supported": ["0", "1"],
        "response_types_supported": [
            "code",
            "none",
            "id_token",
            "token",
            "id_token token",
            "code id_token",
            "code token",
            "code id_token token",
        ],
        "subject_types_supported": ["public", "pairwise"],
        "prompt_values_supported": ["none", "login", "consent"],
        "id_token_signing_alg_values_supported": algs,
        "userinfo_signing_alg_values_supported": [*algs, "none"],
        "response_modes_supported": [
            "query",
            "fragment",
            "form_post",
            "query.jwt",
            "fragment.jwt",
            "form_post.jwt",
            "jwt",
        ],
        "registration_endpoint": f"{fake.issuer}/clients-registrations/openid-connect",
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "claims_supported": [
            "aud",
            "sub",
            "iss",
            "auth_time",
            "name",
            "given_name",
            "family_name",
            "preferred_username",
            "email",
            "acr",
        ],
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": True,
        "scopes_supported": [
            "openid",
            "service_account",
            "email",
            "address",
            "basic",
            "offline_access",
            "profile",
            "organization",
            "roles",
            "phone",
            "microprofile-jwt",
            "acr",
            "web-origins",
        ],
        "request_parameter_supported": True,
        "request_uri_parameter_supported": True,
        "require_request_uri_registration": True,
        "code_challenge_methods_supported": ["plain", "S256"],
        "tls_client_certificate_bound_access_tokens": True,
        "revocation_endpoint": f"{oidc}/revoke",
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "device_authorization_endpoint": f"{oidc}/auth/device",
        "backchannel_token_delivery_modes_supported": ["poll", "ping"],
        "backchannel_authentication_endpoint": f"{oidc}/ext/ciba/auth",
        "require_pushed_authorization_requests": False,
        "pushed_authorization_request_endpoint": f"{oidc}/ext/par/request",
        "mtls_endpoint_aliases": {
            "token_endpoint": f"{oidc}/token",
            "revocation_endpoint": f"{oidc}/revoke",
            "introspection_endpoint": f"{oidc}/token/introspect",
            "device_authorization_endpoint": f"{oidc}/auth/device",
            "registration_endpoint": f"{fake.issuer}/clients-registrations/openid-connect",
            "userinfo_endpoint": f"{oidc}/userinfo",
            "pushed_authorization_request_endpoint": f"{oidc}/ext/par/request",
            "backchannel_authentication_endpoint": f"{oidc}/ext/ciba/auth",
        },
        "authorization_response_iss_parameter_supported": True,
    }
    return Response.json(doc)


def realm_info(fake: FakeKeycloak, req: Request) -> Response:
    """``GET /realms/{realm}``: the legacy realm document with the active ``public_key``."""
    return Response.json(
        {
            "realm": fake.realm,
            "public_key": fake.keys.public_key_b64(),
            "token-service": f"{fake.issuer}/protocol/openid-connect",
            "account-service": f"{fake.issuer}/account",
            "tokens-not-before": 0,
        }
    )


def jwks(fake: FakeKeycloak, req: Request) -> Response:
    """``/protocol/openid-connect/certs``."""
    return Response.json(fake.jwks())


# -- token endpoint -----------------------------------------------------------------------------


async def token(fake: FakeKeycloak, req: Request) -> Response:
    """``POST /protocol/openid-connect/token`` for the password, client_credentials,
    refresh_token and authorization_code grants."""
    grant_type = req.param("grant_type")
    if not grant_type:
        return oauth_error(400, "invalid_request", "Missing form parameter: grant_type")
    grants = {
        "password": _password_grant,
        "client_credentials": _client_credentials_grant,
        "refresh_token": _refresh_grant,
        "authorization_code": _code_grant,
    }
    if grant_type not in grants:
        return oauth_error(400, "unsupported_grant_type", "Unsupported grant_type")
    try:
        client = authenticate_client(fake, req)
    except ClientAuthError as exc:
        error = "invalid_client" if exc.unknown else "unauthorized_client"
        return oauth_error(401, error, _BAD_CLIENT)
    if client.bearer_only:
        return oauth_error(400, "invalid_client", "Bearer-only not allowed")
    return await grants[grant_type](fake, req, client)


async def _password_grant(fake: FakeKeycloak, req: Request, client: Client) -> Response:
    username = req.param("username")
    if not username:
        return oauth_error(401, "invalid_request", "Missing parameter: username")
    user = fake.users.get(username.lower())
    password = req.param("password") or ""
    if user is None or not hmac.compare_digest(password, user.password):
        return oauth_error(401, "invalid_grant", "Invalid user credentials")
    if not user.enabled:
        return oauth_error(400, "invalid_grant", "Account disabled")
    scope = fake.grant_scope(req.param("scope"))
    if scope is None:
        return oauth_error(400, "invalid_scope", f"Invalid scopes: {req.param('scope')}")
    session = fake.start_session(user.username)
    return Response.json(fake.token_response(user, client, session, scope=scope))


async def _client_credentials_grant(fake: FakeKeycloak, req: Request, client: Client) -> Response:
    if client.public:
        msg = "Public client not allowed to retrieve service account"
        return oauth_error(401, "unauthorized_client", msg)
    if not client.service_accounts:
        msg = "Client not enabled to retrieve service account"
        return oauth_error(401, "unauthorized_client", msg)
    scope = fake.grant_scope(req.param("scope"))
    if scope is None:
        return oauth_error(400, "invalid_scope", f"Invalid scopes: {req.param('scope')}")
    return Response.json(fake.service_account_response(client, scope=scope))


async def _refresh_grant(fake: FakeKeycloak, req: Request, client: Client) -> Response:
    verified = fake.keys.verify(req.param("refresh_token") or "")
    claims = verified[1] if verified else {}
    if claims.get("typ") not in ("Refresh", "Offline") or claims.get("azp") != client.client_id:
        return oauth_error(400, "invalid_grant", "Invalid refresh token")
    if claims.get("exp", 0) < fake.now():
        return oauth_error(400, "invalid_grant", "Token is not active")
    session = fake.session(claims.get("sid"))
    if session is None:
        return oauth_error(400, "invalid_grant", "Session not active")
    if not fake.consume_refresh_token(str(claims.get("jti"))):
        return oauth_error(400, "invalid_grant", "Invalid refresh token")
    user = fake.users.get(session.username)
    if user is None:
        return oauth_error(400, "invalid_grant", "Invalid refresh token")
    body = fake.token_response(user, client, session, scope=str(claims.get("scope", "")))
    return Response.json(body)


async def _code_grant(fake: FakeKeycloak, req: Request, client: Client) -> Response:
    code = fake.codes.get(req.param("code") or "")
    invalid = oauth_error(400, "invalid_grant", "Code not valid")
    if code is None or code.used or code.client_id != client.client_id:
        return invalid
    code.used = True  # single use, whatever happens next
    if code.expires_at < fake.now() or req.param("redirect_uri") != code.redirect_uri:
        return invalid
    if code.code_challenge is not None:
        verifier = req.param("code_verifier")
        if not verifier:
            return oauth_error(400, "invalid_grant", "PKCE code verifier not specified")
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if not _VERIFIER.fullmatch(verifier) or computed != code.code_challenge:
            msg = "PKCE verification failed: Invalid code verifier"
            return oauth_error(400, "invalid_grant", msg)
    session = fake.session(code.sid)
    user = fake.users.get(session.username) if session else None
    if session is None or user is None:
        return oauth_error(400, "invalid_grant", "Session not active")
    body = fake.token_response(
        user, client, session, scope=code.scope, nonce=code.nonce, auth_time=session.auth_time
    )
    return Response.json(body)


# -- introspection, userinfo, revocation --------------------------------------------------------


async def introspect(fake: FakeKeycloak, req: Request) -> Response:
    """``POST /protocol/openid-connect/token/introspect`` (§2.9, §3.2)."""
    if any(len(values) > 1 for values in req.form.values()):
        return oauth_error(400, "invalid_request", "duplicated parameter")
    try:
        client = authenticate_client(fake, req)
    except ClientAuthError:
        return oauth_error(401, "invalid_request", "Authentication failed.")
    if client.public:
        return oauth_error(403, "invalid_request", "Client not allowed.")
    raw = req.param("token")
    if not raw:
        return oauth_error(400, "invalid_request", "Token not provided.")
    claims = fake.verify(raw)
    if claims is None:
        return Response.json({"active": False})
    body = fake.full_claims(claims) if claims.get("typ") == "Bearer" else dict(claims)
    body["client_id"] = claims.get("azp")
    username = fake.username_for(claims)
    if username is not None:
        body["username"] = username
    body["token_type"] = claims.get("typ", "Bearer")
    body["active"] = True
    return Response.json(body)


async def userinfo(fake: FakeKeycloak, req: Request) -> Response:
    """``GET|POST /protocol/openid-connect/userinfo`` with a Bearer access token."""
    raw = req.bearer() or (req.param("access_token") if req.method == "POST" else None)
    if not raw:
        return _bearer_error(fake, 401, "invalid_request", "Token not provided")
    claims = fake.verify(raw)
    if claims is None or claims.get("typ") != "Bearer":
        return _bearer_error(fake, 401, "invalid_token", "Token verification failed")
    if "openid" not in str(claims.get("scope", "")).split():
        return _bearer_error(fake, 403, "insufficient_scope", "Missing openid scope")
    return Response.json(fake.userinfo_claims(fake.full_claims(claims)))


def _bearer_error(fake: FakeKeycloak, status: int, error: str, description: str) -> Response:
    challenge = f'Bearer realm="{fake.realm}", error="{error}", error_description="{description}"'
    return oauth_error(status, error, description, www_authenticate=challenge)


async def revoke(fake: FakeKeycloak, req: Request) -> Response:
    """``POST /protocol/openid-connect/revoke`` (RFC 7009). Revoking a refresh token ends its
    session (with back-channel logout); revoking an access token blocks its ``jti``."""
    try:
        client = authenticate_client(fake, req)
    except ClientAuthError as exc:
        error = "invalid_client" if exc.unknown else "unauthorized_client"
        return oauth_error(401, error, _BAD_CLIENT)
    raw = req.param("token")
    if not raw:
        return oauth_error(400, "invalid_request", "Token not provided")
    claims = fake.verify(raw)
    if claims is None:
        return Response.empty(200)
    if claims.get("azp") != client.client_id:
        return oauth_error(400, "unauthorized_client", "Unmatching clients")
    if claims.get("typ") in ("Refresh", "Offline") and "sid" in claims:
        await fake.end_session(claims["sid"])
    else:
        fake.revoked_jtis.add(str(claims.get("jti")))
    return Response.empty(200)


# -- logout -------------------------------------------------------------------------------------


async def logout(fake: FakeKeycloak, req: Request) -> Response:
    """``/protocol/openid-connect/logout``: RP-initiated (browser) or refresh-token logout."""
    if req.method == "POST" and req.param("refresh_token") is not None:
        return await _refresh_token_logout(fake, req)
    source = "form" if req.method == "POST" else "query"
    hint = req.param("id_token_hint", source=source)
    redirect = req.param("post_logout_redirect_uri", source=source)
    state = req.param("state", source=source)
    client = fake.clients.get(req.param("client_id", source=source) or "")
    if hint:
        claims = fake.keys.verify(hint)
        if claims is None or claims[1].get("typ") != "ID":
            return _error_page("Invalid parameter: id_token_hint", 400)
        client = fake.clients.get(str(claims[1].get("azp"))) or client
        if sid := claims[1].get("sid"):
            await fake.end_session(str(sid))
    if redirect:
        if client is None:
            return _error_page("Missing parameters: id_token_hint", 400)
        if not _redirect_allowed(client, redirect):
            return _error_page("Invalid redirect uri", 400)
        query = urlencode({"state": state}) if state else ""
        return Response.redirect(_with_query(redirect, query) if query else redirect)
    return Response.html(_page("Logging out", "<p>You are logged out</p>"))


async def _refresh_token_logout(fake: FakeKeycloak, req: Request) -> Response:
    try:
        client = authenticate_client(fake, req)
    except ClientAuthError as exc:
        error = "invalid_client" if exc.unknown else "unauthorized_client"
        return oauth_error(401, error, _BAD_CLIENT)
    verified = fake.keys.verify(req.param("refresh_token") or "")
    claims = verified[1] if verified else {}
    if claims.get("typ") not in ("Refresh", "Offline") or claims.get("azp") != client.client_id:
        return oauth_error(400, "invalid_grant", "Invalid refresh token")
    if fake.session(claims.get("sid")) is None:
        return oauth_error(400, "invalid_grant", "Session not active")
    await fake.end_session(str(claims["sid"]))
    return Response.empty(204)


# -- browser login (authorization endpoint) -----------------------------------------------------


async def auth(fake: FakeKeycloak, req: Request) -> Response:
    """Authorization endpoint and login form: ``GET`` shows the form, ``POST`` with
    ``username`` checks credentials and redirects back with a code."""
    source = "query" if req.method == "GET" else "form"
    params = {name: req.param(name, source=source) or "" for name in _AUTH_PARAMS}
    if req.method == "POST" and not params["client_id"]:
        params = {name: req.param(name, source="query") or "" for name in _AUTH_PARAMS}
    client = fake.clients.get(params["client_id"])
    if client is None or client.bearer_only:
        return _error_page("Client not found.", 400)
    if not params["redirect_uri"] or not _redirect_allowed(client, params["redirect_uri"]):
        return _error_page("Invalid parameter: redirect_uri", 400)
    scope = fake.grant_scope(params["scope"])
    error = None
    if params["response_type"] != "code":
        error = ("unsupported_response_type", "Client is not allowed to initiate browser login")
    elif params["code_challenge"] and params["code_challenge_method"] != "S256":
        error = ("invalid_request", "Invalid parameter: code_challenge_method")
    elif scope is None:
        error = ("invalid_scope", "Invalid scopes: " + params["scope"])
    if error is not None:
        query = {"error": error[0], "error_description": error[1]}
        if params["state"]:
            query["state"] = params["state"]
        return Response.redirect(_with_query(params["redirect_uri"], urlencode(query)))
    if req.method == "GET" or req.param("username") is None:
        return Response.html(_login_form(fake, params))
    user = fake.users.get((req.param("username") or "").lower())
    if user is None or not hmac.compare_digest(req.param("password") or "", user.password):
        return Response.html(_login_form(fake, params, error="Invalid username or password."))
    session = fake.start_session(user.username)
    session.clients.add(client.client_id)
    code = AuthCode(
        code=f"{secrets.token_urlsafe(24)}.{session.sid}.{client.client_id}",
        client_id=client.client_id,
        redirect_uri=params["redirect_uri"],
        sid=session.sid,
        scope=scope or "",
        expires_at=fake.now() + fake.code_lifespan,
        nonce=params["nonce"] or None,
        code_challenge=params["code_challenge"] or None,
    )
    fake.codes[code.code] = code
    query = {"state": params["state"]} if params["state"] else {}
    query.update({"session_state": session.sid, "iss": fake.issuer, "code": code.code})
    return Response.redirect(_with_query(params["redirect_uri"], urlencode(query)))


def _redirect_allowed(client: Client, uri: str) -> bool:
    for allowed in client.redirect_uris:
        if allowed == "*" or allowed == uri:
            return True
        if allowed.endswith("*") and uri.startswith(allowed[:-1]):
            return True
    return False


def _with_query(uri: str, query: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )


def _error_page(message: str, status: int) -> Response:
    text = f"<p id='kc-error-message' class='instruction'>{html.escape(message)}</p>"
    return Response.html(_page("Error", text), status)


def _login_form(fake: FakeKeycloak, params: dict[str, str], error: str | None = None) -> str:
    hidden = "".join(
        f"<input type='hidden' name='{name}' value='{html.escape(value, quote=True)}'>"
        for name, value in params.items()
        if value
    )
    alert = f"<p id='input-error' role='alert'>{html.escape(error)}</p>" if error else ""
    action = html.escape(f"{fake.issuer}/login-actions/authenticate", quote=True)
    form = (
        f"<h1>Sign in to {html.escape(fake.realm)}</h1>{alert}"
        f"<form id='kc-form-login' method='post' action='{action}'>{hidden}"
        "<p><label for='username'>Username or email</label> "
        "<input id='username' name='username' type='text' autocomplete='username' autofocus></p>"
        "<p><label for='password'>Password</label> "
        "<input id='password' name='password' type='password' "
        "autocomplete='current-password'></p>"
        "<p><input id='kc-login' name='login' type='submit' value='Sign In'></p></form>"
    )
    return _page(f"Sign in to {fake.realm}", form)
