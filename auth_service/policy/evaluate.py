"""Deciding one matched request: the subject protocol, decisions, rule requirements.

Pure and allocation-light: each compiled rule builds its possible decisions
once, so ``decide`` returns a shared frozen object. Requirements are checked
in a fixed order (roles, client roles, scopes, claims, then MFA) so the reason
reported for a request that fails several is stable.
"""

from collections.abc import Mapping
from typing import Final, Literal, Protocol

import msgspec

from auth_service.policy.model import AuditMode, ClaimValue, Rule
from auth_service.policy.validate import capture_name
from auth_service.verifier.tokens import MISSING

Outcome = Literal["allow", "deny", "unauthenticated", "mfa_required"]
Reason = Literal[
    "no_matching_rule",
    "missing_role",
    "missing_client_role",
    "missing_scope",
    "claim_mismatch",
    "mfa_required",
    "authentication_required",
    "invalid_path",
    "ambiguous_path",
]
MUTATING_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""Methods that ``audit = "mutations"`` audits when allowed."""


class Subject(Protocol):
    """What the policy needs to know about an authenticated caller."""

    @property
    def realm_roles(self) -> frozenset[str]:
        """Realm roles (``realm_access.roles``)."""

    @property
    def client_roles(self) -> Mapping[str, frozenset[str]]:
        """Client id to that client's roles (``resource_access``)."""

    @property
    def scopes(self) -> frozenset[str]:
        """Scopes from the space-separated ``scope`` claim."""

    def claim(self, path: str) -> object:
        """Value at a dotted claim path, or ``MISSING``."""


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The policy's answer for one request."""

    outcome: Outcome
    """``allow``, ``deny`` (answer ``status``), ``unauthenticated`` or ``mfa_required``."""
    rule: str | None
    """Name of the deciding rule; ``None`` when no rule matched or the path was invalid."""
    reason: Reason | None
    """Machine-readable reason for anything but ``allow``."""
    status: int
    """HTTP status for this outcome: 200, 400, 401, 403 or the configured deny status."""
    audit: AuditMode = "denials"
    """The deciding rule's audit mode."""
    anonymous: bool = False
    """Allowed by an anonymous rule: the gateway gets no identity headers."""

    def audited(self, method: str) -> bool:
        """Whether this decision becomes an audit event (every non-allow does)."""
        if self.outcome != "allow":
            return True
        return self.audit == "all" or (self.audit == "mutations" and method in MUTATING_METHODS)


INVALID_PATH: Final = Decision(outcome="deny", rule=None, reason="invalid_path", status=400)
"""Decision for a request whose path does not decode (``canonical_path`` refused it)."""
AMBIGUOUS_PATH: Final = Decision(outcome="deny", rule=None, reason="ambiguous_path", status=400)
"""Decision for a request whose path upstream servers would read in different ways."""


def _scalar_equal(actual: object, required: ClaimValue, *, as_string: bool) -> bool:
    if as_string:
        if isinstance(actual, bool):
            return False
        return isinstance(actual, str | int) and str(actual) == required
    if isinstance(required, bool) or isinstance(actual, bool):
        return type(actual) is type(required) and actual == required
    if isinstance(required, str):
        return isinstance(actual, str) and actual == required
    return isinstance(actual, int | float) and actual == required


def claim_matches(actual: object, required: ClaimValue, *, as_string: bool = False) -> bool:
    """Whether a claim value satisfies a requirement; a list matches when it contains it.

    Captured segments compare ``as_string`` (an integer claim ``42`` matches
    ``"42"``); literals compare type-aware (``true`` is not ``1``, ``"1"`` is not ``1``).
    """
    if actual is MISSING:
        return False
    if isinstance(actual, list | tuple):
        return any(_scalar_equal(item, required, as_string=as_string) for item in actual)
    return _scalar_equal(actual, required, as_string=as_string)


def needed_claims(rule: Rule) -> frozenset[str]:
    """Top-level claim names ``rule``'s ``require_claims`` reads."""
    return frozenset(path.split(".", 1)[0] for path in rule.require_claims)


class CompiledRule:
    """A rule with its host and method sets and its decisions built in advance."""

    __slots__ = (
        "claims",
        "client_roles",
        "decisions",
        "exact_hosts",
        "host_suffixes",
        "index",
        "methods",
        "roles",
        "rule",
        "scopes",
    )

    def __init__(self, index: int, rule: Rule) -> None:
        self.index = index
        self.rule = rule
        self.methods = None if rule.methods is None else frozenset(rule.methods)
        hosts = rule.hosts or ()
        self.exact_hosts = (
            None if rule.hosts is None else frozenset(h for h in hosts if h[:2] != "*.")
        )
        self.host_suffixes = frozenset(h[1:] for h in hosts if h[:2] == "*.")
        self.roles = frozenset(rule.require_roles)
        self.client_roles = tuple((c, frozenset(r)) for c, r in rule.require_client_roles.items())
        self.scopes = frozenset(rule.require_scopes)
        self.claims = tuple(
            (path, capture_name(value), value) for path, value in rule.require_claims.items()
        )
        anonymous = rule.allow == "anonymous"
        self.decisions: dict[str, Decision] = {
            "allow": Decision(
                outcome="allow",
                rule=rule.name,
                reason=None,
                status=200,
                audit=rule.audit,
                anonymous=anonymous,
            ),
            "authentication_required": Decision(
                outcome="unauthenticated",
                rule=rule.name,
                reason="authentication_required",
                status=401,
                audit=rule.audit,
            ),
            "mfa_required": Decision(
                outcome="mfa_required",
                rule=rule.name,
                reason="mfa_required",
                status=401,
                audit=rule.audit,
            ),
        }
        for reason in ("missing_role", "missing_client_role", "missing_scope", "claim_mismatch"):
            self.decisions[reason] = Decision(
                outcome="deny", rule=rule.name, reason=reason, status=403, audit=rule.audit
            )

    def accepts(self, method: str, host: str) -> bool:
        """Whether the (normalised) method and host are ones this rule covers."""
        if self.methods is not None and method not in self.methods:
            return False
        if self.exact_hosts is None or host in self.exact_hosts:
            return True
        dot = host.find(".")
        while dot != -1:
            if host[dot:] in self.host_suffixes:
                return True
            dot = host.find(".", dot + 1)
        return False

    def decide(
        self, captures: Mapping[str, str], subject: Subject | None, mfa_done: bool
    ) -> Decision:
        """Apply the rule's requirements to ``subject``."""
        decisions = self.decisions
        if self.rule.allow == "anonymous":
            return decisions["allow"]
        if subject is None:
            return decisions["authentication_required"]
        if self.roles and self.roles.isdisjoint(subject.realm_roles):
            return decisions["missing_role"]
        if self.client_roles:
            held = subject.client_roles
            if all(roles.isdisjoint(held.get(client, ())) for client, roles in self.client_roles):
                return decisions["missing_client_role"]
        if self.scopes and not self.scopes <= subject.scopes:
            return decisions["missing_scope"]
        for path, capture, value in self.claims:
            if capture is None:
                ok = claim_matches(subject.claim(path), value)
            else:
                captured = captures.get(capture)
                ok = captured is not None and claim_matches(
                    subject.claim(path), captured, as_string=True
                )
            if not ok:
                return decisions["claim_mismatch"]
        if self.rule.require_mfa and not mfa_done:
            return decisions["mfa_required"]
        return decisions["allow"]
