"""Open-redirect protection for ``rd`` and ``post_logout_redirect_uri`` (CONTRACT §5).

`safe_redirect` is pure and strict: it accepts a path on this service's own
origin (``/orders/1?x=y``) or an absolute ``http(s)`` URL whose host is
``AUTH_PUBLIC_URL``'s host or one of ``AUTH_ALLOWED_REDIRECT_HOSTS``
(``*.example.com`` matches any subdomain, not the apex). Everything else is
refused, including the tricks browsers normalise into another origin:

* scheme-relative and backslash forms: ``//evil``, ``\\\\evil``, ``/\\evil``;
* scheme without authority: ``https:evil``, ``http:/evil``;
* user info: ``http://allowed@evil`` (and any ``@`` in the authority);
* other schemes: ``javascript:``, ``data:``, ``vbscript:``, ``file:``;
* control characters, whitespace, non-ASCII and over-long values.

This is the only redirect check of the service: login, callback, logout and
the MFA pages all call `redirect_target` (400 ``invalid_redirect`` for a
refused value, never a 500 from an unencodable ``Location``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from auth_service.errors import BadRequest

__all__ = ("MAX_REDIRECT_LENGTH", "host_allowed", "redirect_target", "safe_redirect")

MAX_REDIRECT_LENGTH = 2048
"""Longer return URLs are refused."""

# Printable ASCII except space, backslash, quotes and angle brackets.
_ALLOWED_CHARS = re.compile(r"[!#-&(-;=?-\[\]-~]*")
_HOSTNAME = re.compile(
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
# Encoded "/" or "\" right after the leading slash: some servers decode them into "//evil".
_ENCODED_SLASH = re.compile(r"^/(?:%2f|%5c)", re.IGNORECASE)


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """Whether ``host`` (lower case, no port) is listed; ``*.x`` matches subdomains of ``x``."""
    for pattern in allowed_hosts:
        pattern = pattern.strip().lower()
        if not pattern:
            continue
        if pattern.startswith("*."):
            suffix = pattern[1:]
            if host.endswith(suffix) and len(host) > len(suffix):
                return True
        elif host == pattern:
            return True
    return False


def safe_redirect(value: str | None, allowed_hosts: Iterable[str], public_url: str) -> str | None:
    """``value`` if it is a safe place to send a browser back to, otherwise ``None``.

    Args:
        value: the untrusted return URL (``rd``).
        allowed_hosts: ``AUTH_ALLOWED_REDIRECT_HOSTS``.
        public_url: ``AUTH_PUBLIC_URL``; its host is always allowed.
    """
    if not value or len(value) > MAX_REDIRECT_LENGTH:
        return None
    if not _ALLOWED_CHARS.fullmatch(value):
        return None  # control characters, whitespace, backslashes, non-ASCII
    if value.startswith("/"):
        if value.startswith("//") or _ENCODED_SLASH.match(value):
            return None
        return value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    del port  # only checked for validity
    if parts.scheme not in ("http", "https") or not value.lower().startswith(f"{parts.scheme}://"):
        return None
    netloc = parts.netloc
    if not netloc or "@" in netloc or "%" in netloc:
        return None
    host = (parts.hostname or "").lower()
    if not _HOSTNAME.fullmatch(host):
        return None
    own = (urlsplit(public_url).hostname or "").lower()
    if host == own or host_allowed(host, allowed_hosts):
        return value
    return None


def redirect_target(rd: str | None, allowed_hosts: Iterable[str], public_url: str) -> str:
    """The absolute URL to send a browser to: ``rd`` if safe, the public URL when absent.

    Raises:
        BadRequest: ``invalid_redirect`` when ``rd`` is refused by `safe_redirect`.
    """
    target = safe_redirect(rd or "/", allowed_hosts, public_url)
    if target is None:
        raise BadRequest("the return URL is not allowed", reason="invalid_redirect")
    return f"{public_url}{target}" if target.startswith("/") else target
