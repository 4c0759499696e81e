"""Shared test data: the CONTRACT §3 example policy and a minimal Subject."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from auth_service.policy import (
    AMBIGUOUS_PATH,
    INVALID_PATH,
    CompiledPolicy,
    Decision,
    PathRefusal,
    compile_policy,
    normalize_host,
    parse_policy,
)
from auth_service.verifier.tokens import claim_at

CONTRACT_POLICY = """\
[defaults]
deny_status = 403            # what an authenticated request that no rule allows gets

[[rules]]
name = "public health"
hosts = ["api.example.test"]  # optional; default any host; "*.example.test" allowed
paths = ["/healthz", "/docs/**"]
methods = ["GET", "HEAD"]     # optional; default any method
allow = "anonymous"

[[rules]]
name = "orders writes"
paths = ["/orders/**"]
methods = ["POST", "PUT", "DELETE"]
require_roles = ["orders-writer"]                       # realm roles, any of
require_client_roles = { "orders-api" = ["write"] }     # resource_access roles, any of
require_scopes = ["orders"]                             # all of, from the `scope` claim
require_mfa = true
audit = "mutations"          # "denials" (default) | "mutations" | "all": which decisions become audit events

[[rules]]
name = "tenant isolation"
paths = ["/tenants/{tenant}/**"]
require_claims = { tenant_id = "{tenant}" }   # claim must equal the captured path segment
"""  # noqa: E501 -- copied verbatim from CONTRACT §3


@dataclass(frozen=True)
class FakeSubject:
    """A Subject built from plain values; claims are read by the production claim reader."""

    realm_roles: frozenset[str] = frozenset()
    client_roles: Mapping[str, frozenset[str]] = field(default_factory=dict)
    scopes: frozenset[str] = frozenset()
    claims: dict[str, object] = field(default_factory=dict)

    def claim(self, path: str) -> object:
        """Dotted-path claim lookup, exactly as production reads claims (`claim_at`)."""
        return claim_at(self.claims, path)


ORDERS_WRITER = FakeSubject(
    realm_roles=frozenset({"orders-writer"}),
    client_roles={"orders-api": frozenset({"write"})},
    scopes=frozenset({"openid", "orders"}),
)


def compiled(text: str) -> CompiledPolicy:
    """Parse and compile a policy text."""
    return compile_policy(parse_policy(text))


def rules(*bodies: str, defaults: str = "") -> str:
    """A policy text from rule bodies, each under its own ``[[rules]]`` header."""
    parts = [f"[defaults]\n{defaults}\n"] if defaults else []
    parts += [f"[[rules]]\n{body.strip()}\n" for body in bodies]
    return "\n".join(parts)


def evaluate(
    policy: CompiledPolicy,
    method: str,
    host: str,
    raw_path: str,
    subject: FakeSubject | None,
    *,
    mfa_done: bool,
) -> Decision:
    """Route and decide as `auth_service.forward_auth.decision.decide` does; a refused path
    is the 400 decision of its reason (``invalid_path`` or ``ambiguous_path``)."""
    found = policy.route(method, normalize_host(host), raw_path)
    if isinstance(found, PathRefusal):
        return INVALID_PATH if found.reason == "invalid_path" else AMBIGUOUS_PATH
    return policy.decide(found, subject, mfa_done=mfa_done)
