"""Deciding matched requests: outcomes, reasons, statuses, claims and audit modes."""

import msgspec
import pytest

from auth_service.policy import (
    AMBIGUOUS_PATH,
    INVALID_PATH,
    MISSING,
    Decision,
    claim_matches,
    needed_claims,
)
from auth_service.verifier import MISSING as VERIFIER_MISSING
from auth_service.verifier.tokens import claim_at

from .samples import CONTRACT_POLICY, ORDERS_WRITER, FakeSubject, compiled, evaluate, rules

CONTRACT = compiled(CONTRACT_POLICY)


def decide(
    method: str, path: str, subject: FakeSubject | None, *, mfa_done: bool = False
) -> Decision:
    """Decide a request against the CONTRACT example policy."""
    return evaluate(CONTRACT, method, "api.example.test", path, subject, mfa_done=mfa_done)


def test_no_match_without_credentials_is_unauthenticated() -> None:
    """No rule and no credentials: the caller answers 401 or the login redirect."""
    assert decide("GET", "/nothing", None) == Decision(
        outcome="unauthenticated", rule=None, reason="authentication_required", status=401
    )


@pytest.mark.parametrize("status", [401, 403, 404])
def test_no_match_with_credentials_uses_deny_status(status: int) -> None:
    """An authenticated request that no rule matches gets defaults.deny_status."""
    policy = compiled(rules('name = "r"\npaths = ["/x"]', defaults=f"deny_status = {status}"))
    decision = evaluate(policy, "GET", "h", "/y", FakeSubject(), mfa_done=True)
    assert decision == Decision(outcome="deny", rule=None, reason="no_matching_rule", status=status)
    assert decision.audit == "denials"


@pytest.mark.parametrize("subject", [None, FakeSubject()])
def test_anonymous_rule_allows_with_or_without_subject(subject: FakeSubject | None) -> None:
    """An anonymous rule allows and flags the decision as anonymous."""
    assert decide("GET", "/healthz", subject) == Decision(
        outcome="allow", rule="public health", reason=None, status=200, anonymous=True
    )


def test_authenticated_rule_without_subject_is_unauthenticated() -> None:
    """A matching authenticated rule with no credentials names the rule."""
    decision = decide("POST", "/orders/1", None)
    assert (decision.outcome, decision.rule, decision.status) == (
        "unauthenticated",
        "orders writes",
        401,
    )
    assert decision.reason == "authentication_required"


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        (FakeSubject(), "missing_role"),
        (FakeSubject(realm_roles=frozenset({"other"})), "missing_role"),
        (FakeSubject(realm_roles=frozenset({"orders-writer"})), "missing_client_role"),
        (
            FakeSubject(
                realm_roles=frozenset({"orders-writer"}),
                client_roles={"other-api": frozenset({"write"}), "orders-api": frozenset({"read"})},
            ),
            "missing_client_role",
        ),
        (
            FakeSubject(
                realm_roles=frozenset({"orders-writer"}),
                client_roles={"orders-api": frozenset({"write"})},
                scopes=frozenset({"openid"}),
            ),
            "missing_scope",
        ),
    ],
)
def test_requirements_are_checked_in_order(subject: FakeSubject, reason: str) -> None:
    """Roles, then client roles, then scopes: the first unmet one is the reason (403)."""
    decision = decide("POST", "/orders/1", subject, mfa_done=True)
    assert (decision.outcome, decision.reason, decision.status) == ("deny", reason, 403)
    assert decision.rule == "orders writes"
    assert decision.audit == "mutations"


@pytest.mark.parametrize(("mfa_done", "outcome"), [(False, "mfa_required"), (True, "allow")])
def test_mfa_is_checked_after_everything_else(mfa_done: bool, outcome: str) -> None:
    """A subject meeting every requirement still needs MFA when the rule asks for it."""
    decision = decide("POST", "/orders/1", ORDERS_WRITER, mfa_done=mfa_done)
    assert decision.outcome == outcome
    assert decision.status == (200 if mfa_done else 401)
    assert decision.anonymous is False


def test_failed_requirement_wins_over_missing_mfa() -> None:
    """Without MFA and without the role, the answer is the 403, not an MFA prompt."""
    assert decide("POST", "/orders/1", FakeSubject()).reason == "missing_role"


@pytest.mark.parametrize(
    ("claims", "outcome"),
    [
        ({"tenant_id": "acme"}, "allow"),
        ({"tenant_id": "other"}, "deny"),
        ({"tenant_id": ["other", "acme"]}, "allow"),
        ({"tenant_id": []}, "deny"),
        ({}, "deny"),
        ({"tenant_id": None}, "deny"),
        ({"tenant_id": {"acme": 1}}, "deny"),
    ],
)
def test_capture_claims(claims: dict[str, object], outcome: str) -> None:
    """The claim must equal (or, as a list, contain) the captured segment."""
    decision = decide("GET", "/tenants/acme/orders", FakeSubject(claims=claims))
    assert decision.outcome == outcome
    if outcome == "deny":
        assert (decision.reason, decision.status) == ("claim_mismatch", 403)


@pytest.mark.parametrize(
    ("claim", "outcome"),
    [(42, "allow"), ("42", "allow"), ([41, 42], "allow"), (True, "deny"), (42.5, "deny")],
)
def test_captures_compare_as_strings(claim: object, outcome: str) -> None:
    """An integer claim matches its decimal form in the path; booleans never do."""
    decision = decide("GET", "/tenants/42", FakeSubject(claims={"tenant_id": claim}))
    assert decision.outcome == outcome


LITERALS = compiled(
    rules(
        'name = "lab"\npaths = ["/lab/**"]\n'
        'require_claims = { groups = "lab", org.site = "north" }',
        'name = "staff"\npaths = ["/staff"]\nrequire_claims = { staff = true }',
        'name = "level"\npaths = ["/level"]\nrequire_claims = { level = 3 }',
    )
)


@pytest.mark.parametrize(
    ("path", "claims", "outcome"),
    [
        ("/lab/x", {"groups": ["a", "lab"], "org": {"site": "north"}}, "allow"),
        ("/lab/x", {"groups": "lab", "org": {"site": "north"}}, "allow"),
        ("/lab/x", {"groups": "lab", "org": {"site": "south"}}, "deny"),
        ("/lab/x", {"groups": "lab", "org": {}}, "deny"),
        ("/lab/x", {"groups": "lab", "org": "north"}, "deny"),
        ("/lab/x", {"groups": "lab"}, "deny"),
        ("/lab/x", {"org": {"site": "north"}}, "deny"),
        ("/staff", {"staff": True}, "allow"),
        ("/staff", {"staff": 1}, "deny"),
        ("/staff", {"staff": "true"}, "deny"),
        ("/level", {"level": 3}, "allow"),
        ("/level", {"level": 3.0}, "allow"),
        ("/level", {"level": [1, 3]}, "allow"),
        ("/level", {"level": "3"}, "deny"),
        ("/level", {"level": True}, "deny"),
    ],
)
def test_literal_claims_are_type_aware(path: str, claims: dict[str, object], outcome: str) -> None:
    """Literals compare with their TOML type; nested claims use dotted paths; all must match."""
    decision = evaluate(LITERALS, "GET", "h", path, FakeSubject(claims=claims), mfa_done=False)
    assert decision.outcome == outcome
    if outcome == "deny":
        assert decision.reason == "claim_mismatch"


@pytest.mark.parametrize(
    ("claims", "path", "expected"),
    [
        ({"org": {"site": "n"}}, "org.site", "n"),
        ({"org": {"site": "n"}}, "org", {"site": "n"}),
        ({"org.site": "flat", "org": {"site": "n"}}, "org.site", "n"),
        ({"org.site": "flat", "org": {"site": "n"}}, "org\\.site", "flat"),
        ({"org": {"site": "n"}}, "org.site.x", MISSING),
        ({"org": ["site"]}, "org.site", MISSING),
        ({}, "tenant_id", MISSING),
    ],
)
def test_claim_paths_read_like_production(
    claims: dict[str, object], path: str, expected: object
) -> None:
    """Dotted paths walk nested objects; ``\\.`` is a literal dot (URL-style claim names);
    absence is MISSING. The policy tests read claims with the production reader."""
    assert claim_at(claims, path) == expected
    assert FakeSubject(claims=claims).claim(path) == expected


def test_missing_is_falsy_and_never_matches() -> None:
    """MISSING is a distinct falsy sentinel that no requirement accepts."""
    assert not MISSING
    assert MISSING is VERIFIER_MISSING  # one sentinel for the policy and the token claims
    assert repr(MISSING) == "MISSING"
    assert claim_matches(MISSING, "") is False


@pytest.mark.parametrize("raw", ["/tenants/%0a", "/a%zz", "/a%ff", "orders"])
def test_invalid_path_is_a_400_denial(raw: str) -> None:
    """A path that does not decode is denied with reason invalid_path."""
    assert decide("GET", raw, ORDERS_WRITER) is INVALID_PATH
    assert (INVALID_PATH.outcome, INVALID_PATH.reason, INVALID_PATH.status) == (
        "deny",
        "invalid_path",
        400,
    )


@pytest.mark.parametrize(
    "raw", ["/tenants/%00", "/orders;x/1", "/docs/..;/orders", "/docs%2F..%2Forders", "/a\\b"]
)
def test_ambiguous_path_is_a_400_denial(raw: str) -> None:
    """A path upstreams read differently is denied with reason ambiguous_path."""
    assert decide("GET", raw, ORDERS_WRITER) is AMBIGUOUS_PATH
    assert (AMBIGUOUS_PATH.outcome, AMBIGUOUS_PATH.status) == ("deny", 400)


def test_traversal_is_decided_on_the_normalised_path() -> None:
    """``/healthz/../orders/1`` is decided as ``/orders/1``, not by the anonymous rule."""
    assert decide("GET", "/healthz/../orders/1", None).outcome == "unauthenticated"
    assert decide("HEAD", "/docs/%2e%2e/orders/1", None).rule is None


@pytest.mark.parametrize(
    ("audit", "outcome", "method", "audited"),
    [
        ("denials", "allow", "POST", False),
        ("denials", "deny", "GET", True),
        ("mutations", "allow", "GET", False),
        ("mutations", "allow", "PATCH", True),
        ("mutations", "allow", "DELETE", True),
        ("all", "allow", "GET", True),
        ("denials", "unauthenticated", "GET", True),
        ("denials", "mfa_required", "GET", True),
    ],
)
def test_audited(audit: str, outcome: str, method: str, audited: bool) -> None:
    """Denials are always audited; allowed requests as the rule's audit mode says."""
    decision = msgspec.convert(
        {"outcome": outcome, "rule": "r", "reason": None, "status": 200, "audit": audit}, Decision
    )
    assert decision.audited(method) is audited


def test_decisions_are_frozen() -> None:
    """A Decision cannot be modified after the fact."""
    with pytest.raises(AttributeError):
        INVALID_PATH.status = 200  # type: ignore[misc]


def test_match_from_another_policy_is_refused() -> None:
    """Mixing a match from one policy with another policy's decide is a bug, caught."""
    found = compiled(CONTRACT_POLICY).match("GET", "api.example.test", "/healthz")
    with pytest.raises(ValueError, match="different policy"):
        CONTRACT.decide(found, None, mfa_done=False)


def test_needed_claims() -> None:
    """Top-level claim names read by require_claims, per rule and policy-wide."""
    assert needed_claims(CONTRACT.rules[2]) == frozenset({"tenant_id"})
    assert needed_claims(CONTRACT.rules[0]) == frozenset()
    assert LITERALS.needed_claims == frozenset({"groups", "org", "staff", "level"})
