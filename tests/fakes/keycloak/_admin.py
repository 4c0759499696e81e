"""The admin REST API of the stand-in (KEYCLOAK.md §3.3, §6.3, §6.6) and the realm state behind it.

``AdminStore`` keeps Keycloak representations (realm, roles, clients with mappers and secrets,
client scopes, users with attributes and role mappings, the declarative user profile). Every
write is projected into the OIDC side (``FakeKeycloak.users`` / ``clients``), so tokens reflect
what was applied: audience mappers become ``aud``, attribute mappers become claims, role
mappings become ``realm_access`` / ``resource_access``.

Keycloak behaviours reproduced: ``201`` + ``Location`` for creates, ``204`` for updates,
``409`` ``{"errorMessage"}`` for duplicates, ``404`` ``{"error"}`` for unknown ids, ``PUT
users/{id}`` replaces the whole user, undeclared user attributes are dropped with a 2xx, bearer
tokens from the ``master`` realm token endpoint (``admin-cli`` password grant or an admin
client's client_credentials). ``writes`` counts every non-GET admin request.
"""

from __future__ import annotations

import copy
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._http import OAUTH_SERVER_ERROR, Request, Response, oauth_error
from ._model import Client, User

if TYPE_CHECKING:
    from ._fake import FakeKeycloak

__all__ = ("BUILTIN_SCOPES", "AdminStore", "admin_token", "handle_admin")

BUILTIN_SCOPES = (
    "basic",
    "profile",
    "email",
    "roles",
    "web-origins",
    "acr",
    "offline_access",
    "address",
    "phone",
    "microprofile-jwt",
    "organization",
    "service_account",
)
_BUILTIN_CLIENTS: dict[str, tuple[str, ...]] = {
    "account": ("manage-account", "manage-account-links", "view-profile"),
    "account-console": (),
    "admin-cli": (),
    "broker": ("read-token",),
    "realm-management": (
        "manage-users",
        "view-users",
        "query-users",
        "manage-clients",
        "view-clients",
        "query-clients",
        "manage-realm",
        "view-realm",
        "realm-admin",
    ),
    "security-admin-console": (),
}
_DEFAULT_PROFILE: dict[str, Any] = {
    "attributes": [
        {"name": n, "displayName": "${" + n + "}", "permissions": {"view": [], "edit": []}}
        for n in ("username", "email", "firstName", "lastName")
    ],
    "groups": [{"name": "user-metadata", "displayHeader": "User metadata"}],
}
_USER_ROOT = ("username", "enabled", "email", "emailVerified", "firstName", "lastName")
_PROFILE_KEY = "org.keycloak.userprofile.UserProfileProvider"


def _not_found(what: str) -> Response:
    return Response.json({"error": what}, 404)


def _conflict(message: str) -> Response:
    return Response.json({"errorMessage": message}, 409)


def _created(location: str) -> Response:
    return Response(201, b"", [("location", location)])


def _page(items: list[Any], req: Request) -> list[Any]:
    first = int(req.param("first", source="query") or 0)
    size = req.param("max", source="query")
    return items[first : first + int(size)] if size is not None else items[first:]


class AdminStore:
    """Representations of one realm, as the admin API sees them."""

    def __init__(self, fake: FakeKeycloak) -> None:
        self.fake = fake
        self.exists = False
        self.settings: dict[str, Any] = {}
        self.roles: dict[str, dict[str, Any]] = {}
        self.composites: dict[str, list[str]] = {}
        self.clients: dict[str, dict[str, Any]] = {}
        self.client_roles: dict[str, dict[str, dict[str, Any]]] = {}
        self.scopes: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.passwords: dict[str, str] = {}
        self.realm_mappings: dict[str, list[str]] = {}
        self.client_mappings: dict[str, dict[str, list[str]]] = {}
        self.profile: dict[str, Any] = copy.deepcopy(_DEFAULT_PROFILE)
        self.admin_users: dict[str, str] = {"admin": "admin"}
        """``master`` realm users allowed to use ``admin-cli`` (username → password)."""
        self.admin_clients: dict[str, str] = {}
        """``master`` realm service-account clients with admin rights (client id → secret)."""
        self.tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.writes: list[tuple[str, str]] = []
        """``(method, path)`` of every non-GET admin request, in order."""
        self.fail_writes_after: int | None = None
        """Answer every write after this many with Keycloak's 500 (a server dying mid-apply)."""
        self.lenient_redirects = False
        """Seeded realms keep the stand-in's historic "any redirect URI" behaviour."""
        self._projected_users: set[str] = set()
        self._projected_clients: set[str] = set()

    # -- realm lifecycle --------------------------------------------------------------------

    def create_realm(self, rep: dict[str, Any]) -> None:
        """What ``POST /admin/realms`` does: settings, default roles, clients and scopes."""
        self.exists = True
        self.settings = {
            k: v for k, v in rep.items() if not isinstance(v, dict | list) or k == "attributes"
        }
        self.settings["realm"] = self.fake.realm
        self.settings.setdefault("id", str(uuid.uuid4()))
        for name in ("offline_access", "uma_authorization", f"default-roles-{self.fake.realm}"):
            self._add_role(name, None)
        for name in BUILTIN_SCOPES:
            sid = str(uuid.uuid4())
            self.scopes[sid] = {"id": sid, "name": name, "protocol": "openid-connect"}
            self.scopes[sid] |= {"attributes": {}, "protocolMappers": []}
        for client_id, roles in _BUILTIN_CLIENTS.items():
            cid = self._add_client({"clientId": client_id, "publicClient": True})
            for role in roles:
                self._add_client_role(cid, {"name": role})

    def import_realm(self, rep: dict[str, Any], *, seeding: bool = False) -> None:
        """What ``--import-realm`` does with a realm JSON (used to seed from the realm file)."""
        self.create_realm(rep)
        for role in rep.get("roles", {}).get("realm", []):
            self._add_role(role["name"], role.get("description"))
        for client in rep.get("clients", []):
            self._add_client(client)
        for client_id, roles in rep.get("roles", {}).get("client", {}).items():
            cid = self._client_uuid(client_id)
            for role in roles:
                self._add_client_role(cid, role)
        for role in rep.get("roles", {}).get("realm", []):
            self.composites[role["name"]] = list(role.get("composites", {}).get("realm", []))
        for component in rep.get("components", {}).get(_PROFILE_KEY, []):
            self.profile = json.loads(component["config"]["kc.user.profile.config"][0])
        for user in rep.get("users", []):
            owner = user.get("serviceAccountClientId")
            if owner is not None:
                uid = self._service_account_id(self._client_uuid(owner))
            else:
                uid = self._add_user(user)
                for credential in user.get("credentials", []):
                    self.passwords[uid] = credential["value"]
            self.realm_mappings[uid] = list(user.get("realmRoles", []))
            self.client_mappings[uid] = {k: list(v) for k, v in user.get("clientRoles", {}).items()}
        self.project(seeding=seeding)

    # -- helpers ----------------------------------------------------------------------------

    def _add_role(self, name: str, description: str | None) -> dict[str, Any]:
        role = {"id": str(uuid.uuid4()), "name": name, "composite": False, "clientRole": False}
        role["containerId"] = self.settings.get("id", "")
        if description is not None:
            role["description"] = description
        self.roles[name] = role
        return role

    def _add_client(self, rep: dict[str, Any]) -> str:
        cid = str(uuid.uuid4())
        client = copy.deepcopy(rep) | {"id": cid}
        client.setdefault("enabled", True)
        client.setdefault("protocol", "openid-connect")
        client.setdefault("attributes", {})
        client.setdefault("publicClient", False)
        client.setdefault("bearerOnly", False)
        if not client["publicClient"] and not client.get("secret"):
            client["secret"] = secrets.token_urlsafe(24)
        client["protocolMappers"] = [
            dict(m, id=str(uuid.uuid4())) for m in client.get("protocolMappers", [])
        ]
        client.setdefault("defaultClientScopes", [])
        client.setdefault("optionalClientScopes", [])
        self.clients[cid] = client
        self.client_roles[cid] = {}
        if client.get("serviceAccountsEnabled"):
            self._service_account_id(cid)
        return cid

    def _add_client_role(self, cid: str, rep: dict[str, Any]) -> dict[str, Any]:
        role = {"id": str(uuid.uuid4()), "name": rep["name"], "composite": False}
        role |= {"clientRole": True, "containerId": cid}
        if rep.get("description") is not None:
            role["description"] = rep["description"]
        self.client_roles[cid][rep["name"]] = role
        return role

    def _client_uuid(self, client_id: str) -> str:
        return next(k for k, c in self.clients.items() if c["clientId"] == client_id)

    def _service_account_id(self, cid: str) -> str:
        name = f"service-account-{self.clients[cid]['clientId']}"
        found = self._user_by_name(name)
        if found is not None:
            return found
        uid = self._add_user({"username": name, "enabled": True})
        self.users[uid]["serviceAccountClientId"] = self.clients[cid]["clientId"]
        return uid

    def _user_by_name(self, username: str) -> str | None:
        return next((k for k, u in self.users.items() if u["username"] == username.lower()), None)

    def declared(self) -> set[str]:
        """Attribute names the user profile declares."""
        return {a["name"] for a in self.profile.get("attributes", [])}

    def _clean_attributes(self, attributes: dict[str, Any]) -> dict[str, list[str]]:
        """Keycloak 24+: undeclared attributes are dropped unless the policy lets them in."""
        keep_unmanaged = self.profile.get("unmanagedAttributePolicy") in ("ENABLED", "ADMIN_EDIT")
        declared = self.declared()
        return {
            k: [str(x) for x in (v if isinstance(v, list) else [v])]
            for k, v in attributes.items()
            if keep_unmanaged or k in declared
        }

    def _add_user(self, rep: dict[str, Any]) -> str:
        uid = str(uuid.uuid4())
        user = {k: rep[k] for k in _USER_ROOT if k in rep}
        user["username"] = str(rep["username"]).lower()
        user.setdefault("enabled", True)
        user.setdefault("emailVerified", False)
        user |= {"id": uid, "createdTimestamp": int(self.fake.now() * 1000), "totp": False}
        attributes = self._clean_attributes(rep.get("attributes") or {})
        if attributes:
            user["attributes"] = attributes
        user["requiredActions"] = []
        self.users[uid] = user
        self.realm_mappings[uid] = [f"default-roles-{self.fake.realm}"]
        self.client_mappings[uid] = {}
        return uid

    # -- projection into the OIDC side ------------------------------------------------------

    def _mappers(self) -> list[dict[str, Any]]:
        found = [m for c in self.clients.values() for m in c.get("protocolMappers", [])]
        found += [m for s in self.scopes.values() for m in s.get("protocolMappers", [])]
        return found

    def claims_for(self, uid: str) -> dict[str, Any]:
        """Attribute claims of a user, from every user-attribute mapper of the realm.

        Simplification: the stand-in applies attribute mappers realm-wide (every client gets
        them), which is what the realm file does by putting them on each login client."""
        claims: dict[str, Any] = {}
        attributes = self.users[uid].get("attributes", {})
        seen: set[str] = set()
        for mapper in self._mappers():
            if mapper.get("protocolMapper") != "oidc-usermodel-attribute-mapper":
                continue
            config = mapper.get("config", {})
            claim, attribute = config.get("claim.name", ""), config.get("user.attribute", "")
            values = attributes.get(attribute)
            if not claim or claim in seen or not values:
                continue
            seen.add(claim)
            typed = [_typed(v, config.get("jsonType.label", "String")) for v in values]
            _set_claim(claims, claim, typed if config.get("multivalued") == "true" else typed[0])
        return claims

    @staticmethod
    def _hardcoded(client: dict[str, Any]) -> dict[str, Any]:
        claims: dict[str, Any] = {}
        for mapper in client.get("protocolMappers", []):
            config = mapper.get("config", {})
            if mapper.get("protocolMapper") != "oidc-hardcoded-claim-mapper":
                continue
            if config.get("access.token.claim", "true") != "true" or not config.get("claim.name"):
                continue
            value = _typed(config.get("claim.value", ""), config.get("jsonType.label", "String"))
            _set_claim(claims, config["claim.name"], value)
        return claims

    def _audiences(self, client: dict[str, Any]) -> list[str]:
        mappers = list(client.get("protocolMappers", []))
        names = set(client.get("defaultClientScopes", []))
        mappers += [
            m for s in self.scopes.values() if s["name"] in names for m in s["protocolMappers"]
        ]
        return [
            m["config"].get("included.client.audience")
            or m["config"].get("included.custom.audience")
            for m in mappers
            if m.get("protocolMapper") == "oidc-audience-mapper"
        ]

    def project(self, *, seeding: bool = False) -> None:
        """Rebuild the OIDC stand-in's users and clients from the representations."""
        fake = self.fake
        clients: dict[str, Client] = {}
        for cid, rep in self.clients.items():
            if rep["clientId"] in _BUILTIN_CLIENTS:
                continue
            attributes = rep.get("attributes", {})
            previous = fake.clients.get(rep["clientId"])
            redirects = ["*"] if self.lenient_redirects else list(rep.get("redirectUris", []))
            logout_url = None if seeding else attributes.get("backchannel.logout.url")
            lightweight = attributes.get("client.use.lightweight.access.token.enabled")
            client = Client(
                client_id=rep["clientId"],
                secret=None if rep.get("publicClient") else rep.get("secret"),
                public=bool(rep.get("publicClient")),
                bearer_only=bool(rep.get("bearerOnly")),
                redirect_uris=redirects,
                lightweight=lightweight == "true",
                audiences=[a for a in self._audiences(rep) if a],
                service_accounts=bool(rep.get("serviceAccountsEnabled")),
                backchannel_logout_url=logout_url,
                hardcoded_claims=self._hardcoded(rep),
            )
            if previous is not None and not seeding and logout_url is None:
                client.backchannel_logout_url = previous.backchannel_logout_url
            if client.service_accounts:
                sa = self._service_account_id(cid)
                client.service_account_sub = sa
                roles = [
                    r for r in self.realm_mappings.get(sa, []) if not r.startswith("default-roles-")
                ]
                roles += [
                    f"{o}:{r}"
                    for o, names in self.client_mappings.get(sa, {}).items()
                    for r in names
                ]
                client.service_account_roles = roles
            clients[client.client_id] = client
        for name in self._projected_clients - set(clients):
            fake.clients.pop(name, None)
        fake.clients.update(clients)
        self._projected_clients = set(clients)
        users: dict[str, User] = {}
        for uid, rep in self.users.items():
            if "serviceAccountClientId" in rep:
                continue
            realm_roles = [
                r for r in self.realm_mappings.get(uid, []) if not r.startswith("default-roles-")
            ]
            user = User(
                username=rep["username"],
                password=self.passwords.get(uid) or secrets.token_urlsafe(24),
                sub=uid,
                email=rep.get("email"),
                first_name=rep.get("firstName"),
                last_name=rep.get("lastName"),
                realm_roles=realm_roles,
                client_roles={
                    k: list(v) for k, v in self.client_mappings.get(uid, {}).items() if v
                },
                attributes=self.claims_for(uid),
                enabled=bool(rep.get("enabled", True)),
            )
            users[user.username] = user
        for name in self._projected_users - set(users):
            fake.users.pop(name, None)
        fake.users.update(users)
        self._projected_users = set(users)


def _set_claim(claims: dict[str, Any], name: str, value: Any) -> None:
    """Set a claim; dots in the name nest objects, as Keycloak's mappers do."""
    target = claims
    *parents, leaf = name.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def _typed(value: str, label: str) -> Any:
    if label in ("long", "int"):
        return int(value)
    if label == "boolean":
        return value.lower() == "true"
    if label == "JSON":
        return json.loads(value)
    return value


# -- the master realm token endpoint ------------------------------------------------------------


def admin_token(fake: FakeKeycloak, req: Request) -> Response:
    """``POST /realms/master/protocol/openid-connect/token`` for admin logins."""
    store = fake.admin
    grant = req.param("grant_type")
    client_id = req.param("client_id") or ""
    ok = False
    if grant == "password" and client_id == "admin-cli":
        expected = store.admin_users.get((req.param("username") or "").lower())
        given = req.param("password") or ""
        ok = expected is not None and hmac.compare_digest(given.encode(), expected.encode())
        if not ok:
            return oauth_error(401, "invalid_grant", "Invalid user credentials")
    elif grant == "client_credentials":
        expected = store.admin_clients.get(client_id)
        given = req.param("client_secret") or ""
        ok = expected is not None and hmac.compare_digest(given.encode(), expected.encode())
        if not ok:
            return oauth_error(
                401, "unauthorized_client", "Invalid client or Invalid client credentials"
            )
    elif grant == "refresh_token":
        ok = (req.param("refresh_token") or "") in store.refresh_tokens
        if not ok:
            return oauth_error(400, "invalid_grant", "Token is not active")
    else:
        return oauth_error(400, "unsupported_grant_type", "Unsupported grant_type")
    access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    store.tokens.add(access)
    store.refresh_tokens.add(refresh)
    return Response.json(
        {
            "access_token": access,
            "expires_in": 60,
            "refresh_expires_in": 1800,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "session_state": str(uuid.uuid4()),
            "scope": "profile email",
        }
    )


# -- admin REST routes ----------------------------------------------------------------------

Route = Callable[["AdminStore", Request, dict[str, str]], Response]
_ROUTES: list[tuple[str, re.Pattern[str], Route]] = []


def _route(method: str, pattern: str) -> Callable[[Route], Route]:
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def register(handler: Route) -> Route:
        _ROUTES.append((method, regex, handler))
        return handler

    return register


def handle_admin(fake: FakeKeycloak, req: Request) -> Response:
    """Dispatch ``/admin/realms/...`` after checking the bearer token."""
    store = fake.admin
    token = req.bearer()
    if token is None or token not in store.tokens:
        return Response.json({"error": "HTTP 401 Unauthorized"}, 401)
    path = req.path.rstrip("/")
    if req.method != "GET":
        limit = store.fail_writes_after
        if limit is not None and len(store.writes) >= limit:
            return Response.json(OAUTH_SERVER_ERROR, 500)
        store.writes.append((req.method, path))
    if path == "/admin/realms":
        return _create_realm(store, req)
    prefix = f"/admin/realms/{fake.realm}"
    if not (path == prefix or path.startswith(prefix + "/")) or not store.exists:
        return _not_found("Realm not found.")
    rest = path[len(prefix) :]
    for method, regex, handler in _ROUTES:
        match = regex.match(rest)
        if match is not None and method == req.method:
            response = handler(store, req, match.groupdict())
            if req.method != "GET" and response.status < 300:
                store.project()
            return response
    return _not_found("HTTP 404 Not Found")


def _create_realm(store: AdminStore, req: Request) -> Response:
    rep = req.json()
    if rep.get("realm") != store.fake.realm:
        return Response.json({"errorMessage": "the stand-in serves one realm only"}, 400)
    if store.exists:
        return _conflict("Conflict detected. See logs for details")
    store.create_realm(rep)
    store.project()
    return _created(f"{store.fake.issuer_base}/admin/realms/{store.fake.realm}")


@_route("GET", "")
def _get_realm(store: AdminStore, req: Request, _: dict[str, str]) -> Response:
    return Response.json(dict(store.settings))


@_route("PUT", "")
def _put_realm(store: AdminStore, req: Request, _: dict[str, str]) -> Response:
    rep = req.json()
    store.settings |= {k: v for k, v in rep.items() if not isinstance(v, list) and k != "realm"}
    return Response.empty()


@_route("GET", "/users/profile")
def _get_profile(store: AdminStore, req: Request, _: dict[str, str]) -> Response:
    return Response.json(copy.deepcopy(store.profile))


@_route("PUT", "/users/profile")
def _put_profile(store: AdminStore, req: Request, _: dict[str, str]) -> Response:
    store.profile = req.json()
    return Response.json(copy.deepcopy(store.profile))


# realm roles


@_route("GET", "/roles")
def _list_roles(store: AdminStore, req: Request, _: dict[str, str]) -> Response:
    return Response.json(_page(list(store.roles.values()), req))


@_route("POST", "/roles")
def _create_role(store: AdminStore, req: Request, _: dict[str, str]) -> Response:
    rep = req.json()
    if rep["name"] in store.roles:
        return _conflict(f"Role with name {rep['name']} already exists")
    store._add_role(rep["name"], rep.get("description"))
    return _created(f"{req.path.rstrip('/')}/{rep['name']}")


@_route("GET", "/roles/{name}")
def _get_role(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    role = store.roles.get(p["name"])
    return _not_found("Could not find role") if role is None else Response.json(role)


@_route("PUT", "/roles/{name}")
def _put_role(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    role = store.roles.get(p["name"])
    if role is None:
        return _not_found("Could not find role")
    rep = req.json()
    if "description" in rep:
        role["description"] = rep["description"]
    return Response.empty()


@_route("DELETE", "/roles/{name}")
def _delete_role(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    if store.roles.pop(p["name"], None) is None:
        return _not_found("Could not find role")
    for mappings in store.realm_mappings.values():
        if p["name"] in mappings:
            mappings.remove(p["name"])
    return Response.empty()


@_route("GET", "/roles/{name}/composites")
def _get_composites(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    if p["name"] not in store.roles:
        return _not_found("Could not find role")
    names = store.composites.get(p["name"], [])
    return Response.json([store.roles[n] for n in names if n in store.roles])


@_route("POST", "/roles/{name}/composites")
def _add_composites(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    if p["name"] not in store.roles:
        return _not_found("Could not find role")
    by_id = {r["id"]: r for r in store.roles.values()}
    members = store.composites.setdefault(p["name"], [])
    for rep in req.json():
        role = by_id.get(rep.get("id", ""))
        if role is None:
            return _not_found("Could not find composite role")
        if role["name"] not in members:
            members.append(role["name"])
    store.roles[p["name"]]["composite"] = True
    return Response.empty()


# client scopes


@_route("GET", "/client-scopes")
def _list_scopes(store: AdminStore, req: Request, _: dict[str, str]) -> Response:
    return Response.json(list(store.scopes.values()))


@_route("POST", "/client-scopes")
def _create_scope(store: AdminStore, req: Request, _: dict[str, str]) -> Response:
    rep = req.json()
    if any(s["name"] == rep["name"] for s in store.scopes.values()):
        return _conflict(f"Client Scope {rep['name']} already exists")
    sid = str(uuid.uuid4())
    scope = copy.deepcopy(rep) | {"id": sid}
    scope["protocolMappers"] = [
        dict(m, id=str(uuid.uuid4())) for m in rep.get("protocolMappers", [])
    ]
    store.scopes[sid] = scope
    return _created(f"{req.path.rstrip('/')}/{sid}")


@_route("PUT", "/client-scopes/{sid}")
def _put_scope(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    scope = store.scopes.get(p["sid"])
    if scope is None:
        return _not_found("Could not find client scope")
    rep = req.json()
    scope |= {k: v for k, v in rep.items() if k not in ("id", "protocolMappers")}
    return Response.empty()


def _mapper_owner(store: AdminStore, p: dict[str, str]) -> dict[str, Any] | None:
    if "sid" in p:
        return store.scopes.get(p["sid"])
    return store.clients.get(p["cid"])


def _list_mappers(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    owner = _mapper_owner(store, p)
    if owner is None:
        return _not_found("Could not find client")
    return Response.json(owner["protocolMappers"])


def _add_mapper(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    owner = _mapper_owner(store, p)
    if owner is None:
        return _not_found("Could not find client")
    rep = req.json()
    if any(m["name"] == rep["name"] for m in owner["protocolMappers"]):
        return _conflict("Protocol mapper exists with same name")
    mid = str(uuid.uuid4())
    owner["protocolMappers"].append(dict(rep, id=mid))
    return _created(f"{req.path.rstrip('/')}/{mid}")


def _put_mapper(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    owner = _mapper_owner(store, p)
    found = (
        None
        if owner is None
        else next((m for m in owner["protocolMappers"] if m["id"] == p["mid"]), None)
    )
    if owner is None or found is None:
        return _not_found("Model not found")
    found.clear()
    found |= req.json() | {"id": p["mid"]}
    return Response.empty()


def _delete_mapper(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    owner = _mapper_owner(store, p)
    if owner is None or not any(m["id"] == p["mid"] for m in owner["protocolMappers"]):
        return _not_found("Model not found")
    owner["protocolMappers"] = [m for m in owner["protocolMappers"] if m["id"] != p["mid"]]
    return Response.empty()


for _prefix in ("/client-scopes/{sid}", "/clients/{cid}"):
    _route("GET", f"{_prefix}/protocol-mappers/models")(_list_mappers)
    _route("POST", f"{_prefix}/protocol-mappers/models")(_add_mapper)
    _route("PUT", f"{_prefix}/protocol-mappers/models/{{mid}}")(_put_mapper)
    _route("DELETE", f"{_prefix}/protocol-mappers/models/{{mid}}")(_delete_mapper)


# clients


@_route("GET", "/clients")
def _list_clients(store: AdminStore, req: Request, _: dict[str, str]) -> Response:
    wanted = req.param("clientId", source="query")
    found = [c for c in store.clients.values() if wanted is None or c["clientId"] == wanted]
    return Response.json(_page(copy.deepcopy(found), req))


@_route("POST", "/clients")
def _create_client(store: AdminStore, req: Request, _: dict[str, str]) -> Response:
    rep = req.json()
    if any(c["clientId"] == rep["clientId"] for c in store.clients.values()):
        return _conflict(f"Client {rep['clientId']} already exists")
    cid = store._add_client(rep)
    return _created(f"{req.path.rstrip('/')}/{cid}")


def _client(store: AdminStore, p: dict[str, str]) -> dict[str, Any] | None:
    return store.clients.get(p["cid"])


@_route("GET", "/clients/{cid}")
def _get_client(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    client = _client(store, p)
    return _not_found("Could not find client") if client is None else Response.json(client)


@_route("PUT", "/clients/{cid}")
def _put_client(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    client = _client(store, p)
    if client is None:
        return _not_found("Could not find client")
    rep = req.json()
    skip = ("id", "protocolMappers", "defaultClientScopes", "optionalClientScopes")
    client |= {k: v for k, v in rep.items() if k not in skip}
    if client.get("serviceAccountsEnabled"):
        store._service_account_id(p["cid"])
    return Response.empty()


@_route("DELETE", "/clients/{cid}")
def _delete_client(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    if store.clients.pop(p["cid"], None) is None:
        return _not_found("Could not find client")
    return Response.empty()


@_route("GET", "/clients/{cid}/client-secret")
def _get_secret(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    client = _client(store, p)
    if client is None:
        return _not_found("Could not find client")
    return Response.json({"type": "secret", "value": client.get("secret")})


@_route("POST", "/clients/{cid}/client-secret")
def _new_secret(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    client = _client(store, p)
    if client is None:
        return _not_found("Could not find client")
    client["secret"] = secrets.token_urlsafe(24)
    return Response.json({"type": "secret", "value": client["secret"]})


@_route("GET", "/clients/{cid}/roles")
def _list_client_roles(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    if _client(store, p) is None:
        return _not_found("Could not find client")
    return Response.json(_page(list(store.client_roles[p["cid"]].values()), req))


@_route("POST", "/clients/{cid}/roles")
def _create_client_role(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    if _client(store, p) is None:
        return _not_found("Could not find client")
    rep = req.json()
    if rep["name"] in store.client_roles[p["cid"]]:
        return _conflict(f"Role with name {rep['name']} already exists")
    store._add_client_role(p["cid"], rep)
    return _created(f"{req.path.rstrip('/')}/{rep['name']}")


@_route("GET", "/clients/{cid}/roles/{name}")
def _get_client_role(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    role = store.client_roles.get(p["cid"], {}).get(p["name"])
    return _not_found("Could not find role") if role is None else Response.json(role)


@_route("PUT", "/clients/{cid}/roles/{name}")
def _put_client_role(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    role = store.client_roles.get(p["cid"], {}).get(p["name"])
    if role is None:
        return _not_found("Could not find role")
    if "description" in (rep := req.json()):
        role["description"] = rep["description"]
    return Response.empty()


def _scope_links(kind: str) -> None:
    key = f"{kind}ClientScopes"

    def listing(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
        client = _client(store, p)
        if client is None:
            return _not_found("Could not find client")
        names = client.get(key, [])
        return Response.json(
            [
                {"id": s["id"], "name": s["name"]}
                for s in store.scopes.values()
                if s["name"] in names
            ]
        )

    def link(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
        client, scope = _client(store, p), store.scopes.get(p["sid"])
        if client is None or scope is None:
            return _not_found("Could not find client scope")
        if scope["name"] not in client.setdefault(key, []):
            client[key].append(scope["name"])
        return Response.empty()

    _route("GET", f"/clients/{{cid}}/{kind}-client-scopes")(listing)
    _route("PUT", f"/clients/{{cid}}/{kind}-client-scopes/{{sid}}")(link)


_scope_links("default")
_scope_links("optional")


@_route("GET", "/clients/{cid}/service-account-user")
def _service_account_user(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    client = _client(store, p)
    if client is None:
        return _not_found("Could not find client")
    if not client.get("serviceAccountsEnabled"):
        message = f"Service account not enabled for the client '{client['clientId']}'"
        return Response.json({"error": message}, 400)
    return Response.json(store.users[store._service_account_id(p["cid"])])


# users


@_route("GET", "/users")
def _list_users(store: AdminStore, req: Request, _: dict[str, str]) -> Response:
    wanted = req.param("username", source="query")
    exact = (req.param("exact", source="query") or "").lower() == "true"
    found = [
        u
        for u in store.users.values()
        if "serviceAccountClientId" not in u
        and (
            wanted is None
            or (u["username"] == wanted.lower() if exact else wanted.lower() in u["username"])
        )
    ]
    return Response.json(_page(copy.deepcopy(found), req))


@_route("POST", "/users")
def _create_user(store: AdminStore, req: Request, _: dict[str, str]) -> Response:
    rep = req.json()
    if store._user_by_name(rep.get("username", "")) is not None:
        return _conflict("User exists with same username")
    uid = store._add_user(rep)  # realmRoles / clientRoles in the body are ignored, as Keycloak does
    for credential in rep.get("credentials", []):
        store.passwords[uid] = credential["value"]
    return _created(f"{req.path.rstrip('/')}/{uid}")


@_route("GET", "/users/{uid}")
def _get_user(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    user = store.users.get(p["uid"])
    return _not_found("User not found") if user is None else Response.json(user)


@_route("PUT", "/users/{uid}")
def _put_user(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    user = store.users.get(p["uid"])
    if user is None:
        return _not_found("User not found")
    rep = req.json()
    kept = {k: user[k] for k in ("id", "createdTimestamp", "totp", "username") if k in user}
    replaced = {k: rep[k] for k in _USER_ROOT if k in rep and k != "username"}
    attributes = store._clean_attributes(rep.get("attributes") or {})
    user.clear()  # KC 24.0.4+: a PUT replaces the whole profile; omitted fields are cleared
    user |= kept | replaced | {"requiredActions": list(rep.get("requiredActions", []))}
    user.setdefault("enabled", True)
    if attributes:
        user["attributes"] = attributes
    return Response.empty()


@_route("PUT", "/users/{uid}/reset-password")
def _reset_password(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    if p["uid"] not in store.users:
        return _not_found("User not found")
    store.passwords[p["uid"]] = req.json()["value"]
    return Response.empty()


@_route("GET", "/users/{uid}/role-mappings/realm")
def _user_realm_roles(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    if p["uid"] not in store.users:
        return _not_found("User not found")
    names = store.realm_mappings.get(p["uid"], [])
    return Response.json([store.roles[n] for n in names if n in store.roles])


@_route("POST", "/users/{uid}/role-mappings/realm")
def _assign_realm_roles(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    if p["uid"] not in store.users:
        return _not_found("User not found")
    by_id = {r["id"]: r for r in store.roles.values()}
    mapped = store.realm_mappings.setdefault(p["uid"], [])
    for rep in req.json():
        role = by_id.get(rep.get("id", ""))
        if role is None:
            return _not_found("Could not find role")
        if role["name"] not in mapped:
            mapped.append(role["name"])
    return Response.empty()


@_route("GET", "/users/{uid}/role-mappings/clients/{cid}")
def _user_client_roles(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    client = _client(store, p)
    if p["uid"] not in store.users or client is None:
        return _not_found("User not found")
    names = store.client_mappings.get(p["uid"], {}).get(client["clientId"], [])
    roles = store.client_roles[p["cid"]]
    return Response.json([roles[n] for n in names if n in roles])


@_route("POST", "/users/{uid}/role-mappings/clients/{cid}")
def _assign_client_roles(store: AdminStore, req: Request, p: dict[str, str]) -> Response:
    client = _client(store, p)
    if p["uid"] not in store.users or client is None:
        return _not_found("User not found")
    by_id = {r["id"]: r for r in store.client_roles[p["cid"]].values()}
    mapped = store.client_mappings.setdefault(p["uid"], {}).setdefault(client["clientId"], [])
    for rep in req.json():
        role = by_id.get(rep.get("id", ""))
        if role is None:
            return _not_found("Could not find role")
        if role["name"] not in mapped:
            mapped.append(role["name"])
    return Response.empty()
