"""The look of the service's own HTML pages: one small stylesheet and the page shell.

Every page the service renders (MFA entry and setup, recovery codes, sign-out,
sign-in errors, the gateway's "access denied") is built by `document`, which
links ``/auth/static/style.css``: no JavaScript, no CDN, no inline style (the
pages' CSP allows ``style-src 'self'`` and nothing inline).

Accessibility: every input has a ``<label>``, focus is always visible (a thick
outline on ``:focus-visible``), colours keep a contrast of at least 4.5:1
(text #1b1f24 on #ffffff, button #ffffff on #1d4ed8, error #8a1020 on
#fdecee), and everything works with the keyboard (plain links, buttons and
forms). Recovery codes print cleanly (``@media print`` hides everything else).
"""

from __future__ import annotations

import hashlib
import html
from typing import Any

from litestar import MediaType, Request, Response, get

from auth_service.errors import accepts_html, problem_response
from auth_service.request_id import request_id

__all__ = (
    "DENIED_PATH",
    "PAGE_SECURITY_HEADERS",
    "STYLESHEET",
    "STYLESHEET_PATH",
    "STYLE_SRC",
    "denied",
    "denied_document",
    "document",
    "stylesheet",
)

STYLESHEET_PATH = "/auth/static/style.css"
STYLE_SRC = "style-src 'self'"
"""The CSP directive every page needs for the stylesheet (and nothing inline)."""

DENIED_PATH = "/auth/denied"
SIGNED_OUT_PATH = "/auth/signed-out"
"""Where the IdP sends a browser after a logout that named no ``rd``."""
PAGE_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; {STYLE_SRC}; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Headers of every HTML page (``no-store``: pages may carry CSRF tokens or identities)."""

STYLESHEET = """\
:root {
  color-scheme: light;
  --text: #1b1f24;
  --muted: #4a5360;
  --bg: #f3f5f8;
  --card: #ffffff;
  --line: #c9d0d9;
  --accent: #1d4ed8;
  --accent-dark: #1e3a8a;
  --error-text: #8a1020;
  --error-bg: #fdecee;
}
*, *::before, *::after { box-sizing: border-box; }
html { font-size: 100%; }
body {
  margin: 0;
  min-height: 100vh;
  background: var(--bg);
  color: var(--text);
  font: 1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  display: flex;
  align-items: flex-start;
  justify-content: center;
  padding: 3rem 1rem;
}
main {
  width: 100%;
  max-width: 30rem;
  background: var(--card);
  border: 1px solid var(--line);
  border-radius: 0.75rem;
  padding: 2rem;
  box-shadow: 0 1px 3px rgba(0, 0, 0, 0.08);
}
h1 { font-size: 1.5rem; line-height: 1.25; margin: 0 0 1rem; }
p { margin: 0 0 1rem; }
a { color: var(--accent); text-decoration: underline; text-underline-offset: 0.15em; }
a:hover { color: var(--accent-dark); }
label { display: block; font-weight: 600; margin-bottom: 0.25rem; }
input:not([type="hidden"]) {
  display: block;
  width: 100%;
  margin-top: 0.35rem;
  padding: 0.6rem 0.75rem;
  font: inherit;
  color: var(--text);
  background: #ffffff;
  border: 1px solid #6b7480;
  border-radius: 0.375rem;
}
button, .button {
  display: inline-block;
  font: inherit;
  font-weight: 600;
  padding: 0.6rem 1.25rem;
  color: #ffffff;
  background: var(--accent);
  border: 2px solid var(--accent);
  border-radius: 0.375rem;
  text-decoration: none;
  cursor: pointer;
}
button:hover, .button:hover {
  background: var(--accent-dark);
  border-color: var(--accent-dark);
  color: #ffffff;
}
a:focus-visible, button:focus-visible, input:focus-visible, .button:focus-visible {
  outline: 3px solid var(--accent);
  outline-offset: 2px;
}
[role="alert"] {
  color: var(--error-text);
  background: var(--error-bg);
  border: 1px solid var(--error-text);
  border-radius: 0.375rem;
  padding: 0.75rem 1rem;
  font-weight: 600;
}
code, pre { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, monospace; }
#manual-key, #request-id {
  display: inline-block;
  padding: 0.1rem 0.4rem;
  background: var(--bg);
  border: 1px solid var(--line);
  border-radius: 0.25rem;
  letter-spacing: 0.05em;
  overflow-wrap: anywhere;
  user-select: all;
}
#qr { margin: 0 0 1rem; text-align: center; }
#qr svg { width: 12rem; height: 12rem; background: #ffffff; padding: 0.5rem; }
#recovery-codes {
  columns: 2;
  margin: 0 0 1rem;
  padding: 1rem 1rem 1rem 2.5rem;
  background: var(--bg);
  border: 1px dashed var(--muted);
  border-radius: 0.375rem;
}
#recovery-codes code { font-size: 1.05rem; user-select: all; }
.hint, .muted { color: var(--muted); font-size: 0.925rem; }
@media print {
  body { background: #ffffff; padding: 0; display: block; }
  main { border: 0; box-shadow: none; max-width: none; padding: 0; }
  a, button, form, .hint { display: none; }
  #recovery-codes { border: 1px solid #000000; background: #ffffff; }
}
"""

_ETAG = '"' + hashlib.sha256(STYLESHEET.encode()).hexdigest()[:32] + '"'


def document(title: str, body: str) -> str:
    """A whole page: ``title`` (escaped here) and ``body`` (already HTML) inside ``<main>``."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        f'<link rel="stylesheet" href="{STYLESHEET_PATH}"></head>'
        f"<body><main>{body}</main></body></html>\n"
    )


@get(
    STYLESHEET_PATH,
    media_type="text/css; charset=utf-8",
    cache_control=None,
    include_in_schema=False,
)
async def stylesheet(request: Request[Any, Any, Any]) -> Response[str | bytes]:
    """The stylesheet; cacheable for a day, revalidated by its ETag."""
    headers = {
        "Cache-Control": "public, max-age=86400",
        "ETag": _ETAG,
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == _ETAG:
        return Response(b"", status_code=304, headers=headers, media_type=MediaType.TEXT)
    return Response(STYLESHEET, headers=headers, media_type="text/css; charset=utf-8")


def denied_document(rid: str) -> str:
    """The "access denied" page quoting request id ``rid`` (escaped here)."""
    body = (
        "<h1>Access denied</h1>"
        '<p role="alert">You are signed in, but you are not allowed to open this page.</p>'
        "<p>If you think you should have access, ask your administrator and quote this "
        f'request id: <code id="request-id">{html.escape(rid)}</code></p>'
        '<p><a href="/">Go to the start page</a></p>'
    )
    return document("Access denied", body)


@get(DENIED_PATH, media_type=MediaType.HTML, cache_control=None, include_in_schema=False)
async def denied(request: Request[Any, Any, Any]) -> Response[Any]:
    """The "access denied" page a gateway shows a browser refused by a rule (always 403).

    The gateway (nginx ``@auth_403``) sends browsers here instead of the
    problem+json body; the request id is the forwarded ``X-Request-ID``, so the
    page quotes the id of the refused request. Nothing of the query is echoed.
    A client that does not accept HTML gets the usual problem+json 403.
    """
    if not accepts_html(request):
        return problem_response(request, 403, "access denied by policy", reason="access_denied")
    rid = request_id(request.scope)
    return Response(
        denied_document(rid),
        status_code=403,
        media_type=MediaType.HTML,
        headers={**PAGE_SECURITY_HEADERS, "X-Request-ID": rid},
    )


def signed_out_document() -> str:
    """The "you are signed out" page."""
    body = (
        "<h1>You are signed out</h1>"
        '<p role="status">Your session here and at the identity provider has ended.</p>'
        '<p><a href="/auth/login?rd=%2F">Sign in again</a></p>'
    )
    return document("Signed out", body)


@get(SIGNED_OUT_PATH, media_type=MediaType.HTML, cache_control=None, include_in_schema=False)
async def signed_out() -> Response[Any]:
    """The page a browser lands on after logging out without a return URL."""
    return Response(signed_out_document(), media_type=MediaType.HTML, headers=PAGE_SECURITY_HEADERS)
