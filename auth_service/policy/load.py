"""Parsing and validating a policy file, reporting every problem at once.

msgspec stops at the first error of a Struct, so each field of each rule is
converted on its own and every failure is kept; cross-field checks then run on
what converted. Issues carry the rule name, its index and the file line, the
way ``auth-service policy check`` prints them.
"""

import difflib
import os
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import msgspec

from auth_service.policy.locations import SourceMap
from auth_service.policy.model import Defaults, Policy, PolicyError, PolicyIssue, Rule
from auth_service.policy.validate import check_rule, normalize_rule

_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)\s*$")
_MSGSPEC_PATH = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.DOTALL)
_TOP_LEVEL = ("defaults", "rules")

Convertible = type[Defaults] | type[Rule]


def _field_error(field: str, annotation: Any, value: object, exc: msgspec.ValidationError) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        options = ", ".join(repr(option) for option in typing.get_args(annotation))
        return f"{field} must be one of {options}, got {value!r}"
    if value == [] and "length >= 1" in str(exc):
        return f"{field} must not be empty"
    found = _MSGSPEC_PATH.match(str(exc))
    text, where = (found.group(1), found.group(2) or "") if found else (str(exc), "")
    where = where.replace("[...]", "")  # msgspec's marker for "some mapping value"
    return f"{field}{where}: {text[:1].lower()}{text[1:]}"


def _flatten_claims(value: object) -> object:
    # `{ org.site = "lab" }` is a nested table in TOML; it means the dotted path.
    if not isinstance(value, dict):
        return value
    flat: dict[str, object] = {}
    pending: list[tuple[str, object]] = list(value.items())
    while pending:
        path, item = pending.pop(0)
        if isinstance(item, dict) and item:
            pending[:0] = [(f"{path}.{key}", nested) for key, nested in item.items()]
        else:
            flat[path] = item
    return flat


def _convert_fields(
    cls: Convertible, raw: dict[str, Any]
) -> tuple[dict[str, Any], set[str], list[tuple[str | None, str]]]:
    """Convert each field on its own; return values, failed fields and problems."""
    fields = {field.name: field for field in msgspec.structs.fields(cls)}
    values: dict[str, Any] = {}
    failed: set[str] = set()
    problems: list[tuple[str | None, str]] = []
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append((key, f"unknown field {key!r}{hint}"))
    for name, field in fields.items():
        if name not in raw:
            if field.required:
                failed.add(name)
                problems.append((None, f"missing required field {name!r}"))
            continue
        value = _flatten_claims(raw[name]) if name == "require_claims" else raw[name]
        try:
            values[name] = msgspec.convert(value, field.type)
        except msgspec.ValidationError as exc:
            failed.add(name)
            problems.append((name, _field_error(name, field.type, value, exc)))
    return values, failed, problems


def _load_rule(index: int, raw: object, where: SourceMap, issues: list[PolicyIssue]) -> Rule | None:
    if not isinstance(raw, dict):
        line = where.rule_line(index)
        issues.append(PolicyIssue(message="a rule must be a table", index=index, line=line))
        return None
    name = raw.get("name")
    name = name if isinstance(name, str) and name else None
    values, failed, problems = _convert_fields(Rule, raw)
    # Placeholders stand in for failed required fields; Rule() does not validate,
    # and check_rule skips the failed fields.
    rule = Rule(**{"name": "", "paths": (), **values})
    problems += check_rule(rule, present=frozenset(raw), skip=frozenset(failed))
    for field, message in problems:
        line = where.rule_line(index, field)
        issues.append(PolicyIssue(message=message, rule=name, index=index, line=line))
    return None if problems else normalize_rule(rule)


def _load_defaults(raw: object, where: SourceMap, issues: list[PolicyIssue]) -> Defaults:
    if not isinstance(raw, dict):
        line = where.top_key_line("defaults")
        issues.append(PolicyIssue(message="[defaults] must be a table", line=line))
        return Defaults()
    values, _, problems = _convert_fields(Defaults, raw)
    for field, message in problems:
        line = where.table_key_line("defaults", field)
        issues.append(PolicyIssue(message=message, line=line))
    return Defaults(**values)


def _check_unique_names(raw_rules: list[Any], where: SourceMap) -> list[PolicyIssue]:
    first_seen: dict[str, int] = {}
    issues = []
    for index, raw in enumerate(raw_rules):
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str):
            continue
        if name not in first_seen:
            first_seen[name] = index
            continue
        earlier = where.rule_line(first_seen[name])
        at = f" (first defined at line {earlier})" if earlier is not None else ""
        message = f"duplicate rule name {name!r}{at}"
        line = where.rule_line(index, "name")
        issues.append(PolicyIssue(message=message, rule=name, index=index, line=line))
    return issues


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate a policy; ``PolicyError`` lists every problem found."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_POSITION.search(str(exc))
        message = _TOML_POSITION.sub("", str(exc))
        if found is None:
            line = None
        elif found.group(1) is None:
            line = max(len(text.splitlines()), 1)  # "at end of document"
        else:
            line = int(found.group(1))
        raise PolicyError(
            [PolicyIssue(message=f"TOML syntax: {message}", line=line)], source
        ) from None
    where = SourceMap(text)
    issues: list[PolicyIssue] = []
    for key in data:
        if key not in _TOP_LEVEL:
            line = where.top_key_line(key)
            issues.append(PolicyIssue(message=f"unknown top-level key {key!r}", line=line))
    defaults = _load_defaults(data.get("defaults", {}), where, issues)
    raw_rules = data.get("rules", [])
    rules: list[Rule] = []
    if not isinstance(raw_rules, list):
        line = where.top_key_line("rules")
        issues.append(PolicyIssue(message="rules must be an array of tables", line=line))
        raw_rules = []
    for index, raw in enumerate(raw_rules):
        rule = _load_rule(index, raw, where, issues)
        if rule is not None:
            rules.append(rule)
    issues += _check_unique_names(raw_rules, where)
    if issues:
        issues.sort(key=lambda issue: (issue.line is None, issue.line or 0))
        raise PolicyError(issues, source)
    return Policy(defaults=defaults, rules=tuple(rules))


def load_policy_file(path: str | os.PathLike[str]) -> Policy:
    """Read and parse a UTF-8 policy file; ``OSError`` when it cannot be read."""
    source = os.fspath(path)
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        issue = PolicyIssue(message=f"not valid UTF-8 (byte {exc.start})")
        raise PolicyError([issue], source) from None
    return parse_policy(text, source)
