"""Read the live realm through python-keycloak's async admin API, diff it against the desired
state, and build an ordered plan whose steps apply the differences.

Each step re-resolves ids when it runs (a client created by an earlier step gets its UUID then),
and every step is idempotent, so an interrupted ``apply`` is finished by running it again.
Dependency order: realm → user profile → realm roles → client scopes → clients (mappers, roles,
scopes, service-account roles) → composite roles → seed users.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from keycloak import KeycloakAdmin, KeycloakGetError

from .model import Client, ClientScope, DesiredState, Mapper, RealmRole, SeedUser
from .representation import (
    BUILTIN_PROFILE_ATTRIBUTES,
    client_rep,
    mapper_rep,
    profile_attribute_rep,
    realm_rep,
    role_rep,
    scope_rep,
    user_rep,
)

__all__ = ("Action", "FieldChange", "MissingObjectError", "Plan", "Step", "build_plan")

Action = Literal["create", "update", "delete", "unchanged"]
Run = Callable[[], Awaitable[None]]

_SET_LISTS = frozenset({"redirectUris", "webOrigins"})
"""Keycloak stores these as sets: order is not a difference."""
_BUILTIN_ROLES = ("offline_access", "uma_authorization")
_BUILTIN_CLIENTS = frozenset(
    {"account", "account-console", "admin-cli", "broker", "realm-management"}
    | {"security-admin-console"}
)
_READ_ONLY_USER = ("access", "userProfileMetadata", "createdTimestamp", "totp")


class MissingObjectError(Exception):
    """An object a step needs is not in Keycloak (e.g. a built-in scope this version lacks)."""


@dataclass(frozen=True)
class FieldChange:
    """One field that differs; ``secret`` fields never show their values."""

    path: str
    old: Any
    new: Any
    secret: bool = False


@dataclass
class Step:
    """One object of the realm and what ``apply`` does to it."""

    action: Action
    kind: str
    name: str
    changes: list[FieldChange] = field(default_factory=list)
    run: Run | None = None


@dataclass
class Plan:
    """The ordered steps; ``pending`` are those that write."""

    steps: list[Step] = field(default_factory=list)

    @property
    def pending(self) -> list[Step]:
        """Steps that change the realm."""
        return [s for s in self.steps if s.action != "unchanged"]

    def count(self, action: Action) -> int:
        """How many steps have this action."""
        return sum(1 for s in self.steps if s.action == action)


def diff(desired: Any, live: Any, path: str = "") -> list[FieldChange]:
    """Fields of ``desired`` whose live value differs; keys the file does not set are ignored."""
    if isinstance(desired, dict):
        live_map = live if isinstance(live, dict) else {}
        changes: list[FieldChange] = []
        for key, value in desired.items():
            changes += diff(value, live_map.get(key), f"{path}.{key}" if path else key)
        return changes
    if isinstance(live, list) and isinstance(desired, list) and path.split(".")[-1] in _SET_LISTS:
        same = sorted(map(str, desired)) == sorted(map(str, live))
    else:
        same = desired == live
    return [] if same else [FieldChange(path, live, desired)]


def _is_404(exc: KeycloakGetError) -> bool:
    return exc.response_code == 404


class _Planner:
    def __init__(
        self, admin: KeycloakAdmin, state: DesiredState, *, prune: bool, rotate: frozenset[str]
    ) -> None:
        self.admin = admin
        self.state = state
        self.prune = prune
        self.rotate = rotate
        self.plan = Plan()
        self.exists = True
        self._client_ids: dict[str, str] = {}
        self._scope_ids: dict[str, str] = {}

    # -- ids resolved when a step runs ----------------------------------------------------

    async def client_uuid(self, client_id: str) -> str:
        found = self._client_ids.get(client_id)
        if found is None:
            found = await self.admin.a_get_client_id(client_id)
            if found is None:
                raise MissingObjectError(f"client {client_id} does not exist in Keycloak")
            self._client_ids[client_id] = found
        return found

    async def scope_id(self, name: str) -> str:
        if name not in self._scope_ids:
            scopes = await self.admin.a_get_client_scopes()
            self._scope_ids = {s["name"]: s["id"] for s in scopes}
        if name not in self._scope_ids:
            raise MissingObjectError(f"client scope {name} does not exist in Keycloak")
        return self._scope_ids[name]

    async def role_reps(self, names: list[str]) -> list[dict[str, Any]]:
        return [await self.admin.a_get_realm_role(n) for n in names]

    async def client_role_reps(self, client_id: str, names: list[str]) -> list[dict[str, Any]]:
        uuid = await self.client_uuid(client_id)
        return [await self.admin.a_get_client_role(uuid, n) for n in names]

    def add(self, action: Action, kind: str, name: str, run: Run | None = None, **kw: Any) -> None:
        self.plan.steps.append(Step(action, kind, name, kw.get("changes", []), run))

    def compare(
        self, kind: str, name: str, desired: dict[str, Any], live: dict[str, Any] | None, run: Run
    ) -> None:
        """Add an update step when ``desired`` differs from ``live`` (``None``: create)."""
        if live is None:
            self.add("create", kind, name, run)
            return
        changes = diff(desired, live)
        self.add(
            "update" if changes else "unchanged",
            kind,
            name,
            run if changes else None,
            changes=changes,
        )

    # -- sections -------------------------------------------------------------------------

    async def realm(self) -> None:
        name = self.state.realm.name
        desired = realm_rep(self.state.realm)
        try:
            live: dict[str, Any] | None = await self.admin.a_get_realm(name)
        except KeycloakGetError as exc:
            if not _is_404(exc):
                raise
            live, self.exists = None, False

        async def create() -> None:
            await self.admin.a_create_realm(desired, skip_exists=True)

        async def update() -> None:
            await self.admin.a_update_realm(name, desired)

        self.compare("realm", name, desired, live, create if live is None else update)

    async def user_profile(self) -> None:
        profile = self.state.user_profile
        if not profile.attributes and profile.unmanaged_attribute_policy is None:
            return
        live = await self.admin.a_get_realm_users_profile() if self.exists else {}
        live_attrs = {a["name"]: a for a in live.get("attributes", BUILTIN_PROFILE_ATTRIBUTES)}
        changes: list[FieldChange] = []
        for attribute in profile.attributes:
            rep = profile_attribute_rep(attribute)
            if attribute.name not in live_attrs:
                changes.append(FieldChange(f"attributes.{attribute.name}", None, "(declared)"))
            else:
                changes += diff(rep, live_attrs[attribute.name], f"attributes.{attribute.name}")
        policy = profile.unmanaged_attribute_policy
        if policy != live.get("unmanagedAttributePolicy"):
            changes.append(
                FieldChange(
                    "unmanagedAttributePolicy", live.get("unmanagedAttributePolicy"), policy
                )
            )

        async def run() -> None:
            current = await self.admin.a_get_realm_users_profile()
            attrs = list(current.get("attributes", BUILTIN_PROFILE_ATTRIBUTES))
            for attribute in profile.attributes:
                rep = profile_attribute_rep(attribute)
                index = next((i for i, a in enumerate(attrs) if a["name"] == rep["name"]), None)
                if index is None:
                    attrs.append(rep)
                else:
                    attrs[index] = {**attrs[index], **rep}
            current["attributes"] = attrs
            if policy is None:
                current.pop("unmanagedAttributePolicy", None)
            else:
                current["unmanagedAttributePolicy"] = policy
            await self.admin.a_update_realm_users_profile(current)

        action: Action = "update" if changes else "unchanged"
        self.add(
            action, "user-profile", self.state.realm.name, run if changes else None, changes=changes
        )

    async def realm_roles(self) -> None:
        live = (
            {r["name"]: r for r in await self.admin.a_get_realm_roles(brief_representation=False)}
            if self.exists
            else {}
        )
        for role in self.state.realm_roles:
            self._realm_role(role, live.get(role.name))
        if self.prune:
            keep = {r.name for r in self.state.realm_roles} | set(_BUILTIN_ROLES)
            for name in sorted(set(live) - keep):
                if name.startswith("default-roles-"):
                    continue
                self.add("delete", "realm-role", name, self._deleter_realm_role(name))

    def _deleter_realm_role(self, name: str) -> Run:
        async def run() -> None:
            await self.admin.a_delete_realm_role(name)

        return run

    def _realm_role(self, role: RealmRole, live: dict[str, Any] | None) -> None:
        rep = role_rep(role)

        async def run() -> None:
            if live is None:
                await self.admin.a_create_realm_role(rep, skip_exists=True)
            else:
                await self.admin.a_update_realm_role(role.name, rep)

        self.compare("realm-role", role.name, rep, live, run)

    async def role_composites(self) -> None:
        for role in self.state.realm_roles:
            if not role.composites:
                continue
            live: list[str] = []
            if self.exists:
                try:
                    found = await self.admin.a_get_composite_realm_roles_of_role(role.name)
                    live = [r["name"] for r in found]
                except KeycloakGetError as exc:
                    if not _is_404(exc):
                        raise
            missing = [n for n in role.composites if n not in live]
            self._composite(role.name, missing)

    def _composite(self, name: str, missing: list[str]) -> None:
        async def run() -> None:
            reps = await self.role_reps(missing)
            await self.admin.a_add_composite_realm_roles_to_role(name, reps)

        changes = [FieldChange("composites", None, missing)] if missing else []
        self.add(
            "update" if missing else "unchanged",
            "role-composites",
            name,
            run if missing else None,
            changes=changes,
        )

    async def client_scopes(self) -> None:
        live = {s["name"]: s for s in await self.admin.a_get_client_scopes()} if self.exists else {}
        for scope in self.state.client_scopes:
            await self._scope(scope, live.get(scope.name))

    async def _scope(self, scope: ClientScope, live: dict[str, Any] | None) -> None:
        rep = scope_rep(scope)
        if live is None:

            async def create() -> None:
                await self.admin.a_create_client_scope(rep, skip_exists=True)

            self.add("create", "client-scope", scope.name, create)
            return
        scope_id = live["id"]
        bare = {k: v for k, v in rep.items() if k != "protocolMappers"}

        async def update() -> None:
            await self.admin.a_update_client_scope(scope_id, {**live, **bare})

        self.compare("client-scope", scope.name, bare, live, update)
        mappers = await self.admin.a_get_mappers_from_client_scope(scope_id)
        owner = f"client-scope {scope.name}"
        for mapper in scope.mappers:
            found = next((m for m in mappers if m["name"] == mapper.name), None)
            self._mapper(owner, mapper, found, scope_target=scope_id)

    def _mapper(
        self,
        owner: str,
        mapper: Mapper,
        live: dict[str, Any] | None,
        *,
        scope_target: str | None = None,
        client_id: str | None = None,
    ) -> None:
        rep = mapper_rep(mapper)

        async def run() -> None:
            if scope_target is not None:
                if live is None:
                    await self.admin.a_add_mapper_to_client_scope(scope_target, rep)
                else:
                    payload = {**rep, "id": live["id"]}
                    await self.admin.a_update_mapper_in_client_scope(
                        scope_target, live["id"], payload
                    )
                return
            assert client_id is not None
            uuid = await self.client_uuid(client_id)
            if live is None:
                await self.admin.a_add_mapper_to_client(uuid, rep)
            else:
                await self.admin.a_update_client_mapper(uuid, live["id"], {**rep, "id": live["id"]})

        self.compare("mapper", f"{owner} / {mapper.name}", rep, live, run)

    async def clients(self) -> None:
        live = {c["clientId"]: c for c in await self.admin.a_get_clients()} if self.exists else {}
        for client in self.state.clients:
            await self._client(client, live.get(client.client_id))
        if self.prune:
            keep = {c.client_id for c in self.state.clients} | _BUILTIN_CLIENTS
            for client_id in sorted(set(live) - keep):
                uuid = live[client_id]["id"]
                self.add("delete", "client", client_id, self._deleter_client(uuid))

    def _deleter_client(self, uuid: str) -> Run:
        async def run() -> None:
            await self.admin.a_delete_client(uuid)

        return run

    async def _client(self, client: Client, live: dict[str, Any] | None) -> None:
        rep = client_rep(client)
        custom = {s.name for s in self.state.client_scopes}
        cid = client.client_id
        if live is None:
            create_rep = dict(rep)
            for key in ("defaultClientScopes", "optionalClientScopes"):
                if key in create_rep:
                    create_rep[key] = [s for s in create_rep[key] if s not in custom]

            async def create() -> None:
                self._client_ids[cid] = await self.admin.a_create_client(create_rep)

            self.add("create", "client", cid, create)
            for role in client.roles:
                self._client_role(cid, role_rep(role), None)
            self._client_scope_links(cid, client, [], [], only=custom)
            self._service_account(client, [], {})
            return
        uuid = live["id"]
        self._client_ids[cid] = uuid
        managed = {
            k: v
            for k, v in rep.items()
            if k not in ("protocolMappers", "secret", "defaultClientScopes", "optionalClientScopes")
        }
        changes = diff(managed, live)
        if client.secret is not None:
            current = (await self.admin.a_get_client_secrets(uuid)).get("value") or ""
            if not hmac.compare_digest(str(current).encode(), client.secret.encode()):
                changes.append(FieldChange("secret", None, None, secret=True))

        async def update() -> None:
            body = {
                **managed,
                "attributes": {**live.get("attributes", {}), **rep.get("attributes", {})},
            }
            if client.secret is not None:
                body["secret"] = client.secret
            await self.admin.a_update_client(uuid, {**live, **body})

        self.add(
            "update" if changes else "unchanged",
            "client",
            cid,
            update if changes else None,
            changes=changes,
        )
        if cid in self.rotate:
            self.add(
                "update",
                "client-secret",
                cid,
                self._rotator(cid),
                changes=[FieldChange("secret", None, None, secret=True)],
            )
        mappers = await self.admin.a_get_mappers_from_client(uuid)
        for mapper in client.mappers:
            found = next((m for m in mappers if m["name"] == mapper.name), None)
            self._mapper(f"client {cid}", mapper, found, client_id=cid)
        if self.prune:
            wanted = {m.name for m in client.mappers}
            for found in mappers:
                if found["name"] not in wanted:
                    self.add(
                        "delete",
                        "mapper",
                        f"client {cid} / {found['name']}",
                        self._deleter_mapper(uuid, found["id"]),
                    )
        roles = {r["name"]: r for r in await self.admin.a_get_client_roles(uuid, False)}
        for role in client.roles:
            self._client_role(cid, role_rep(role), roles.get(role.name))
        if client.kind != "bearer-only":
            default = [s["name"] for s in await self.admin.a_get_client_default_client_scopes(uuid)]
            optional = [
                s["name"] for s in await self.admin.a_get_client_optional_client_scopes(uuid)
            ]
            self._client_scope_links(cid, client, default, optional)
        if client.service_accounts and not live.get("serviceAccountsEnabled"):
            self._service_account(client, [], {})  # enabled by the update above, then granted
        elif client.service_accounts:
            user = await self.admin.a_get_client_service_account_user(uuid)
            realm = [r["name"] for r in await self.admin.a_get_realm_roles_of_user(user["id"])]
            by_client: dict[str, list[str]] = {}
            for owner in client.service_account_roles.clients:
                owner_uuid = await self.client_uuid(owner) if self._known(owner) else None
                if owner_uuid is not None:
                    found_roles = await self.admin.a_get_client_roles_of_user(
                        user["id"], owner_uuid
                    )
                    by_client[owner] = [r["name"] for r in found_roles]
            self._service_account(client, realm, by_client)

    def _known(self, client_id: str) -> bool:
        return client_id in self._client_ids or client_id in _BUILTIN_CLIENTS

    def _rotator(self, client_id: str) -> Run:
        async def run() -> None:
            await self.admin.a_generate_client_secrets(await self.client_uuid(client_id))

        return run

    def _deleter_mapper(self, uuid: str, mapper_id: str) -> Run:
        async def run() -> None:
            await self.admin.a_remove_client_mapper(uuid, mapper_id)

        return run

    def _client_role(
        self, client_id: str, rep: dict[str, Any], live: dict[str, Any] | None
    ) -> None:
        async def run() -> None:
            uuid = await self.client_uuid(client_id)
            if live is None:
                await self.admin.a_create_client_role(uuid, rep, skip_exists=True)
            else:
                await self.admin.a_update_client_role(uuid, rep["name"], rep)

        self.compare("client-role", f"{client_id} / {rep['name']}", rep, live, run)

    def _client_scope_links(
        self,
        client_id: str,
        client: Client,
        default: list[str],
        optional: list[str],
        only: set[str] | None = None,
    ) -> None:
        wanted = [("default", s) for s in client.default_client_scopes if s not in default]
        wanted += [("optional", s) for s in client.optional_client_scopes if s not in optional]
        if only is not None:
            wanted = [(k, s) for k, s in wanted if s in only]
        if not wanted:
            return

        async def run() -> None:
            uuid = await self.client_uuid(client_id)
            realm = self.state.realm.name
            for kind, name in wanted:
                scope = await self.scope_id(name)
                body = {"realm": realm, "client": uuid, "clientScopeId": scope}
                if kind == "default":
                    await self.admin.a_add_client_default_client_scope(uuid, scope, body)
                else:
                    await self.admin.a_add_client_optional_client_scope(uuid, scope, body)

        changes = [FieldChange(f"{k}ClientScopes", None, s) for k, s in wanted]
        self.add("update", "client-scopes", client_id, run, changes=changes)

    def _service_account(
        self, client: Client, realm: list[str], by_client: dict[str, list[str]]
    ) -> None:
        grants = client.service_account_roles
        if not client.service_accounts or not (grants.realm or grants.clients):
            return
        missing_realm = [r for r in grants.realm if r not in realm]
        missing_client = {
            owner: [r for r in names if r not in by_client.get(owner, [])]
            for owner, names in grants.clients.items()
        }
        missing_client = {k: v for k, v in missing_client.items() if v}
        name = f"service-account-{client.client_id}"
        if not missing_realm and not missing_client:
            self.add("unchanged", "role-mapping", name)
            return

        async def run() -> None:
            uuid = await self.client_uuid(client.client_id)
            user = await self.admin.a_get_client_service_account_user(uuid)
            await self._assign(user["id"], missing_realm, missing_client)

        changes = [FieldChange("realm", None, missing_realm)] if missing_realm else []
        changes += [FieldChange(f"clients.{k}", None, v) for k, v in missing_client.items()]
        self.add("update", "role-mapping", name, run, changes=changes)

    async def _assign(self, user_id: str, realm: list[str], clients: dict[str, list[str]]) -> None:
        if realm:
            await self.admin.a_assign_realm_roles(user_id, await self.role_reps(realm))
        for owner, names in clients.items():
            uuid = await self.client_uuid(owner)
            await self.admin.a_assign_client_role(
                user_id, uuid, await self.client_role_reps(owner, names)
            )

    async def users(self) -> None:
        for user in self.state.users:
            user_id = await self.admin.a_get_user_id(user.username) if self.exists else None
            await self._user(user, user_id)

    async def _user(self, user: SeedUser, user_id: str | None) -> None:
        rep = user_rep(user)
        if user_id is None:

            async def create() -> None:
                new_id = await self.admin.a_get_user_id(user.username)
                if new_id is None:
                    # The password travels with the create, so no interruption can leave a
                    # user without one (a rerun only compares the profile, never the password).
                    payload = dict(rep)
                    if user.password is not None:
                        payload["credentials"] = [
                            {"type": "password", "value": user.password, "temporary": False}
                        ]
                    new_id = await self.admin.a_create_user(payload)
                await self._assign(new_id, user.realm_roles, user.client_roles)

            self.add("create", "user", user.username, create)
            return
        live = await self.admin.a_get_user(user_id)
        changes = diff(rep, live)

        async def update() -> None:
            current = await self.admin.a_get_user(user_id)
            body = {k: v for k, v in current.items() if k not in _READ_ONLY_USER}
            attributes = {**current.get("attributes", {}), **rep.get("attributes", {})}
            body |= rep | {"attributes": attributes}
            await self.admin.a_update_user(user_id, body)

        self.add(
            "update" if changes else "unchanged",
            "user",
            user.username,
            update if changes else None,
            changes=changes,
        )
        realm = [r["name"] for r in await self.admin.a_get_realm_roles_of_user(user_id)]
        missing_realm = [r for r in user.realm_roles if r not in realm]
        missing_client: dict[str, list[str]] = {}
        for owner, names in user.client_roles.items():
            uuid = await self.client_uuid(owner) if self._known(owner) else None
            have = (
                [r["name"] for r in await self.admin.a_get_client_roles_of_user(user_id, uuid)]
                if uuid is not None
                else []
            )
            if missing := [n for n in names if n not in have]:
                missing_client[owner] = missing
        if not missing_realm and not missing_client:
            self.add("unchanged", "role-mapping", user.username)
            return

        async def assign() -> None:
            await self._assign(user_id, missing_realm, missing_client)

        changes = [FieldChange("realm", None, missing_realm)] if missing_realm else []
        changes += [FieldChange(f"clients.{k}", None, v) for k, v in missing_client.items()]
        self.add("update", "role-mapping", user.username, assign, changes=changes)


async def build_plan(
    admin: KeycloakAdmin,
    state: DesiredState,
    *,
    prune: bool = False,
    rotate: frozenset[str] = frozenset(),
) -> Plan:
    """Read the live realm (``admin`` targets it) and return the plan that reconciles it."""
    planner = _Planner(admin, state, prune=prune, rotate=rotate)
    await planner.realm()
    await planner.user_profile()
    await planner.realm_roles()
    await planner.client_scopes()
    await planner.clients()
    await planner.role_composites()
    await planner.users()
    return planner.plan
