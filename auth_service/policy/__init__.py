"""Access policy (CONTRACT §3): load and validate the TOML file, match requests, decide.

Pure on the decision path: no I/O, no imports from other service packages.
Typical use::

    holder = PolicyHolder(settings.policy_file, on_reload=log_reload)
    policy = holder.current
    found = policy.route(method, host, raw_uri)  # PathRefusal -> 400
    decision = policy.decide(found, subject, mfa_done=mfa)
"""

from auth_service.policy.cli import check_policy_file
from auth_service.policy.compile import CompiledPolicy, Match, compile_policy
from auth_service.policy.evaluate import (
    AMBIGUOUS_PATH,
    INVALID_PATH,
    MUTATING_METHODS,
    Decision,
    Outcome,
    Reason,
    Subject,
    claim_matches,
    needed_claims,
)
from auth_service.policy.holder import PolicyHolder, ReloadHook
from auth_service.policy.load import load_policy_file, parse_policy
from auth_service.policy.model import (
    AllowMode,
    AuditMode,
    ClaimValue,
    Defaults,
    DenyStatus,
    Policy,
    PolicyError,
    PolicyIssue,
    Rule,
)
from auth_service.policy.paths import (
    MAX_PATH_LENGTH,
    PathCase,
    PathParameters,
    PathReason,
    PathRefusal,
    canonical_path,
    normalize_host,
    normalize_method,
    normalize_path,
)
from auth_service.verifier.tokens import MISSING

__all__ = [
    "AMBIGUOUS_PATH",
    "INVALID_PATH",
    "MAX_PATH_LENGTH",
    "MISSING",
    "MUTATING_METHODS",
    "AllowMode",
    "AuditMode",
    "ClaimValue",
    "CompiledPolicy",
    "Decision",
    "Defaults",
    "DenyStatus",
    "Match",
    "Outcome",
    "PathCase",
    "PathParameters",
    "PathReason",
    "PathRefusal",
    "Policy",
    "PolicyError",
    "PolicyHolder",
    "PolicyIssue",
    "Reason",
    "ReloadHook",
    "Rule",
    "Subject",
    "canonical_path",
    "check_policy_file",
    "claim_matches",
    "compile_policy",
    "load_policy_file",
    "needed_claims",
    "normalize_host",
    "normalize_method",
    "normalize_path",
    "parse_policy",
]
