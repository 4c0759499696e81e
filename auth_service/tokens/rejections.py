"""How a refused bearer token is told to the caller: `TokenRejected` and the RFC 6750 challenge.

Pure (no I/O imports), so the decision engine (`auth_service.forward_auth.decision`)
can name the error without pulling in the authenticator and its HTTP client.
"""

from __future__ import annotations

from auth_service.errors import NotAuthenticated

__all__ = ("TokenRejected", "bearer_challenge")


def bearer_challenge(error: str | None = None, description: str | None = None) -> str:
    """An RFC 6750 ``WWW-Authenticate`` value."""
    if error is None:
        return 'Bearer realm="auth-service"'
    safe = (description or error).replace('"', "'").replace("\\", "/")
    return f'Bearer realm="auth-service", error="{error}", error_description="{safe}"'


class TokenRejected(NotAuthenticated):
    """401 ``invalid_token`` with a machine-readable reason (CONTRACT §4)."""

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(
            description,
            reason=reason,
            headers={"WWW-Authenticate": bearer_challenge("invalid_token", description)},
        )
