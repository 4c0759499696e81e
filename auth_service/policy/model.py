"""The access policy file as data (CONTRACT §3), and the errors raised while reading it.

The Structs mirror the TOML one to one and forbid unknown fields, so a typo such
as ``require_role`` is an error rather than a silently ignored requirement. The
loader (``load.py``) fills them and normalises hosts and methods; everything
that is only checkable across fields (patterns, captures, anonymous rules with
requirements) lives in ``validate.py``.
"""

from typing import Annotated, Literal

import msgspec

from auth_service.policy.paths import PathCase, PathParameters

DenyStatus = Literal[401, 403, 404]
AllowMode = Literal["anonymous", "authenticated"]
AuditMode = Literal["denials", "mutations", "all"]
ClaimValue = str | int | float | bool
"""A literal in ``require_claims``; a string of the form ``"{name}"`` is a capture."""

NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]

REQUIREMENT_FIELDS = (
    "require_roles",
    "require_client_roles",
    "require_scopes",
    "require_claims",
    "require_mfa",
)
"""Rule fields that each make a rule require an authenticated subject."""


class Defaults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[defaults]`` table."""

    deny_status: DenyStatus = 403
    """Status for an authenticated request that no rule matches."""
    path_parameters: PathParameters = "refuse"
    """``"refuse"``: a ``;`` in a path is a 400 ``ambiguous_path``; ``"strip"``: ``;...``
    is removed from every segment before normalising (for upstreams that use them)."""
    path_case: PathCase = "sensitive"
    """``"insensitive"`` matches pattern literals case-insensitively (for upstreams that
    route that way); ``"sensitive"`` also refuses a path that such an upstream would
    route to a different rule."""


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[[rules]]`` entry; the first rule whose host, path and method match decides."""

    name: NonEmptyStr
    """Unique name, used in audit events, decisions and error messages."""
    paths: Annotated[tuple[str, ...], msgspec.Meta(min_length=1)]
    """Path patterns: literal segments, ``*``, ``**`` and ``{name}`` captures."""
    hosts: tuple[str, ...] | None = None
    """Exact hosts or ``*.example.test`` wildcards, lower-cased; ``None`` matches any host."""
    methods: tuple[str, ...] | None = None
    """Upper-cased HTTP methods; ``None`` matches any method."""
    allow: AllowMode = "authenticated"
    """Whether the rule lets requests without credentials through."""
    require_roles: tuple[str, ...] = ()
    """Realm roles, any of."""
    require_client_roles: dict[str, tuple[str, ...]] = {}
    """Client id to client roles (``resource_access``); any role of any listed client."""
    require_scopes: tuple[str, ...] = ()
    """Scopes from the ``scope`` claim, all of."""
    require_claims: dict[str, ClaimValue] = {}
    """Dotted claim path to a literal or a ``"{capture}"``; all must match."""
    require_mfa: bool = False
    """Whether the subject's session must have passed the TOTP second factor."""
    audit: AuditMode = "denials"
    """Which decisions of this rule become audit events (denials always do)."""

    @property
    def requirements(self) -> tuple[str, ...]:
        """Names of the ``require_*`` fields this rule sets."""
        return tuple(field for field in REQUIREMENT_FIELDS if getattr(self, field))


class Policy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A whole, validated policy file."""

    defaults: Defaults = msgspec.field(default_factory=Defaults)
    """The ``[defaults]`` table."""
    rules: tuple[Rule, ...] = ()
    """Rules in file order."""


class PolicyIssue(msgspec.Struct, frozen=True, kw_only=True):
    """One problem found in a policy file."""

    message: str
    """What is wrong, phrased for the person editing the file."""
    rule: str | None = None
    """Name of the rule concerned, when there is one and it has a usable name."""
    index: int | None = None
    """Zero-based position of the rule concerned in ``[[rules]]``."""
    line: int | None = None
    """One-based line in the file, when it could be located."""

    def format(self, source: str) -> str:
        """Render as ``source:line: rule 'name': message`` (the CLI's output format)."""
        where = f"{source}:{self.line}" if self.line is not None else source
        if self.rule is not None:
            return f"{where}: rule {self.rule!r}: {self.message}"
        if self.index is not None:
            return f"{where}: rule #{self.index + 1}: {self.message}"
        return f"{where}: {self.message}"


class PolicyError(Exception):
    """A policy file failed validation; ``errors`` holds every issue found, in file order."""

    def __init__(self, errors: list[PolicyIssue], source: str = "<policy>") -> None:
        self.errors = errors
        self.source = source
        super().__init__(str(self))

    def lines(self) -> list[str]:
        """Each issue formatted with the source name, one per line."""
        return [issue.format(self.source) for issue in self.errors]

    def __str__(self) -> str:
        return "\n".join(self.lines())
