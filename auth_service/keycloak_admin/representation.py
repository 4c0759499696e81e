"""Desired state → Keycloak's JSON representations (admin API and realm import).

One mapping serves ``apply`` (what is sent and compared), ``export`` (the realm import JSON that
``docker-compose.yml`` mounts) and the test stand-in (which loads the realm from it).
"""

from __future__ import annotations

import json
from typing import Any

from .model import (
    Client,
    ClientRole,
    ClientScope,
    DesiredState,
    Mapper,
    ProfileAttribute,
    Realm,
    RealmRole,
    SeedUser,
)

__all__ = (
    "BUILTIN_PROFILE_ATTRIBUTES",
    "PROFILE_COMPONENT",
    "client_rep",
    "export_realm",
    "mapper_rep",
    "profile_attribute_rep",
    "realm_rep",
    "role_rep",
    "scope_rep",
    "user_rep",
)

PROFILE_COMPONENT = "org.keycloak.userprofile.UserProfileProvider"
_BOTH = {"view": ["admin", "user"], "edit": ["admin", "user"]}
BUILTIN_PROFILE_ATTRIBUTES: list[dict[str, Any]] = [
    {
        "name": "username",
        "displayName": "${username}",
        "validations": {
            "length": {"min": 3, "max": 255},
            "username-prohibited-characters": {},
            "up-username-not-idn-homograph": {},
        },
        "permissions": _BOTH,
        "multivalued": False,
    },
    {
        "name": "email",
        "displayName": "${email}",
        "validations": {"email": {}, "length": {"max": 255}},
        "permissions": _BOTH,
        "multivalued": False,
    },
    {
        "name": "firstName",
        "displayName": "${firstName}",
        "validations": {"length": {"max": 255}, "person-name-prohibited-characters": {}},
        "permissions": _BOTH,
        "multivalued": False,
    },
    {
        "name": "lastName",
        "displayName": "${lastName}",
        "validations": {"length": {"max": 255}, "person-name-prohibited-characters": {}},
        "permissions": _BOTH,
        "multivalued": False,
    },
]
"""What a new Keycloak realm declares (KEYCLOAK.md §4.1); ``export`` writes them out."""
_PROFILE_GROUPS = [
    {
        "name": "user-metadata",
        "displayHeader": "User metadata",
        "displayDescription": "Attributes, which refer to user metadata",
    }
]
_MAPPER_TYPES = {
    "user-attribute": "oidc-usermodel-attribute-mapper",
    "user-property": "oidc-usermodel-property-mapper",
    "audience": "oidc-audience-mapper",
    "hardcoded-claim": "oidc-hardcoded-claim-mapper",
    "group-membership": "oidc-group-membership-mapper",
}


def _flag(value: bool) -> str:
    return "true" if value else "false"


def realm_rep(realm: Realm) -> dict[str, Any]:
    """The realm's top-level settings (a partial ``RealmRepresentation``)."""
    bf, tokens, otp = realm.brute_force, realm.tokens, realm.otp
    rep: dict[str, Any] = {"realm": realm.name, "enabled": realm.enabled}
    if realm.display_name is not None:
        rep["displayName"] = realm.display_name
    rep |= {
        "sslRequired": realm.ssl_required,
        "registrationAllowed": realm.registration_allowed,
        "loginWithEmailAllowed": realm.login_with_email_allowed,
        "duplicateEmailsAllowed": realm.duplicate_emails_allowed,
        "resetPasswordAllowed": realm.reset_password_allowed,
        "bruteForceProtected": bf.enabled,
        "permanentLockout": bf.permanent_lockout,
        "failureFactor": bf.failure_factor,
        "waitIncrementSeconds": bf.wait_increment_seconds,
        "minimumQuickLoginWaitSeconds": bf.minimum_quick_login_wait_seconds,
        "quickLoginCheckMilliSeconds": bf.quick_login_check_milliseconds,
        "maxFailureWaitSeconds": bf.max_failure_wait_seconds,
        "maxDeltaTimeSeconds": bf.max_delta_time_seconds,
        "accessTokenLifespan": tokens.access_token_lifespan,
        "ssoSessionIdleTimeout": tokens.sso_session_idle_timeout,
        "ssoSessionMaxLifespan": tokens.sso_session_max_lifespan,
        "otpPolicyType": otp.type,
        "otpPolicyAlgorithm": otp.algorithm,
        "otpPolicyDigits": otp.digits,
        "otpPolicyPeriod": otp.period,
        "otpPolicyLookAheadWindow": otp.look_ahead_window,
        "otpPolicyCodeReusable": otp.code_reusable,
    }
    return rep


def mapper_rep(mapper: Mapper) -> dict[str, Any]:
    """A ``ProtocolMapperRepresentation`` (every config value a string)."""
    config: dict[str, str] = {}
    if mapper.type in ("user-attribute", "user-property"):
        config["user.attribute"] = mapper.attribute or ""
    if mapper.type == "audience":
        config["included.client.audience"] = mapper.audience or ""
    if mapper.type != "audience":
        config["claim.name"] = mapper.claim or ""
    if mapper.type == "hardcoded-claim":
        config["claim.value"] = mapper.value or ""
    if mapper.type in ("user-attribute", "user-property", "hardcoded-claim"):
        config["jsonType.label"] = mapper.json_type
    if mapper.type == "user-attribute":
        config["multivalued"] = _flag(mapper.multivalued)
        config["aggregate.attrs"] = "false"
    if mapper.type == "group-membership":
        config["full.path"] = _flag(mapper.full_path)
    quiet = mapper.type in ("audience", "hardcoded-claim")
    config["access.token.claim"] = _flag(mapper.access_token)
    config["id.token.claim"] = _flag(not quiet if mapper.id_token is None else mapper.id_token)
    if mapper.type != "audience":
        userinfo = not quiet if mapper.userinfo is None else mapper.userinfo
        config["userinfo.token.claim"] = _flag(userinfo)
    config["introspection.token.claim"] = _flag(mapper.introspection)
    config["lightweight.claim"] = "false"
    return {
        "name": mapper.name,
        "protocol": "openid-connect",
        "protocolMapper": _MAPPER_TYPES[mapper.type],
        "consentRequired": False,
        "config": config,
    }


def client_rep(client: Client, *, with_secret: bool = True) -> dict[str, Any]:
    """A ``ClientRepresentation`` with its mappers and scope names (roles are separate)."""
    public, bearer = client.kind == "public", client.kind == "bearer-only"
    rep: dict[str, Any] = {"clientId": client.client_id}
    if client.name is not None:
        rep["name"] = client.name
    if client.description is not None:
        rep["description"] = client.description
    rep |= {"enabled": client.enabled, "protocol": "openid-connect", "publicClient": public}
    rep["bearerOnly"] = bearer
    if not public:
        rep["clientAuthenticatorType"] = "client-secret"
    if with_secret and client.secret is not None:
        rep["secret"] = client.secret
    rep |= {
        "standardFlowEnabled": client.standard_flow,
        "implicitFlowEnabled": False,
        "directAccessGrantsEnabled": client.direct_access_grants,
        "serviceAccountsEnabled": client.service_accounts,
    }
    if client.root_url is not None:
        rep["rootUrl"] = client.root_url
    if client.base_url is not None:
        rep["baseUrl"] = client.base_url
    if not bearer:
        rep["redirectUris"] = list(client.redirect_uris)
        rep["webOrigins"] = list(client.web_origins)
    rep["frontchannelLogout"] = False
    attributes: dict[str, str] = {}
    if client.pkce is not None:
        attributes["pkce.code.challenge.method"] = client.pkce
    if client.post_logout_redirect_uris:
        attributes["post.logout.redirect.uris"] = "##".join(client.post_logout_redirect_uris)
    if client.backchannel_logout_url is not None:
        attributes["backchannel.logout.url"] = client.backchannel_logout_url
        required = _flag(client.backchannel_logout_session_required)
        attributes["backchannel.logout.session.required"] = required
        attributes["backchannel.logout.revoke.offline.tokens"] = "false"
    if client.lightweight_access_token:
        attributes["client.use.lightweight.access.token.enabled"] = "true"
    if not bearer:
        rep["fullScopeAllowed"] = True
    if attributes:
        rep["attributes"] = attributes
    if not bearer:
        rep["defaultClientScopes"] = list(client.default_client_scopes)
        rep["optionalClientScopes"] = list(client.optional_client_scopes)
    if client.mappers:
        rep["protocolMappers"] = [mapper_rep(m) for m in client.mappers]
    return rep


def scope_rep(scope: ClientScope) -> dict[str, Any]:
    """A ``ClientScopeRepresentation`` with its mappers."""
    rep: dict[str, Any] = {"name": scope.name, "protocol": "openid-connect"}
    if scope.description is not None:
        rep["description"] = scope.description
    rep["attributes"] = {
        "include.in.token.scope": _flag(scope.include_in_token_scope),
        "display.on.consent.screen": "false",
    }
    rep["protocolMappers"] = [mapper_rep(m) for m in scope.mappers]
    return rep


def role_rep(role: RealmRole | ClientRole) -> dict[str, Any]:
    """A ``RoleRepresentation`` (name and description)."""
    rep: dict[str, Any] = {"name": role.name}
    if role.description is not None:
        rep["description"] = role.description
    return rep


def profile_attribute_rep(attribute: ProfileAttribute) -> dict[str, Any]:
    """An ``UPAttribute`` of the declarative user profile."""
    rep: dict[str, Any] = {"name": attribute.name}
    if attribute.display_name is not None:
        rep["displayName"] = attribute.display_name
    if attribute.max_length is not None:
        rep["validations"] = {"length": {"max": attribute.max_length}}
    if attribute.required:
        rep["required"] = {"roles": ["admin", "user"]}
    rep["permissions"] = {"view": list(attribute.view), "edit": list(attribute.edit)}
    rep["multivalued"] = attribute.multivalued
    return rep


def user_rep(user: SeedUser) -> dict[str, Any]:
    """A ``UserRepresentation`` without credentials and role mappings."""
    rep: dict[str, Any] = {"username": user.username.lower(), "enabled": user.enabled}
    if user.email is not None:
        rep["email"] = user.email
        rep["emailVerified"] = user.email_verified
    if user.first_name is not None:
        rep["firstName"] = user.first_name
    if user.last_name is not None:
        rep["lastName"] = user.last_name
    if user.attributes:
        rep["attributes"] = {k: list(v) for k, v in user.attributes.items()}
    return rep


def export_realm(state: DesiredState) -> dict[str, Any]:
    """The realm import JSON (``--import-realm``) for the same desired state.

    Custom client scopes are left out: a ``clientScopes`` array in an import stops Keycloak
    from creating its built-in scopes (KEYCLOAK.md §5.1), so ``apply`` creates them instead.
    """
    realm_name = state.realm.name
    default_roles = f"default-roles-{realm_name}"
    rep = realm_rep(state.realm)
    realm_roles = []
    for role in state.realm_roles:
        one = role_rep(role)
        if role.composites:
            one |= {"composite": True, "composites": {"realm": list(role.composites)}}
        realm_roles.append(one)
    client_roles = {c.client_id: [role_rep(r) for r in c.roles] for c in state.clients if c.roles}
    rep["roles"] = {"realm": realm_roles, "client": client_roles}
    custom = {s.name for s in state.client_scopes}
    clients = []
    for client in state.clients:
        one = client_rep(client)
        for key in ("defaultClientScopes", "optionalClientScopes"):
            if key in one:
                one[key] = [s for s in one[key] if s not in custom]
        clients.append(one)
    rep["clients"] = clients
    users: list[dict[str, Any]] = []
    for user in state.users:
        one = user_rep(user)
        if user.password is not None:
            one["credentials"] = [{"type": "password", "value": user.password, "temporary": False}]
        one["requiredActions"] = []
        one["realmRoles"] = [default_roles, *user.realm_roles]
        if user.client_roles:
            one["clientRoles"] = {k: list(v) for k, v in user.client_roles.items()}
        users.append(one)
    for client in state.clients:
        grants = client.service_account_roles
        if client.service_accounts and (grants.realm or grants.clients):
            account: dict[str, Any] = {
                "username": f"service-account-{client.client_id}",
                "enabled": True,
                "serviceAccountClientId": client.client_id,
                "realmRoles": [default_roles, *grants.realm],
            }
            if grants.clients:
                account["clientRoles"] = {k: list(v) for k, v in grants.clients.items()}
            users.append(account)
    if users:
        rep["users"] = users
    profile: dict[str, Any] = {
        "attributes": [
            *BUILTIN_PROFILE_ATTRIBUTES,
            *(profile_attribute_rep(a) for a in state.user_profile.attributes),
        ],
        "groups": _PROFILE_GROUPS,
    }
    if state.user_profile.unmanaged_attribute_policy is not None:
        profile["unmanagedAttributePolicy"] = state.user_profile.unmanaged_attribute_policy
    component = {
        "providerId": "declarative-user-profile",
        "subComponents": {},
        "config": {"kc.user.profile.config": [json.dumps(profile, separators=(",", ":"))]},
    }
    rep["components"] = {PROFILE_COMPONENT: [component]}
    return rep
