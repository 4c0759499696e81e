"""Just enough HTTP for a raw ASGI app: a parsed request, a response, OAuth error helpers."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

__all__ = ("OAUTH_SERVER_ERROR", "Request", "Response", "oauth_error")

OAUTH_SERVER_ERROR = {
    "error": "unknown_error",
    "error_description": "For more on this error consult the server log.",
}
"""Keycloak's body for an unexpected server error (KEYCLOAK.md §3.1, last row)."""


@dataclass
class Request:
    """A buffered HTTP request as the endpoints see it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    _form: dict[str, list[str]] | None = field(default=None, repr=False)

    @property
    def form(self) -> dict[str, list[str]]:
        """The ``application/x-www-form-urlencoded`` body (empty values kept)."""
        if self._form is None:
            ctype = self.headers.get("content-type", "")
            text = self.body.decode("utf-8", "replace")
            is_form = "x-www-form-urlencoded" in ctype or not ctype
            self._form = parse_qs(text, keep_blank_values=True) if is_form else {}
        return self._form

    def param(self, name: str, *, source: str = "form") -> str | None:
        """First value of a form (or ``source="query"``) parameter, ``None`` when absent."""
        values = (self.form if source == "form" else self.query).get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body parsed as JSON (``{}`` when empty)."""
        return json.loads(self.body) if self.body else {}

    def basic_credentials(self) -> tuple[str, str] | None:
        """``client_secret_basic`` credentials (both parts URL-decoded, per RFC 6749 §2.3.1)."""
        auth = self.headers.get("authorization", "")
        if not auth.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeError):
            return None
        return unquote(user), unquote(password)

    def bearer(self) -> str | None:
        """The token of an ``Authorization: Bearer`` header."""
        auth = self.headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None


@dataclass
class Response:
    """A complete HTTP response."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """A JSON response."""
        extra = list((headers or {}).items())
        body = json.dumps(data).encode()
        return cls(status, body, [("content-type", "application/json"), *extra])

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        """An HTML page."""
        return cls(status, text.encode(), [("content-type", "text/html;charset=utf-8")])

    @classmethod
    def redirect(cls, location: str) -> Response:
        """A 302 to ``location``."""
        return cls(302, b"", [("location", location)])

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        """A response without a body."""
        return cls(status)


def oauth_error(status: int, error: str, description: str, **headers: str) -> Response:
    """Keycloak's OAuth error body ``{"error", "error_description"}``."""
    body = {"error": error, "error_description": description}
    return Response.json(body, status, {k.replace("_", "-"): v for k, v in headers.items()})
