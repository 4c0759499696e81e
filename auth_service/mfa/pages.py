"""HTML pages: ``/auth/mfa`` (enter a code) and ``/auth/mfa/setup`` (enroll), no JavaScript.

Plain forms posting back to the same path. The caller is identified like the
JSON API (session cookie or bearer token); an unauthenticated browser is sent
to ``/auth/login?rd=<this page>``.

CSRF: the service's one scheme (`auth_service.sessions.csrf`): each form
carries a ``csrf_token`` bound to the caller's session (or, for a bearer
caller, its sid), checked before anything else of a POST.

``rd``: checked by the login's rule (`auth_service.oidc.redirects`) on every
GET and POST, before a code is looked at; a refused value is a 400.

Every page answers with a CSP without scripts (``default-src 'none'``,
``frame-ancestors 'none'``, styles only from the service's stylesheet),
``Cache-Control: no-store`` (the setup page holds the secret, the
confirmation page the recovery codes) and
``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.params import FromQuery
from litestar.response import Redirect

from auth_service.config import Settings
from auth_service.errors import AuthError, NotAuthenticated, accepts_html, problem_response
from auth_service.mfa.controllers import caller_from, mfa_service
from auth_service.mfa.service import Caller
from auth_service.oidc.redirects import redirect_target
from auth_service.resources import services_of
from auth_service.sessions.csrf import CsrfTokens
from auth_service.tokens.guards import CallerAuth, authenticate_caller
from auth_service.web import STYLE_SRC, document

__all__ = ("MfaPages",)

PAGE_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; img-src data:; {STYLE_SRC}; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True, slots=True)
class _Visitor:
    """The caller of a page and what its CSRF tokens are bound to."""

    caller: Caller
    csrf_binding: str


class MfaPages(Controller):
    """``/auth/mfa`` and ``/auth/mfa/setup``."""

    path = "/auth/mfa"

    # -- the second-factor prompt --------------------------------------------------------

    @get("/", cache_control=None, media_type=MediaType.HTML)
    async def prompt(
        self, request: Request[Any, Any, Any], rd: FromQuery[str | None] = None
    ) -> Response[Any]:
        """The form to enter a TOTP or recovery code for the current session."""
        self._target(request, rd)
        visitor = await self._visitor(request)
        if isinstance(visitor, Response):
            return visitor
        status = await mfa_service(request).status(visitor.caller.subject)
        if not status.enrolled:
            link = "/auth/mfa/setup" + (f"?rd={quote(rd, safe='')}" if rd else "")
            body = (
                "<p>You have no authenticator app set up.</p>"
                f'<p><a href="{escape(link)}">Set one up</a></p>'
            )
            return self._page("Two-factor authentication", body)
        return self._prompt(request, visitor, rd)

    @post("/", status_code=200, media_type=MediaType.HTML)
    async def submit(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Check the submitted code; 303 to ``rd`` on success, the form again otherwise."""
        visitor = await self._visitor(request)
        if isinstance(visitor, Response):
            return visitor
        form = await request.form()
        rd = _field(form, "rd")
        target = self._target(request, rd)  # before the code: a refused rd spends nothing
        if not self._csrf_ok(request, visitor, _field(form, "csrf_token")):
            return self._prompt(
                request, visitor, rd, error="The form expired; try again.", status=403
            )
        code, recovery = _field(form, "code").strip(), _field(form, "recovery_code").strip()
        try:
            await mfa_service(request).verify(
                visitor.caller, code=code or None, recovery_code=None if code else recovery or None
            )
        except AuthError as exc:
            return self._prompt(
                request, visitor, rd, error=_message(exc), status=exc.status, headers=exc.headers
            )
        return Redirect(target, status_code=303)

    def _prompt(
        self,
        request: Request[Any, Any, Any],
        visitor: _Visitor,
        rd: str | None,
        *,
        error: str | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response[Any]:
        body = (
            _error(error)
            + '<form method="post" action="/auth/mfa">'
            + self._csrf_field(request, visitor)
            + f'<input type="hidden" name="rd" value="{escape(rd or "")}">'
            + '<p><label>Code from your authenticator app <input name="code" '
            + 'inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" autofocus>'
            + "</label></p>"
            + '<p><label>or a recovery code <input name="recovery_code" autocomplete="off">'
            + "</label></p>"
            + '<p><button type="submit">Verify</button></p></form>'
        )
        return self._page(
            "Two-factor authentication",
            body,
            status=status,
            headers=headers,
            request=request,
            error=error,
        )

    # -- enrollment ----------------------------------------------------------------------

    @get("/setup", cache_control=None, media_type=MediaType.HTML)
    async def setup(
        self, request: Request[Any, Any, Any], rd: FromQuery[str | None] = None
    ) -> Response[Any]:
        """QR code and manual key of a pending enrollment (created when none is pending)."""
        self._target(request, rd)
        visitor = await self._visitor(request)
        if isinstance(visitor, Response):
            return visitor
        return await self._setup(request, visitor, rd)

    async def _setup(
        self,
        request: Request[Any, Any, Any],
        visitor: _Visitor,
        rd: str | None,
        *,
        error: str | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response[Any]:
        service = mfa_service(request)
        if (await service.status(visitor.caller.subject)).enrolled:
            body = "<p>Your authenticator app is already set up.</p>"
            return self._page(
                "Set up two-factor authentication",
                body,
                status=409,
                request=request,
                error="TOTP is already set up",
            )
        enrollment = await service.pending_or_new(visitor.caller)
        key = " ".join(enrollment.secret[i : i + 4] for i in range(0, len(enrollment.secret), 4))
        body = (
            _error(error)
            + "<p>Scan this code with your authenticator app:</p>"
            + f'<figure id="qr">{enrollment.qr_svg}</figure>'
            + "<p>or enter this key by hand:</p>"
            + f'<p><code id="manual-key">{escape(key)}</code></p>'
            + '<form method="post" action="/auth/mfa/setup">'
            + self._csrf_field(request, visitor)
            + f'<input type="hidden" name="rd" value="{escape(rd or "")}">'
            + '<p><label>Code shown by the app <input name="code" inputmode="numeric" '
            + 'autocomplete="one-time-code" pattern="[0-9 ]*" required></label></p>'
            + '<p><button type="submit">Confirm</button></p></form>'
        )
        return self._page(
            "Set up two-factor authentication",
            body,
            status=status,
            headers=headers,
            request=request,
            error=error,
        )

    @post("/setup", status_code=200, media_type=MediaType.HTML)
    async def confirm(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Confirm the enrollment; shows the recovery codes once."""
        visitor = await self._visitor(request)
        if isinstance(visitor, Response):
            return visitor
        form = await request.form()
        rd = _field(form, "rd")
        target = self._target(request, rd)
        if not self._csrf_ok(request, visitor, _field(form, "csrf_token")):
            return await self._setup(
                request, visitor, rd, error="The form expired; try again.", status=403
            )
        try:
            codes = await mfa_service(request).confirm(visitor.caller, _field(form, "code"))
        except AuthError as exc:
            return await self._setup(
                request, visitor, rd, error=_message(exc), status=exc.status, headers=exc.headers
            )
        items = "".join(f"<li><code>{escape(c)}</code></li>" for c in codes)
        body = (
            "<p>Two-factor authentication is on. Keep these recovery codes somewhere safe; "
            "each works once, and they are not shown again.</p>"
            + f'<ol id="recovery-codes">{items}</ol>'
            + '<p class="hint">Print this page (Ctrl+P) or copy the codes into your '
            + "password manager.</p>"
            + f'<p><a href="/auth/mfa?rd={escape(quote(target, safe=""))}">Continue</a></p>'
        )
        return self._page("Recovery codes", body)

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _settings(request: Request[Any, Any, Any]) -> Settings:
        return services_of(request).resources.settings

    def _target(self, request: Request[Any, Any, Any], rd: str | None) -> str:
        """Where to go afterwards: the login's rule, 400 ``invalid_redirect`` when refused."""
        settings = self._settings(request)
        return redirect_target(rd, settings.allowed_redirect_hosts, settings.public_url)

    async def _visitor(self, request: Request[Any, Any, Any]) -> _Visitor | Response[Any]:
        try:
            auth: CallerAuth = await authenticate_caller(request)
        except NotAuthenticated:
            settings = self._settings(request)
            here = f"{settings.public_url}{request.url.path}"
            if request.url.query:
                here += f"?{request.url.query}"
            if request.method == "GET":
                login = f"{settings.public_url}/auth/login?rd={quote(here, safe='')}"
                return Redirect(login, status_code=302)
            raise
        return _Visitor(caller_from(request, auth.identity), auth.csrf_binding)

    @staticmethod
    def _csrf(request: Request[Any, Any, Any]) -> CsrfTokens:
        csrf: CsrfTokens = services_of(request).csrf
        return csrf

    def _csrf_field(self, request: Request[Any, Any, Any], visitor: _Visitor) -> str:
        token = self._csrf(request).issue(visitor.csrf_binding)
        return f'<input type="hidden" name="csrf_token" value="{escape(token)}">'

    def _csrf_ok(self, request: Request[Any, Any, Any], visitor: _Visitor, token: str) -> bool:
        return self._csrf(request).verify(visitor.csrf_binding, token)

    @staticmethod
    def _page(
        title: str,
        body: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        request: Request[Any, Any, Any] | None = None,
        error: str | None = None,
    ) -> Response[Any]:
        """The page; an error for a client that does not accept HTML is problem+json instead
        (CONTRACT §4: every error body is a problem document; browsers get the form back)."""
        extra = {k: v for k, v in (headers or {}).items() if k.lower() == "retry-after"}
        if status >= 400 and request is not None and not accepts_html(request):
            return problem_response(request, status, error or title, headers=extra or None)
        html = document(title, f"<h1>{escape(title)}</h1>\n{body}")
        return Response(
            html, status_code=status, media_type=MediaType.HTML, headers={**PAGE_HEADERS, **extra}
        )


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _error(message: str | None) -> str:
    return f'<p role="alert" id="error">{escape(message)}</p>' if message else ""


def _message(exc: AuthError) -> str:
    message = {
        "invalid_code": "That code is not valid.",
        "code_reused": "That code was already used; wait for the next one.",
        "mfa_locked": "Too many wrong codes. Try again later.",
    }.get(exc.reason, exc.detail)
    left = exc.attempts_left
    if left is not None:
        message += (
            " No attempts left: try again later."
            if left == 0
            else f" {left} attempt{'s' if left != 1 else ''} left before a pause."
        )
    return message
