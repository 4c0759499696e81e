"""Shared test data: the CONTRACT §3 example policy and a minimal Subject."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from auth_service.policy import CompiledPolicy, compile_policy, lookup_claim, parse_policy

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
    """A Subject built from plain values; claims are looked up by dotted path."""

    realm_roles: frozenset[str] = frozenset()
    client_roles: Mapping[str, frozenset[str]] = field(default_factory=dict)
    scopes: frozenset[str] = frozenset()
    claims: dict[str, object] = field(default_factory=dict)

    def claim(self, path: str) -> object:
        """Dotted-path claim lookup."""
        return lookup_claim(self.claims, path)


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
