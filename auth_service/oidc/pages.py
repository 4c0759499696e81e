"""The few HTML pages of the browser flows, and the security headers every HTML answer carries.

Pages are small, server-rendered, and work without JavaScript: there is no
script at all, inline or not, and the Content-Security-Policy forbids it
(``default-src 'none'``), forbids framing (``frame-ancestors 'none'``) and
limits form targets to this service. Styles come only from the service's one
stylesheet (`auth_service.web`, ``style-src 'self'``). Every value is HTML-escaped.
"""

from __future__ import annotations

import html

from litestar import MediaType, Response

from auth_service.web import PAGE_SECURITY_HEADERS, document

__all__ = (
    "CONTENT_SECURITY_POLICY",
    "HTML_SECURITY_HEADERS",
    "REDIRECT_HEADERS",
    "error_page",
    "logout_page",
)

HTML_SECURITY_HEADERS = PAGE_SECURITY_HEADERS
"""Headers of every HTML page (``no-store``: pages may carry CSRF tokens or identities)."""
CONTENT_SECURITY_POLICY = HTML_SECURITY_HEADERS["Content-Security-Policy"]
REDIRECT_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
"""Headers of login/callback/logout redirects (their URLs carry state and codes)."""

_MESSAGES = {
    "state_mismatch": "This sign-in link has expired or was already used.",
    "idp_error": "The identity provider did not complete the sign-in.",
    "code_exchange_failed": "The identity provider did not accept the sign-in.",
    "missing_code": "The sign-in response was incomplete.",
    "invalid_id_token": "The identity provider's answer could not be verified.",
    "invalid_access_token": "The identity provider's answer could not be verified.",
    "invalid_token_response": "The identity provider's answer could not be verified.",
    "invalid_redirect": "The page you asked to return to is not allowed.",
    "idp_unavailable": "The identity provider cannot be reached right now.",
    "session_store_unavailable": "Sign-in is temporarily unavailable.",
    "login_rate_limited": "Too many sign-in attempts from your address; try again in a minute.",
}


_document = document


def error_page(
    status: int, reason: str, request_id: str, *, retry_url: str | None = None
) -> Response[str]:
    """The login failure page: what happened in words, the request id, and a way back."""
    message = _MESSAGES.get(reason, "Sign-in could not be completed.")
    retry = (
        f'<p><a href="{html.escape(retry_url, quote=True)}">Sign in again</a></p>'
        if retry_url
        else ""
    )
    body = (
        "<h1>Sign-in failed</h1>"
        f'<p role="alert">{html.escape(message)}</p>'
        f"{retry}"
        "<p>If this keeps happening, contact support and quote this request id: "
        f'<code id="request-id">{html.escape(request_id)}</code></p>'
    )
    return Response(
        _document("Sign-in failed", body),
        status_code=status,
        media_type=MediaType.HTML,
        headers={**HTML_SECURITY_HEADERS, "X-Request-ID": request_id},
    )


def logout_page(csrf_token: str, rd: str | None) -> Response[str]:
    """A sign-out confirmation form (POST with a CSRF token), for links that must not use GET."""
    hidden_rd = (
        f'<input type="hidden" name="rd" value="{html.escape(rd, quote=True)}">' if rd else ""
    )
    body = (
        "<h1>Sign out</h1>"
        "<p>Sign out of this site and of your identity provider?</p>"
        '<form method="post" action="/auth/logout">'
        f'<input type="hidden" name="csrf_token" value="{html.escape(csrf_token, quote=True)}">'
        f'{hidden_rd}<button type="submit">Sign out</button></form>'
    )
    return Response(
        _document("Sign out", body),
        media_type=MediaType.HTML,
        headers=HTML_SECURITY_HEADERS,
    )
