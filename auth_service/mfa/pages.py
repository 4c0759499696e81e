"""HTML pages: ``/auth/mfa`` (enter a code) and ``/auth/mfa/setup`` (enroll), no JavaScript.

Plain forms posting back to the same path. The caller is identified like the
JSON API (session cookie or bearer token); an unauthenticated browser is sent
to ``/auth/login?rd=<this page>``.

CSRF: double-submit, bound to the caller. A GET sets the cookie
``auth_mfa_csrf`` (``__Host-`` prefixed on https; ``HttpOnly``,
``SameSite=Strict``) holding a random nonce, and the form carries
``nonce.HMAC(k, binding | nonce)`` where ``binding`` is the caller's sid (or
subject) and ``k`` is derived from the first ``AUTH_SECRET_KEYS`` key. A POST
must carry both, agreeing, and the MAC must match the caller: a cross-site
page can neither read the cookie nor compute the MAC for someone else's sid.

Every page answers with a CSP without scripts (``default-src 'none'``,
``frame-ancestors 'none'``), ``Cache-Control: no-store`` (the setup page holds
the secret, the confirmation page the recovery codes) and
``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from html import escape
from typing import Any
from urllib.parse import quote, urlsplit

from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery
from litestar.response import Redirect

from auth_service.config import Settings
from auth_service.errors import AuthError, NotAuthenticated
from auth_service.mfa.controllers import authenticate_caller, caller_from, mfa_service
from auth_service.mfa.service import Caller
from auth_service.resources import services_of

__all__ = ("MfaPages", "csrf_token", "safe_redirect")

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src data:; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
_CSRF_INFO = b"auth-service/mfa-csrf/v1"


def _csrf_key(settings: Settings) -> bytes:
    return hmac.new(settings.secret_keys[0].key, _CSRF_INFO, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _binding(caller: Caller) -> bytes:
    return (f"sid:{caller.sid}" if caller.sid else f"sub:{caller.subject}").encode()


def csrf_token(settings: Settings, caller: Caller, nonce: str) -> str:
    """The form token for ``nonce`` (the cookie value) bound to ``caller``."""
    mac = hmac.new(_csrf_key(settings), _binding(caller) + b"|" + nonce.encode(), hashlib.sha256)
    return f"{nonce}.{_b64(mac.digest())}"


def _csrf_ok(settings: Settings, caller: Caller, cookie: str | None, token: str) -> bool:
    if not cookie or "." not in token:
        return False
    nonce = token.partition(".")[0]
    expected = csrf_token(settings, caller, cookie)
    return hmac.compare_digest(nonce.encode(), cookie.encode()) and hmac.compare_digest(
        token.encode(), expected.encode()
    )


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern.startswith("*.") and host.endswith(pattern[1:]) and host != pattern[2:]:
            return True
        if host == pattern:
            return True
    return False


def safe_redirect(settings: Settings, rd: str | None) -> str:
    """``rd`` when relative or on an allowed host (or this service), else the public URL."""
    fallback = f"{settings.public_url}/"
    if not rd or "\\" in rd or any(ord(c) < 0x20 for c in rd):
        return fallback
    if rd.startswith("/") and not rd.startswith("//"):
        return rd
    parts = urlsplit(rd)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return fallback
    own = (urlsplit(settings.public_url).hostname or "").lower()
    if host == own or _host_allowed(host, settings.allowed_redirect_hosts):
        return rd
    return fallback


def _cookie_name(settings: Settings) -> str:
    return "__Host-auth_mfa_csrf" if settings.public_url.startswith("https:") else "auth_mfa_csrf"


_STYLE_FREE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{title}</h1>
{body}
</main></body></html>
"""


class MfaPages(Controller):
    """``/auth/mfa`` and ``/auth/mfa/setup``."""

    path = "/auth/mfa"

    # -- the second-factor prompt --------------------------------------------------------

    @get("/", cache_control=None)
    async def prompt(
        self, request: Request[Any, Any, Any], rd: FromQuery[str | None] = None
    ) -> Response[Any]:
        """The form to enter a TOTP or recovery code for the current session."""
        caller = await self._caller(request)
        if isinstance(caller, Response):
            return caller
        status = await mfa_service(request).status(caller.subject)
        if not status.enrolled:
            link = "/auth/mfa/setup" + (f"?rd={quote(rd, safe='')}" if rd else "")
            body = (
                "<p>You have no authenticator app set up.</p>"
                f'<p><a href="{escape(link)}">Set one up</a></p>'
            )
            return self._page(request, "Two-factor authentication", body)
        return self._prompt(request, caller, rd)

    @post("/", status_code=200)
    async def submit(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Check the submitted code; 303 to ``rd`` on success, the form again otherwise."""
        caller = await self._caller(request)
        if isinstance(caller, Response):
            return caller
        form = await request.form()
        rd = _field(form, "rd")
        if not self._csrf(request, caller, _field(form, "csrf")):
            return self._prompt(
                request, caller, rd, error="The form expired; try again.", status=403
            )
        code, recovery = _field(form, "code").strip(), _field(form, "recovery_code").strip()
        try:
            await mfa_service(request).verify(
                caller, code=code or None, recovery_code=None if code else recovery or None
            )
        except AuthError as exc:
            return self._prompt(
                request, caller, rd, error=_message(exc), status=exc.status, headers=exc.headers
            )
        return Redirect(safe_redirect(self._settings(request), rd), status_code=303)

    def _prompt(
        self,
        request: Request[Any, Any, Any],
        caller: Caller,
        rd: str | None,
        *,
        error: str | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response[Any]:
        token, cookie = self._csrf_pair(request, caller)
        body = (
            _error(error)
            + '<form method="post" action="/auth/mfa">'
            + f'<input type="hidden" name="csrf" value="{escape(token)}">'
            + f'<input type="hidden" name="rd" value="{escape(rd or "")}">'
            + '<p><label>Code from your authenticator app <input name="code" '
            + 'inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" autofocus>'
            + "</label></p>"
            + '<p><label>or a recovery code <input name="recovery_code" autocomplete="off">'
            + "</label></p>"
            + '<p><button type="submit">Verify</button></p></form>'
        )
        return self._page(
            request,
            "Two-factor authentication",
            body,
            status=status,
            headers=headers,
            cookie=cookie,
        )

    # -- enrollment ----------------------------------------------------------------------

    @get("/setup", cache_control=None)
    async def setup(
        self, request: Request[Any, Any, Any], rd: FromQuery[str | None] = None
    ) -> Response[Any]:
        """QR code and manual key of a pending enrollment (created when none is pending)."""
        caller = await self._caller(request)
        if isinstance(caller, Response):
            return caller
        return await self._setup(request, caller, rd)

    async def _setup(
        self,
        request: Request[Any, Any, Any],
        caller: Caller,
        rd: str | None,
        *,
        error: str | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response[Any]:
        service = mfa_service(request)
        if (await service.status(caller.subject)).enrolled:
            body = "<p>Your authenticator app is already set up.</p>"
            return self._page(request, "Set up two-factor authentication", body, status=409)
        enrollment = await service.pending_or_new(caller)
        token, cookie = self._csrf_pair(request, caller)
        key = " ".join(enrollment.secret[i : i + 4] for i in range(0, len(enrollment.secret), 4))
        body = (
            _error(error)
            + "<p>Scan this code with your authenticator app:</p>"
            + f'<figure id="qr">{enrollment.qr_svg}</figure>'
            + f'<p>or enter this key by hand: <code id="manual-key">{escape(key)}</code></p>'
            + '<form method="post" action="/auth/mfa/setup">'
            + f'<input type="hidden" name="csrf" value="{escape(token)}">'
            + f'<input type="hidden" name="rd" value="{escape(rd or "")}">'
            + '<p><label>Code shown by the app <input name="code" inputmode="numeric" '
            + 'autocomplete="one-time-code" pattern="[0-9 ]*" required></label></p>'
            + '<p><button type="submit">Confirm</button></p></form>'
        )
        return self._page(
            request,
            "Set up two-factor authentication",
            body,
            status=status,
            headers=headers,
            cookie=cookie,
        )

    @post("/setup", status_code=200)
    async def confirm(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Confirm the enrollment; shows the recovery codes once."""
        caller = await self._caller(request)
        if isinstance(caller, Response):
            return caller
        form = await request.form()
        rd = _field(form, "rd")
        if not self._csrf(request, caller, _field(form, "csrf")):
            return await self._setup(
                request, caller, rd, error="The form expired; try again.", status=403
            )
        try:
            codes = await mfa_service(request).confirm(caller, _field(form, "code"))
        except AuthError as exc:
            return await self._setup(
                request, caller, rd, error=_message(exc), status=exc.status, headers=exc.headers
            )
        items = "".join(f"<li><code>{escape(c)}</code></li>" for c in codes)
        target = safe_redirect(self._settings(request), rd)
        body = (
            "<p>Two-factor authentication is on. Keep these recovery codes somewhere safe; "
            "each works once, and they are not shown again.</p>"
            + f'<ol id="recovery-codes">{items}</ol>'
            + f'<p><a href="/auth/mfa?rd={escape(quote(target, safe=""))}">Continue</a></p>'
        )
        return self._page(request, "Recovery codes", body)

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _settings(request: Request[Any, Any, Any]) -> Settings:
        return services_of(request).resources.settings

    async def _caller(self, request: Request[Any, Any, Any]) -> Caller | Response[Any]:
        try:
            auth, _ = await authenticate_caller(request)
        except NotAuthenticated:
            settings = self._settings(request)
            here = f"{settings.public_url}{request.url.path}"
            if request.url.query:
                here += f"?{request.url.query}"
            if request.method == "GET":
                login = f"{settings.public_url}/auth/login?rd={quote(here, safe='')}"
                return Redirect(login, status_code=302)
            raise
        return caller_from(request, auth)

    def _csrf_pair(self, request: Request[Any, Any, Any], caller: Caller) -> tuple[str, str]:
        settings = self._settings(request)
        nonce = request.cookies.get(_cookie_name(settings)) or _b64(secrets.token_bytes(32))
        return csrf_token(settings, caller, nonce), nonce

    def _csrf(self, request: Request[Any, Any, Any], caller: Caller, token: str) -> bool:
        settings = self._settings(request)
        return _csrf_ok(settings, caller, request.cookies.get(_cookie_name(settings)), token)

    def _page(
        self,
        request: Request[Any, Any, Any],
        title: str,
        body: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        cookie: str | None = None,
    ) -> Response[Any]:
        html = _STYLE_FREE_PAGE.format(title=escape(title), body=body)
        extra = {k: v for k, v in (headers or {}).items() if k.lower() == "retry-after"}
        response: Response[Any] = Response(
            html, status_code=status, media_type="text/html", headers={**PAGE_HEADERS, **extra}
        )
        if cookie is not None:
            settings = self._settings(request)
            response.set_cookie(
                _cookie_name(settings),
                cookie,
                path="/",
                httponly=True,
                samesite="strict",
                secure=settings.public_url.startswith("https:"),
            )
        return response


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _error(message: str | None) -> str:
    return f'<p role="alert" id="error">{escape(message)}</p>' if message else ""


def _message(exc: AuthError) -> str:
    return {
        "invalid_code": "That code is not valid.",
        "code_reused": "That code was already used; wait for the next one.",
        "mfa_locked": "Too many wrong codes. Try again later.",
    }.get(exc.reason, exc.detail)
