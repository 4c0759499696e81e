"""Realm data held by the stand-in: users, clients, sessions, authorization codes, deliveries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ("AuthCode", "BackchannelDelivery", "Client", "Session", "User")

DEFAULT_REALM_ROLES = ("offline_access", "uma_authorization")
"""Composite members of ``default-roles-<realm>`` that Keycloak puts in every token."""

ACCOUNT_ROLES = ("manage-account", "manage-account-links", "view-profile")
"""Client roles on ``account`` that default roles grant every user."""


@dataclass
class User:
    """A realm user with credentials, roles and custom attributes."""

    username: str
    password: str
    sub: str = field(default_factory=lambda: str(uuid.uuid4()))
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    realm_roles: list[str] = field(default_factory=list)
    client_roles: dict[str, list[str]] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    """Emitted as top-level claims (one attribute mapper each), e.g. ``tenant_id``."""
    enabled: bool = True


@dataclass
class Client:
    """An OIDC client of the realm."""

    client_id: str
    secret: str | None = None
    public: bool = False
    bearer_only: bool = False
    redirect_uris: list[str] = field(default_factory=lambda: ["*"])
    lightweight: bool = False
    """``client.use.lightweight.access.token.enabled``: access tokens carry only §2.6 claims."""
    audiences: list[str] = field(default_factory=list)
    """Extra ``aud`` values from audience mappers."""
    service_accounts: bool = False
    service_account_roles: list[str] = field(default_factory=list)
    """Realm roles of the service account; ``"client:role"`` entries are client roles."""
    service_account_sub: str = field(default_factory=lambda: str(uuid.uuid4()))
    backchannel_logout_url: str | None = None
    hardcoded_claims: dict[str, Any] = field(default_factory=dict)
    """Constant claims of the client's hardcoded-claim mappers (dotted names already nested)."""

    @property
    def confidential(self) -> bool:
        """True when the client authenticates with a secret."""
        return not self.public and self.secret is not None


@dataclass
class Session:
    """A user (SSO) session; its id is the ``sid`` claim and the ``session_state``."""

    sid: str
    username: str
    started: int
    auth_time: int
    clients: set[str] = field(default_factory=set)
    """Client ids that received tokens in this session (back-channel logout targets)."""
    active: bool = True


@dataclass
class AuthCode:
    """A pending authorization code from the browser flow."""

    code: str
    client_id: str
    redirect_uri: str
    sid: str
    scope: str
    expires_at: float
    nonce: str | None = None
    code_challenge: str | None = None
    used: bool = False


@dataclass
class BackchannelDelivery:
    """One back-channel logout POST made by the stand-in, and its outcome."""

    url: str
    client_id: str
    sid: str | None
    logout_token: str
    status_code: int | None
    """HTTP status of the receiver, or ``None`` when the request failed (see ``error``)."""
    error: str | None = None
