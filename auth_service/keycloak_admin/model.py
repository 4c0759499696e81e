"""The desired state of a Keycloak realm (CONTRACT §8), as msgspec Structs.

The file is TOML; field names are snake_case and unknown fields are refused, so a typo is an
error with its location instead of a silently ignored setting. ``representation`` turns these
Structs into Keycloak's admin/import JSON shapes (KEYCLOAK.md §4, §5).
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = (
    "BruteForce",
    "Client",
    "ClientRole",
    "ClientScope",
    "DesiredState",
    "Mapper",
    "Otp",
    "ProfileAttribute",
    "Realm",
    "RealmRole",
    "SeedUser",
    "ServiceAccountRoles",
    "Tokens",
    "UserProfile",
)


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base: unknown keys are errors."""


class BruteForce(_Strict):
    """Keycloak's per-user login lockout (realm fields of the same names, camelCased)."""

    enabled: bool = True
    permanent_lockout: bool = False
    failure_factor: int = 5
    wait_increment_seconds: int = 60
    minimum_quick_login_wait_seconds: int = 60
    quick_login_check_milliseconds: int = 1000
    max_failure_wait_seconds: int = 900
    max_delta_time_seconds: int = 43200


class Tokens(_Strict):
    """Token and SSO session lifespans (seconds)."""

    access_token_lifespan: int = 300
    sso_session_idle_timeout: int = 1800
    sso_session_max_lifespan: int = 36000


class Otp(_Strict):
    """The realm-wide OTP policy (KEYCLOAK.md §5.1)."""

    type: Literal["totp", "hotp"] = "totp"
    algorithm: Literal["HmacSHA1", "HmacSHA256", "HmacSHA512"] = "HmacSHA1"
    digits: Literal[6, 8] = 6
    period: int = 30
    look_ahead_window: int = 1
    code_reusable: bool = False


class Realm(_Strict):
    """Realm settings."""

    name: str
    display_name: str | None = None
    enabled: bool = True
    ssl_required: Literal["all", "external", "none"] = "external"
    registration_allowed: bool = False
    login_with_email_allowed: bool = True
    duplicate_emails_allowed: bool = False
    reset_password_allowed: bool = False
    brute_force: BruteForce = msgspec.field(default_factory=BruteForce)
    tokens: Tokens = msgspec.field(default_factory=Tokens)
    otp: Otp = msgspec.field(default_factory=Otp)


class RealmRole(_Strict):
    """A realm role; ``composites`` names other realm roles it includes."""

    name: str
    description: str | None = None
    composites: list[str] = msgspec.field(default_factory=list)


class ClientRole(_Strict):
    """A role of one client (``resource_access.<client>.roles`` in tokens)."""

    name: str
    description: str | None = None


MapperType = Literal[
    "user-attribute", "audience", "hardcoded-claim", "group-membership", "user-property"
]


class Mapper(_Strict):
    """A protocol mapper on a client or a client scope (KEYCLOAK.md §4.2).

    - ``user-attribute``: ``attribute`` → ``claim`` (dots nest: ``org.site``), ``json_type``,
      ``multivalued``; the attribute must be declared in ``user_profile`` (Keycloak 24+).
    - ``user-property``: a built-in property (``email``...) → ``claim``.
    - ``audience``: adds ``audience`` (a client id) to ``aud``.
    - ``hardcoded-claim``: ``claim`` = ``value``.
    - ``group-membership``: group names (``full_path`` for ``/a/b``) → ``claim``.
    """

    name: str
    type: MapperType
    attribute: str | None = None
    claim: str | None = None
    json_type: Literal["String", "long", "int", "boolean", "JSON"] = "String"
    multivalued: bool = False
    audience: str | None = None
    value: str | None = None
    full_path: bool = False
    access_token: bool = True
    id_token: bool | None = None
    """Default: true, except for audience and hardcoded-claim mappers."""
    userinfo: bool | None = None
    introspection: bool = True


class ServiceAccountRoles(_Strict):
    """Roles granted to a client's service account."""

    realm: list[str] = msgspec.field(default_factory=list)
    clients: dict[str, list[str]] = msgspec.field(default_factory=dict)


class Client(_Strict):
    """An OIDC client.

    ``kind``: ``confidential`` (secret; the service), ``public`` (browser apps, PKCE) or
    ``bearer-only`` (a downstream API: audience and client roles, no login).
    ``secret`` is optional: without it Keycloak generates one (``apply
    --write-client-secret``); it is never printed and never compared except for equality.
    """

    client_id: str
    kind: Literal["confidential", "public", "bearer-only"] = "confidential"
    name: str | None = None
    description: str | None = None
    enabled: bool = True
    secret: str | None = None
    standard_flow: bool = False
    direct_access_grants: bool = False
    service_accounts: bool = False
    pkce: Literal["S256"] | None = None
    root_url: str | None = None
    base_url: str | None = None
    redirect_uris: list[str] = msgspec.field(default_factory=list)
    web_origins: list[str] = msgspec.field(default_factory=list)
    post_logout_redirect_uris: list[str] = msgspec.field(default_factory=list)
    backchannel_logout_url: str | None = None
    backchannel_logout_session_required: bool = True
    lightweight_access_token: bool = False
    default_client_scopes: list[str] = msgspec.field(
        default_factory=lambda: ["basic", "web-origins", "acr", "profile", "roles", "email"]
    )
    optional_client_scopes: list[str] = msgspec.field(
        default_factory=lambda: ["offline_access", "address", "phone", "microprofile-jwt"]
    )
    roles: list[ClientRole] = msgspec.field(default_factory=list)
    mappers: list[Mapper] = msgspec.field(default_factory=list)
    service_account_roles: ServiceAccountRoles = msgspec.field(default_factory=ServiceAccountRoles)


class ClientScope(_Strict):
    """A custom client scope with its mappers; clients name it in ``default_client_scopes``."""

    name: str
    description: str | None = None
    include_in_token_scope: bool = True
    mappers: list[Mapper] = msgspec.field(default_factory=list)


class ProfileAttribute(_Strict):
    """A custom user attribute declared in the user profile (Keycloak 24+ drops undeclared
    attributes silently, so a mapper on an undeclared attribute emits nothing)."""

    name: str
    display_name: str | None = None
    max_length: int | None = None
    multivalued: bool = False
    view: list[Literal["admin", "user"]] = msgspec.field(default_factory=lambda: ["admin"])
    edit: list[Literal["admin", "user"]] = msgspec.field(default_factory=lambda: ["admin"])
    required: bool = False


class UserProfile(_Strict):
    """The declarative user profile: custom attributes (built-ins stay as Keycloak has them)."""

    unmanaged_attribute_policy: Literal["ENABLED", "ADMIN_VIEW", "ADMIN_EDIT"] | None = None
    attributes: list[ProfileAttribute] = msgspec.field(default_factory=list)


class SeedUser(_Strict):
    """A development user (``apply`` refuses them unless ``--allow-seed-users``)."""

    username: str
    enabled: bool = True
    email: str | None = None
    email_verified: bool = True
    first_name: str | None = None
    last_name: str | None = None
    password: str | None = None
    """Set when the user is created (never temporary); not compared afterwards."""
    realm_roles: list[str] = msgspec.field(default_factory=list)
    client_roles: dict[str, list[str]] = msgspec.field(default_factory=dict)
    attributes: dict[str, list[str]] = msgspec.field(default_factory=dict)


class DesiredState(_Strict):
    """A whole desired-state file (after the overlay is merged into its base)."""

    realm: Realm
    realm_roles: list[RealmRole] = msgspec.field(default_factory=list)
    client_scopes: list[ClientScope] = msgspec.field(default_factory=list)
    clients: list[Client] = msgspec.field(default_factory=list)
    user_profile: UserProfile = msgspec.field(default_factory=UserProfile)
    users: list[SeedUser] = msgspec.field(default_factory=list)

    def client(self, client_id: str) -> Client | None:
        """The client with this ``client_id``, if the file declares it."""
        return next((c for c in self.clients if c.client_id == client_id), None)
