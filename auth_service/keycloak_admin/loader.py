"""Load a desired-state file: TOML, an optional ``base`` it overlays, ``${VAR:default}``
placeholders, and validation that reports every error with its location."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from .model import (
    Client,
    ClientScope,
    DesiredState,
    Mapper,
    Realm,
    RealmRole,
    SeedUser,
    UserProfile,
)

__all__ = ("PLACEHOLDER", "DesiredStateError", "load_desired_state", "substitute")

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
"""``${NAME}`` or ``${NAME:default}`` (Keycloak's import understands the same spelling)."""

_NAMED_LISTS = {
    "realm_roles": "name",
    "client_scopes": "name",
    "clients": "client_id",
    "users": "username",
}
"""Top-level lists whose items an overlay merges by this key."""

_BUILTIN_SCOPES = frozenset(
    {"basic", "web-origins", "acr", "profile", "roles", "email", "offline_access", "address"}
    | {"phone", "microprofile-jwt", "organization", "service_account"}
)
_BUILTIN_CLIENTS = frozenset({"realm-management", "account", "broker", "admin-cli"})
_BUILTIN_PROFILE = frozenset({"username", "email", "firstName", "lastName"})


class DesiredStateError(Exception):
    """The file cannot be used; ``errors`` lists every problem as
    ``"<file>[:<line>]: <key path>: <message>"``."""

    def __init__(self, path: Path, errors: list[str]) -> None:
        super().__init__(f"{path}: {len(errors)} error(s)")
        self.path = path
        self.errors = errors


def _merge(base: Any, over: Any) -> Any:
    """Overlay ``over`` on ``base``: tables merge key by key, lists and scalars replace."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return over


def _merge_named(base: list[Any], over: list[Any], key: str) -> list[Any]:
    merged = list(base)
    for item in over:
        name = item.get(key) if isinstance(item, dict) else None
        index = next(
            (i for i, b in enumerate(merged) if isinstance(b, dict) and b.get(key) == name), None
        )
        if name is None or index is None:
            merged.append(item)
        else:
            merged[index] = _merge(merged[index], item)
    return merged


def _read(
    path: Path, errors: list[str], seen: tuple[Path, ...] = (), files: list[Path] | None = None
) -> dict[str, Any]:
    if files is not None:
        files.append(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        errors.append(f"{path}: cannot read: {exc.strerror or exc}")
        return {}
    except tomllib.TOMLDecodeError as exc:
        errors.append(f"{path}: not valid TOML: {exc}")
        return {}
    base_name = raw.pop("base", None)
    if base_name is None:
        return raw
    if not isinstance(base_name, str):
        errors.append(f"{path}: base: expected a file name, got {type(base_name).__name__}")
        return raw
    base_path = (path.parent / base_name).resolve()
    if base_path in seen:
        errors.append(f"{path}: base: {base_name} includes itself")
        return raw
    base = _read(base_path, errors, (*seen, path.resolve()), files)
    merged = dict(base)
    for key, value in raw.items():
        if key in _NAMED_LISTS and isinstance(value, list) and isinstance(base.get(key), list):
            merged[key] = _merge_named(base[key], value, _NAMED_LISTS[key])
        elif key in base:
            merged[key] = _merge(base[key], value)
        else:
            merged[key] = value
    return merged


def substitute(
    value: Any, env: Mapping[str, str] | None, errors: list[str], where: str = "$"
) -> Any:
    """Replace placeholders in every string from ``env`` (``None``: keep them as written)."""
    if isinstance(value, dict):
        return {k: substitute(v, env, errors, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, env, errors, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or env is None:
        return value

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        if found is not None and found != "":
            return found
        if default is not None:
            return default
        errors.append(f"{where}: environment variable {name} is not set and has no default")
        return ""

    return PLACEHOLDER.sub(one, value)


_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]+)`")


def _located(where: str, exc: msgspec.ValidationError) -> str:
    """msgspec's ``... - at `$.a.b``` as ``<where>.a.b: ...`` (an unknown field joins the path)."""
    text, path = str(exc), ""
    if " - at `$" in text:
        text, _, path = text.rpartition(" - at `$")
        path = path.rstrip("`")
    unknown = _UNKNOWN.match(text)
    if unknown is not None:
        path = f"{path}.{unknown.group(1)}"
    return f"{where}{path}: {text}"


def _convert(raw: Any, kind: type[Any], where: str, errors: list[str]) -> Any:
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        errors.append(_located(where, exc))
        return None


def _label(item: Any, key: str, where: str) -> str:
    name = item.get(key) if isinstance(item, dict) else None
    return f"{where} ({name})" if isinstance(name, str) else where


def _check_mapper(mapper: Mapper, where: str, state: DesiredState, errors: list[str]) -> None:
    need = {
        "user-attribute": ("attribute", "claim"),
        "user-property": ("attribute", "claim"),
        "audience": ("audience",),
        "hardcoded-claim": ("claim", "value"),
        "group-membership": ("claim",),
    }[mapper.type]
    for name in need:
        if getattr(mapper, name) is None:
            errors.append(f"{where}.{name}: required for a {mapper.type} mapper")
    declared = {a.name for a in state.user_profile.attributes} | _BUILTIN_PROFILE
    attribute = mapper.attribute
    if mapper.type == "user-attribute" and attribute is not None and attribute not in declared:
        errors.append(
            f"{where}.attribute: {attribute!r} is not declared in user_profile"
            " (Keycloak 24+ stores no undeclared attribute, so the claim would be missing)"
        )
    audience = mapper.audience
    known = audience is None or audience in _BUILTIN_CLIENTS or state.client(audience) is not None
    if mapper.type == "audience" and not known:
        errors.append(f"{where}.audience: no client {audience!r} in the file")


def _check(state: DesiredState, errors: list[str]) -> None:
    """Cross-references: names unique, roles, scopes, clients and attributes exist."""
    roles = {r.name for r in state.realm_roles}
    for section, key in _NAMED_LISTS.items():
        names = [getattr(item, key) for item in getattr(state, section)]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            errors.append(f"{section}: {dup!r} is declared more than once")
    for i, role in enumerate(state.realm_roles):
        for name in role.composites:
            if name not in roles:
                errors.append(f"realm_roles[{i}] ({role.name}).composites: no realm role {name!r}")
    scopes = {s.name for s in state.client_scopes} | _BUILTIN_SCOPES
    for i, scope in enumerate(state.client_scopes):
        for j, mapper in enumerate(scope.mappers):
            where = f"client_scopes[{i}] ({scope.name}).mappers[{j}] ({mapper.name})"
            _check_mapper(mapper, where, state, errors)

    def client_roles_exist(grants: dict[str, list[str]], where: str) -> None:
        for client_id, names in grants.items():
            owner = state.client(client_id)
            if owner is None:
                if client_id not in _BUILTIN_CLIENTS:
                    errors.append(f"{where}.{client_id}: no client {client_id!r} in the file")
                continue
            own = {r.name for r in owner.roles}
            for name in names:
                if name not in own:
                    errors.append(f"{where}.{client_id}: client {client_id} has no role {name!r}")

    for i, client in enumerate(state.clients):
        here = f"clients[{i}] ({client.client_id})"
        if client.kind == "public" and client.secret is not None:
            errors.append(f"{here}.secret: a {client.kind} client has no secret")
        if client.kind == "public" and client.service_accounts:
            errors.append(f"{here}.service_accounts: a public client has no service account")
        for name in [*client.default_client_scopes, *client.optional_client_scopes]:
            if name not in scopes:
                errors.append(f"{here}: no client scope {name!r}")
        for j, mapper in enumerate(client.mappers):
            _check_mapper(mapper, f"{here}.mappers[{j}] ({mapper.name})", state, errors)
        grants = client.service_account_roles
        if (grants.realm or grants.clients) and not client.service_accounts:
            errors.append(f"{here}.service_account_roles: service_accounts is false")
        for name in grants.realm:
            if name not in roles:
                errors.append(f"{here}.service_account_roles.realm: no realm role {name!r}")
        client_roles_exist(grants.clients, f"{here}.service_account_roles.clients")
    declared = {a.name for a in state.user_profile.attributes}
    for i, user in enumerate(state.users):
        here = f"users[{i}] ({user.username})"
        for name in user.realm_roles:
            if name not in roles:
                errors.append(f"{here}.realm_roles: no realm role {name!r}")
        client_roles_exist(user.client_roles, f"{here}.client_roles")
        for name in user.attributes:
            if name not in declared:
                errors.append(
                    f"{here}.attributes.{name}: not declared in user_profile"
                    " (Keycloak would drop it silently)"
                )


_SEGMENT = re.compile(r"([A-Za-z_][\w-]*)(?:\[\d+\](?: \(([^)]*)\))?)?")


def _patterns(error: str) -> list[re.Pattern[str]]:
    """One line pattern per segment of the error's key path, e.g. ``clients[1] (web)`` →
    ``client_id = "web"``, ``mappers[0] (tenant)`` → ``name = "tenant"``, ``tokens`` → a
    ``[...tokens]`` header or a ``tokens =`` key."""
    path = error.partition(": ")[0]
    patterns: list[re.Pattern[str]] = []
    for depth, match in enumerate(_SEGMENT.finditer(path)):
        name, label = match.group(1), match.group(2)
        if label is not None:
            key = _NAMED_LISTS.get(name, "name") if depth == 0 else "name"
            patterns.append(re.compile(rf'^\s*{key}\s*=\s*"{re.escape(label)}"'))
        else:
            word = re.escape(name)
            patterns.append(re.compile(rf"^\s*(\[+([\w.-]*\.)?{word}\]+|{word}\s*=)"))
    return patterns


def _line_of(error: str, files: list[Path]) -> str:
    """``file:line`` of what an error is about: each segment of its key path is searched
    after the previous one's line, in each file of the overlay chain (the top file alone when
    not even the first segment is found)."""
    patterns = _patterns(error)
    best: tuple[int, str] = (0, str(files[0]))
    for path in files:  # the overlay first; the file matching most segments wins
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        start, matched = 0, 0
        for pattern in patterns:
            found = next((n for n in range(start, len(lines)) if pattern.match(lines[n])), None)
            if found is None:
                break
            start, matched = found + 1, matched + 1
        if matched > best[0]:
            best = (matched, f"{path}:{start}")
    return best[1]


def _fail(path: Path, errors: list[str], files: list[Path]) -> DesiredStateError:
    return DesiredStateError(path, [f"{_line_of(e, files)}: {e}" for e in errors])


def load_desired_state(path: Path, env: Mapping[str, str] | None) -> DesiredState:
    """Read, overlay, substitute (``env=None`` keeps placeholders) and validate ``path``.

    Raises ``DesiredStateError`` listing every error found, each with its location.
    """
    errors: list[str] = []
    files: list[Path] = []
    raw = _read(path, errors, files=files)
    if errors:
        raise DesiredStateError(path, errors)  # these name their file already
    raw = substitute(raw, env, errors)
    sections: dict[str, Any] = {}
    if "realm" not in raw:
        errors.append("realm: required table is missing")
    else:
        sections["realm"] = _convert(raw["realm"], Realm, "realm", errors)
    if "user_profile" in raw:
        sections["user_profile"] = _convert(
            raw["user_profile"], UserProfile, "user_profile", errors
        )
    kinds: dict[str, type[Any]] = {
        "realm_roles": RealmRole,
        "client_scopes": ClientScope,
        "clients": Client,
        "users": SeedUser,
    }
    for section, kind in kinds.items():
        items = raw.get(section, [])
        if not isinstance(items, list):
            errors.append(f"{section}: expected an array of tables")
            continue
        key = _NAMED_LISTS[section]
        sections[section] = [
            _convert(item, kind, _label(item, key, f"{section}[{i}]"), errors)
            for i, item in enumerate(items)
        ]
    for extra in sorted(set(raw) - {"realm", "user_profile", *kinds}):
        errors.append(f"{extra}: unknown section")
    if errors:
        raise _fail(path, errors, files)
    state = DesiredState(**sections)
    _check(state, errors)
    if errors:
        raise _fail(path, errors, files)
    return state
