"""The refresh-token grant as `auth_service.sessions.refresh.TokenRefresh` needs it."""

from __future__ import annotations

from auth_service.idp import GrantRefused, IdPClient, IdPUnavailable
from auth_service.sessions.refresh import RefreshRefused, RefreshUnavailable
from auth_service.sessions.store import IdPTokens
from auth_service.tokens.service import Authenticator, TokenRejected

__all__ = ("RefreshGrant",)

_TRANSIENT = frozenset({"unknown_kid", "token_not_yet_valid", "iat_in_future"})
"""Rejections of a refreshed token that may pass once keys or clocks agree."""


class RefreshGrant:
    """Exchanges a session's refresh token at the IdP and verifies the new access token."""

    def __init__(self, idp: IdPClient, authenticator: Authenticator) -> None:
        self.idp = idp
        self.authenticator = authenticator

    async def __call__(self, refresh_token: str) -> tuple[IdPTokens, float]:
        """New tokens and the access token's ``exp``.

        Raises:
            RefreshRefused: the IdP refused the grant, or the new token is invalid.
            RefreshUnavailable: the IdP could not answer (the session is kept).
        """
        try:
            body = await self.idp.token_request("refresh_token", refresh_token=refresh_token)
        except GrantRefused as exc:
            raise RefreshRefused(exc.error) from None
        except IdPUnavailable as exc:
            raise RefreshUnavailable(str(exc)) from exc
        access = body.get("access_token")
        if not isinstance(access, str):
            raise RefreshUnavailable("token response without access token")
        try:
            auth = await self.authenticator.authenticate(access)
        except TokenRejected as exc:
            if exc.reason in _TRANSIENT:
                raise RefreshUnavailable(exc.reason) from None
            raise RefreshRefused(f"refreshed_token_{exc.reason}") from None
        refresh, id_token = body.get("refresh_token"), body.get("id_token")
        return (
            IdPTokens(
                access_token=access,
                refresh_token=refresh if isinstance(refresh, str) else refresh_token,
                id_token=id_token if isinstance(id_token, str) else None,
            ),
            auth.exp,
        )
