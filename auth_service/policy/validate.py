"""Checks on a rule that its field types alone cannot express, and rule normalisation.

``check_rule`` returns every problem of one rule as ``(field, message)`` pairs;
the field lets the loader point at the right line. Fields that already failed
type conversion are passed in ``skip`` so one mistake is not reported twice.
"""

import re

import msgspec

from auth_service.policy.model import Rule
from auth_service.policy.paths import parse_pattern, pattern_captures

Problem = tuple[str | None, str]

_CAPTURE_VALUE = re.compile(r"\{(.*)\}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HOST = re.compile(r"(\*\.)?([a-z0-9_-]+(\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\])")


def capture_name(value: object) -> str | None:
    """The capture name when a ``require_claims`` value is ``"{name}"``, else ``None``."""
    if isinstance(value, str) and (found := _CAPTURE_VALUE.fullmatch(value)):
        return found.group(1)
    return None


def normalize_rule(rule: Rule) -> Rule:
    """Lower-case hosts (dropping a trailing dot) and upper-case methods."""
    hosts = None if rule.hosts is None else tuple(h.lower().rstrip(".") for h in rule.hosts)
    methods = None if rule.methods is None else tuple(m.upper() for m in rule.methods)
    return msgspec.structs.replace(rule, hosts=hosts, methods=methods)


def _check_hosts(hosts: tuple[str, ...]) -> list[Problem]:
    if not hosts:
        return [("hosts", "hosts must not be empty (omit it to match any host)")]
    problems: list[Problem] = []
    for host in hosts:
        if not _HOST.fullmatch(host.lower().rstrip(".")):
            hint = " (ports are ignored; leave them out)" if ":" in host else ""
            problems.append(("hosts", f"invalid host {host!r}{hint}"))
    return problems


def _check_methods(methods: tuple[str, ...]) -> list[Problem]:
    if not methods:
        return [("methods", "methods must not be empty (omit it to match any method)")]
    problems: list[Problem] = []
    for method in methods:
        if method == "*":
            problems.append(("methods", "'*' is not a method; omit 'methods' to match any"))
        elif not _TOKEN.fullmatch(method):
            problems.append(("methods", f"invalid method {method!r}"))
    return problems


def _check_names(field: str, values: tuple[str, ...]) -> list[Problem]:
    if not values:
        return [(field, f"{field} must not be empty (omit it to require nothing)")]
    if any(not value for value in values):
        return [(field, f"{field} contains an empty name")]
    return []


def _check_client_roles(table: dict[str, tuple[str, ...]]) -> list[Problem]:
    field = "require_client_roles"
    if not table:
        return [(field, f"{field} must not be empty (omit it to require nothing)")]
    problems: list[Problem] = []
    for client, roles in table.items():
        if not client:
            problems.append((field, "client id must not be empty"))
        if not roles or any(not role for role in roles):
            problems.append((field, f"client {client!r} needs at least one non-empty role"))
    return problems


def _check_claims(rule: Rule, path_captures: list[tuple[str, frozenset[str]]]) -> list[Problem]:
    field = "require_claims"
    if not rule.require_claims:
        return [(field, f"{field} must not be empty (omit it to require nothing)")]
    problems: list[Problem] = []
    for claim, value in rule.require_claims.items():
        if any(not part for part in claim.split(".")):
            problems.append((field, f"invalid claim path {claim!r}"))
        name = capture_name(value)
        if name is None:
            continue
        if not _IDENTIFIER.fullmatch(name):
            problems.append((field, f"claim {claim!r}: invalid capture name {value!r}"))
            continue
        for pattern, captures in path_captures:
            if name not in captures:
                problems.append(
                    (
                        field,
                        f"claim {claim!r} uses {{{name}}} but path {pattern!r} does not capture it",
                    )
                )
    return problems


def check_rule(
    rule: Rule, *, present: frozenset[str] | None = None, skip: frozenset[str] = frozenset()
) -> list[Problem]:
    """Every problem of ``rule`` except in the fields named in ``skip``.

    ``present`` names the fields written in the file, so that an explicitly
    empty ``require_*`` is reported; by default only non-empty ones are checked.
    """
    given = frozenset(rule.requirements) if present is None else present
    checked = given - skip
    problems: list[Problem] = []
    path_captures: list[tuple[str, frozenset[str]]] = []
    if "paths" not in skip:
        for pattern in rule.paths:
            try:
                path_captures.append((pattern, pattern_captures(parse_pattern(pattern))))
            except ValueError as exc:
                problems.append(("paths", f"path {pattern!r}: {exc}"))
    if rule.hosts is not None and "hosts" not in skip:
        problems += _check_hosts(rule.hosts)
    if rule.methods is not None and "methods" not in skip:
        problems += _check_methods(rule.methods)
    if "require_roles" in checked:
        problems += _check_names("require_roles", rule.require_roles)
    if "require_client_roles" in checked:
        problems += _check_client_roles(rule.require_client_roles)
    if "require_scopes" in checked:
        problems += _check_names("require_scopes", rule.require_scopes)
    if "require_claims" in checked:
        problems += _check_claims(rule, path_captures)
    if rule.allow == "anonymous" and "allow" not in skip and rule.requirements:
        listed = ", ".join(rule.requirements)
        problems.append(
            (
                "allow",
                f'allow = "anonymous" contradicts {listed} (any require_* implies authenticated)',
            )
        )
    return problems
