"""Claim sets as Keycloak builds them: access (full, service-account, lightweight), ID, userinfo.

Kept apart from ``FakeKeycloak`` as a mixin: it needs only the realm name, issuer, token lifespan
and clock of the class it is mixed into (KEYCLOAK.md §2.2, §2.3, §2.6, §2.9).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable
from typing import Any, Literal

from ._model import ACCOUNT_ROLES, DEFAULT_REALM_ROLES, Client, User

__all__ = ("ClaimsMixin", "at_hash")

DEFAULT_SCOPES = ("profile", "email")
"""Default client scopes that show up in the ``scope`` claim."""
OPTIONAL_SCOPES = ("offline_access", "address", "phone", "microprofile-jwt", "organization")
HIDDEN_SCOPES = ("basic", "roles", "web-origins", "acr")
"""Default scopes that add claims but are not listed in ``scope`` (include.in.token.scope off)."""
_TOKEN_ONLY_CLAIMS = frozenset(
    {"exp", "iat", "auth_time", "jti", "iss", "aud", "typ", "azp", "sid", "acr", "nonce"}
    | {"allowed-origins", "realm_access", "resource_access", "scope", "session_state", "at_hash"}
    | {"client_id", "clientHost", "clientAddress"}
)


def _aud(values: Iterable[str]) -> str | list[str] | None:
    """``aud`` as Keycloak writes it: a string for one audience, a list for several."""
    unique = list(dict.fromkeys(values))
    if not unique:
        return None
    return unique[0] if len(unique) == 1 else unique


def at_hash(access_token: str) -> str:
    """OIDC ``at_hash``: base64url of the left half of SHA-256 of the access token."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


class ClaimsMixin:
    """Builds claim dictionaries; ``FakeKeycloak`` supplies the attributes below."""

    realm: str
    access_token_lifespan: int

    @property
    def issuer(self) -> str:
        """The realm issuer URL."""
        raise NotImplementedError

    def now(self) -> float:
        """The current time (epoch seconds) on the realm's clock."""
        raise NotImplementedError

    def grant_scope(self, requested: str | None) -> str | None:
        """The ``scope`` claim for a requested scope string, or ``None`` if a scope is unknown."""
        asked = (requested or "").split()
        known = {"openid", *DEFAULT_SCOPES, *OPTIONAL_SCOPES, *HIDDEN_SCOPES}
        if any(s not in known for s in asked):
            return None
        granted = ["openid"] if "openid" in asked else []
        granted += [s for s in asked if s in OPTIONAL_SCOPES]
        return " ".join(dict.fromkeys([*granted, *DEFAULT_SCOPES]))

    def _profile_claims(self, user: User, scope: str) -> dict[str, Any]:
        scopes = scope.split()
        claims: dict[str, Any] = {}
        if "email" in scopes:
            claims["email_verified"] = user.email is not None
        if "profile" in scopes:
            name = " ".join(p for p in (user.first_name, user.last_name) if p)
            if name:
                claims["name"] = name
            claims["preferred_username"] = user.username
            if user.first_name:
                claims["given_name"] = user.first_name
            if user.last_name:
                claims["family_name"] = user.last_name
        if "email" in scopes and user.email:
            claims["email"] = user.email
        claims.update(user.attributes)
        return claims

    def _roles(
        self, realm_roles: Iterable[str], client_roles: dict[str, list[str]], *, account: bool
    ) -> dict[str, Any]:
        realm = [f"default-roles-{self.realm}", *DEFAULT_REALM_ROLES, *realm_roles]
        resource = {c: {"roles": list(r)} for c, r in client_roles.items() if r}
        if account:
            resource.setdefault("account", {"roles": list(ACCOUNT_ROLES)})
        claims: dict[str, Any] = {"realm_access": {"roles": list(dict.fromkeys(realm))}}
        if resource:
            claims["resource_access"] = resource
        return claims

    def user_access_claims(
        self,
        user: User,
        client: Client,
        *,
        scope: str,
        sid: str | None,
        lifetime: int | None = None,
        auth_time: int | None = None,
        now: float | None = None,
        audience: str | Iterable[str] | None | Literal["auto"] = "auto",
    ) -> dict[str, Any]:
        """The full (non-lightweight) access-token claim set for a user, per §2.2."""
        iat = int(self.now() if now is None else now)
        roles = self._roles(user.realm_roles, user.client_roles, account=True)
        if audience == "auto":
            resolved = [*roles.get("resource_access", {})]
            aud = _aud(a for a in [*client.audiences, *resolved] if a != client.client_id)
        else:
            aud = _aud([audience] if isinstance(audience, str) else (audience or ()))
        claims: dict[str, Any] = {"exp": iat + (lifetime or self.access_token_lifespan), "iat": iat}
        if auth_time is not None:
            claims["auth_time"] = auth_time
        claims["jti"] = str(uuid.uuid4())
        claims["iss"] = self.issuer
        if aud is not None:
            claims["aud"] = aud
        claims.update({"sub": user.sub, "typ": "Bearer", "azp": client.client_id})
        if sid is not None:
            claims["sid"] = sid
        claims["acr"] = "1"
        claims.update(roles)
        claims["scope"] = scope
        claims.update(self._profile_claims(user, scope))
        claims.update(client.hardcoded_claims)
        return claims

    def service_account_claims(self, client: Client, *, scope: str) -> dict[str, Any]:
        """Access-token claims for a ``client_credentials`` grant (§2.2 service-account shape)."""
        iat = int(self.now())
        realm_roles = [r for r in client.service_account_roles if ":" not in r]
        client_roles: dict[str, list[str]] = {}
        for role in client.service_account_roles:
            if ":" in role:
                owner, _, name = role.partition(":")
                client_roles.setdefault(owner, []).append(name)
        roles = self._roles(realm_roles, client_roles, account=False)
        resolved = [*roles.get("resource_access", {})]
        claims: dict[str, Any] = {
            "exp": iat + self.access_token_lifespan,
            "iat": iat,
            "jti": str(uuid.uuid4()),
            "iss": self.issuer,
        }
        aud = _aud(a for a in [*client.audiences, *resolved] if a != client.client_id)
        if aud is not None:
            claims["aud"] = aud
        claims.update({"sub": client.service_account_sub, "typ": "Bearer", "azp": client.client_id})
        claims["acr"] = "1"
        claims.update(roles)
        claims["scope"] = scope
        claims["email_verified"] = False
        claims["clientHost"] = "127.0.0.1"
        claims["preferred_username"] = f"service-account-{client.client_id}"
        claims["clientAddress"] = "127.0.0.1"
        claims["client_id"] = client.client_id
        claims.update(client.hardcoded_claims)
        return claims

    @staticmethod
    def lightweight_claims(full: dict[str, Any]) -> dict[str, Any]:
        """Reduce a claim set to what a lightweight access token carries (§2.6)."""
        keep = ("exp", "iat", "jti", "iss", "typ", "azp", "sid", "scope")
        return {k: full[k] for k in keep if k in full}

    def userinfo_claims(self, full: dict[str, Any]) -> dict[str, Any]:
        """Userinfo response for a token's full claim set: subject, profile, email, attributes."""
        return {k: v for k, v in full.items() if k not in _TOKEN_ONLY_CLAIMS}

    def id_token_claims(
        self,
        user: User,
        client_id: str,
        *,
        scope: str,
        sid: str | None,
        nonce: str | None = None,
        access_token: str | None = None,
        auth_time: int | None = None,
        lifetime: int | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """ID-token claims per §2.3 (``typ: ID``, ``aud`` = client id, ``nonce``, ``at_hash``)."""
        iat = int(self.now() if now is None else now)
        claims: dict[str, Any] = {"exp": iat + (lifetime or self.access_token_lifespan), "iat": iat}
        if auth_time is not None:
            claims["auth_time"] = auth_time
        claims.update(
            {"jti": str(uuid.uuid4()), "iss": self.issuer, "aud": client_id, "sub": user.sub}
        )
        claims.update({"typ": "ID", "azp": client_id})
        if nonce:
            claims["nonce"] = nonce
        if sid is not None:
            claims["sid"] = sid
        if access_token is not None:
            claims["at_hash"] = at_hash(access_token)
        claims["acr"] = "1"
        claims.update(self._profile_claims(user, scope))
        return claims
