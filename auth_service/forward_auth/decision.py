"""The forward-auth decision: pure, no I/O, the same for every gateway dialect.

Given the original request, what the credentials turned out to be, and the
compiled policy, `decide` returns a `Verdict`: the status, the headers for the
gateway and, for refusals, a problem+json body. The only dialect-specific part
is how an unauthenticated browser is sent to log in (CONTRACT §4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from auth_service.errors import PROBLEM_JSON, problem_body
from auth_service.forward_auth.gateways import Dialect, ForwardedRequest
from auth_service.policy import CompiledPolicy, PathRefusal
from auth_service.tokens.identity import Authenticated
from auth_service.tokens.rejections import TokenRejected, bearer_challenge
from auth_service.web import PAGE_SECURITY_HEADERS, denied_document

__all__ = ("Credentials", "Verdict", "decide", "is_browser")

MFA_CHALLENGE = (
    'Bearer error="insufficient_user_authentication", '
    'error_description="TOTP second factor required"'
)


@dataclass(slots=True)
class Credentials:
    """What the request presented and what checking it gave."""

    bearer: bool = False
    """An ``Authorization: Bearer`` credential was present."""
    session: bool = False
    """A session cookie was present (and a bearer was not)."""
    identity: Authenticated | None = None
    rejection: TokenRejected | None = None
    mfa_done: bool = False

    @property
    def present(self) -> bool:
        """Any credential at all was presented."""
        return self.bearer or self.session


@dataclass(slots=True)
class Verdict:
    """The answer to the gateway."""

    status: int
    outcome: str
    """allow, deny, unauthenticated, invalid_token, mfa_required, bad_request or unavailable."""
    reason: str | None
    rule: str | None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    identity: Authenticated | None = None
    """Set when allowed with an identity: the endpoint adds identity headers and the assertion."""
    audit: bool = False
    """Whether this decision becomes an audit event."""
    mfa: bool = False
    """The identity's session passed TOTP (for ``X-Auth-MFA`` and the assertion's ``amr``)."""
    caller: Authenticated | None = None
    """Who presented valid credentials, whatever the outcome (for the audit event only;
    unlike `identity` it never produces identity headers)."""


def is_browser(req: ForwardedRequest, creds: Credentials) -> bool:
    """No bearer token, GET or HEAD, and ``Accept`` containing ``text/html``."""
    if creds.bearer or req.method not in ("GET", "HEAD"):
        return False
    return b"text/html" in req.headers.get(b"accept", b"")


def _problem(
    status: int, detail: str, rid: str, reason: str | None, headers: list[tuple[bytes, bytes]]
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = problem_body(status, detail, rid, reason=reason)
    return body, [*headers, (b"content-type", PROBLEM_JSON.encode())]


def _redirect(
    dialect: Dialect, url: str, rid: str, reason: str, outcome: str, rule: str | None
) -> Verdict:
    location = url.encode("latin-1")
    if dialect is Dialect.AUTH_REQUEST:
        body, headers = _problem(
            401, "login required", rid, reason, [(b"x-auth-redirect", location)]
        )
        return Verdict(401, outcome, reason, rule, headers, body, audit=True)
    return Verdict(302, outcome, reason, rule, [(b"location", location)], audit=True)


def decide(
    dialect: Dialect,
    req: ForwardedRequest,
    creds: Credentials,
    policy: CompiledPolicy,
    *,
    public_url: str,
    rid: str,
) -> Verdict:
    """Decide one forward-auth check."""
    match = policy.route(req.method, req.policy_host, req.target)
    if isinstance(match, PathRefusal):  # before any rule, for browsers too: never a login
        body, headers = _problem(400, match.detail, rid, match.reason, [])
        return Verdict(400, "bad_request", match.reason, None, headers, body, audit=True)
    if match is not None and match.rule.allow == "anonymous":
        allowed = policy.decide(match, None, mfa_done=False)
        return Verdict(200, "allow", None, allowed.rule, audit=allowed.audited(req.method))
    browser = is_browser(req, creds)
    if creds.rejection is not None:
        rejection = creds.rejection
        if browser:
            return _redirect(
                dialect,
                _login_url(public_url, req),
                rid,
                rejection.reason,
                "invalid_token",
                match.rule.name if match else None,
            )
        body, headers = _problem(
            401,
            rejection.detail,
            rid,
            rejection.reason,
            [(b"www-authenticate", bearer_challenge("invalid_token", rejection.detail).encode())],
        )
        return Verdict(
            401,
            "invalid_token",
            rejection.reason,
            match.rule.name if match else None,
            headers,
            body,
            audit=True,
        )
    subject = creds.identity
    decision = policy.decide(match, subject, mfa_done=creds.mfa_done)
    outcome = decision.outcome
    if outcome == "allow":
        return Verdict(
            200,
            "allow",
            None,
            decision.rule,
            identity=creds.identity,
            mfa=creds.mfa_done,
            audit=decision.audited(req.method),
        )
    if outcome == "unauthenticated":
        if browser:
            return _redirect(
                dialect,
                _login_url(public_url, req),
                rid,
                "authentication_required",
                outcome,
                decision.rule,
            )
        body, headers = _problem(
            401,
            "authentication required",
            rid,
            "authentication_required",
            [(b"www-authenticate", bearer_challenge().encode())],
        )
        return Verdict(
            401, outcome, "authentication_required", decision.rule, headers, body, audit=True
        )
    if outcome == "mfa_required":
        if browser:
            return _redirect(
                dialect, _mfa_url(public_url, req), rid, "mfa_required", outcome, decision.rule
            )
        body, headers = _problem(
            401,
            "TOTP second factor required",
            rid,
            "mfa_required",
            [(b"www-authenticate", MFA_CHALLENGE.encode())],
        )
        return Verdict(401, outcome, "mfa_required", decision.rule, headers, body, audit=True)
    reason = decision.reason or "access_denied"
    if browser and decision.status == 403 and dialect is not Dialect.AUTH_REQUEST:
        # Traefik, Caddy and Envoy hand the check's body to the client: a browser gets the
        # HTML page (nginx drops it and asks GET /auth/denied itself, see gateway_config).
        page = denied_document(rid).encode()
        headers = list(_HTML_HEADERS)  # the endpoint appends to a verdict's list
        return Verdict(403, "deny", reason, decision.rule, headers, page, audit=True)
    body, headers = _problem(
        decision.status, _DENY_DETAIL.get(reason, "access denied"), rid, reason, []
    )
    return Verdict(decision.status, "deny", reason, decision.rule, headers, body, audit=True)


_HTML_HEADERS = (
    *(
        (name.lower().encode(), value.encode())
        for name, value in PAGE_SECURITY_HEADERS.items()
        if name.lower() != "cache-control"  # the endpoint adds no-store to every answer
    ),
    (b"content-type", b"text/html; charset=utf-8"),
)


_DENY_DETAIL = {
    "no_matching_rule": "no policy rule allows this request",
    "missing_role": "a required realm role is missing",
    "missing_client_role": "a required client role is missing",
    "missing_scope": "a required scope is missing",
    "claim_mismatch": "a required claim does not match",
}


def _login_url(public_url: str, req: ForwardedRequest) -> str:
    return f"{public_url}/auth/login?rd={quote(req.url, safe='')}"


def _mfa_url(public_url: str, req: ForwardedRequest) -> str:
    return f"{public_url}/auth/mfa?rd={quote(req.url, safe='')}"
