"""Loading and validating policy files: values, every error, names and line numbers."""

import pytest

from auth_service.policy import Defaults, PolicyError, PolicyIssue, Rule, parse_policy

from .samples import CONTRACT_POLICY, rules


def errors_of(text: str) -> list[PolicyIssue]:
    """The issues ``parse_policy`` raises for ``text`` (fails if it parses)."""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policy.toml")
    return caught.value.errors


def test_contract_example_parses_to_the_documented_values() -> None:
    """The CONTRACT §3 example loads with every field as written."""
    policy = parse_policy(CONTRACT_POLICY)
    assert policy.defaults == Defaults(deny_status=403)
    health, orders, tenants = policy.rules
    assert health == Rule(
        name="public health",
        hosts=("api.example.test",),
        paths=("/healthz", "/docs/**"),
        methods=("GET", "HEAD"),
        allow="anonymous",
    )
    assert orders.require_roles == ("orders-writer",)
    assert orders.require_client_roles == {"orders-api": ("write",)}
    assert orders.require_scopes == ("orders",)
    assert orders.require_mfa is True
    assert orders.audit == "mutations"
    assert orders.allow == "authenticated"
    assert tenants.require_claims == {"tenant_id": "{tenant}"}
    assert tenants.audit == "denials"


def test_empty_file_is_a_valid_deny_everything_policy() -> None:
    """No rules and no defaults: deny_status 403 and nothing allowed."""
    policy = parse_policy("")
    assert policy.defaults.deny_status == 403
    assert policy.rules == ()


@pytest.mark.parametrize("status", [401, 403, 404])
def test_allowed_deny_statuses(status: int) -> None:
    """deny_status accepts 401, 403 and 404."""
    assert parse_policy(f"[defaults]\ndeny_status = {status}\n").defaults.deny_status == status


@pytest.mark.parametrize(
    ("field", "written", "stored"),
    [
        ("methods", '["get", "Post"]', ("GET", "POST")),
        (
            "hosts",
            '["API.Example.TEST.", "*.Example.test"]',
            ("api.example.test", "*.example.test"),
        ),
    ],
)
def test_methods_and_hosts_are_normalised(
    field: str, written: str, stored: tuple[str, ...]
) -> None:
    """Methods are upper-cased, hosts lower-cased without a trailing dot."""
    policy = parse_policy(rules(f'name = "r"\npaths = ["/"]\n{field} = {written}'))
    assert getattr(policy.rules[0], field) == stored


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ('{ org.site = "lab" }', {"org.site": "lab"}),
        ('{ "org.site" = "lab" }', {"org.site": "lab"}),
        ("{ level = 3, ratio = 0.5, staff = true }", {"level": 3, "ratio": 0.5, "staff": True}),
    ],
)
def test_require_claims_values_and_dotted_paths(written: str, stored: dict[str, object]) -> None:
    """Literal claim values keep their TOML type; nested tables become dotted paths."""
    policy = parse_policy(rules(f'name = "r"\npaths = ["/"]\nrequire_claims = {written}'))
    assert policy.rules[0].require_claims == stored


BASE = 'name = "r"\npaths = ["/"]\n'

INVALID_RULES = [
    (BASE + 'require_role = ["a"]', "unknown field 'require_role' (did you mean 'require_roles'?)"),
    ('paths = ["/"]', "missing required field 'name'"),
    ('name = "r"', "missing required field 'paths'"),
    ('name = ""\npaths = ["/"]', "name: expected `str` of length >= 1"),
    ('name = "r"\npaths = []', "paths must not be empty"),
    ('name = "r"\npaths = "/x"', "paths: expected `array`, got `str`"),
    ('name = "r"\npaths = ["/a", 3]', "paths[1]: expected `str`, got `int`"),
    ('name = "r"\npaths = ["x"]', "path 'x': must start with '/'"),
    ('name = "r"\npaths = ["/a//b"]', "path '/a//b': empty segment"),
    ('name = "r"\npaths = ["/a/../b"]', "never matches a normalised path"),
    ('name = "r"\npaths = ["/f/*.txt"]', "segment '*.txt' mixes literal text and wildcards"),
    ('name = "r"\npaths = ["/a/**b"]', "segment '**b' mixes"),
    ('name = "r"\npaths = ["/a/pre{x}"]', "segment 'pre{x}' mixes"),
    ('name = "r"\npaths = ["/{a}/{a}"]', "captures {a} twice"),
    ('name = "r"\npaths = ["/a%2Fb"]', "must not contain '%'"),
    (BASE + 'allow = "anon"', "allow must be one of 'anonymous', 'authenticated', got 'anon'"),
    (BASE + 'audit = "some"', "audit must be one of 'denials', 'mutations', 'all'"),
    (BASE + "hosts = []", "hosts must not be empty"),
    (BASE + 'hosts = ["api.example.test:8443"]', "ports are ignored"),
    (BASE + 'hosts = ["api.*.test"]', "invalid host 'api.*.test'"),
    (BASE + "methods = []", "methods must not be empty"),
    (BASE + 'methods = ["*"]', "'*' is not a method"),
    (BASE + 'methods = ["GET POST"]', "invalid method 'GET POST'"),
    (BASE + "require_roles = []", "require_roles must not be empty"),
    (BASE + 'require_scopes = [""]', "require_scopes contains an empty name"),
    (BASE + "require_client_roles = { api = [] }", "client 'api' needs at least one"),
    (BASE + 'require_client_roles = ["api"]', "require_client_roles: expected `object`"),
    (
        BASE + "require_claims = { a = [1] }",
        "require_claims: expected `bool | int | float | str`, got `array`",
    ),
    (BASE + 'require_claims = { a = "{x-y}" }', "invalid capture name '{x-y}'"),
    (BASE + 'require_mfa = "yes"', "require_mfa: expected `bool`, got `str`"),
    (
        BASE + 'allow = "anonymous"\nrequire_roles = ["a"]',
        'allow = "anonymous" contradicts require_roles',
    ),
    (
        'name = "r"\npaths = ["/t/{tenant}", "/t"]\nrequire_claims = { tenant_id = "{tenant}" }',
        "claim 'tenant_id' uses {tenant} but path '/t' does not capture it",
    ),
]


@pytest.mark.parametrize(("body", "expected"), INVALID_RULES)
def test_each_invalid_rule_is_reported(body: str, expected: str) -> None:
    """Each kind of mistake in a rule yields one issue with a precise message."""
    issues = errors_of(rules(body))
    assert len(issues) == 1, issues
    assert expected in issues[0].message
    assert issues[0].index == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[defaults]\ndeny_status = 500\n", "deny_status must be one of 401, 403, 404, got 500"),
        (
            "[defaults]\ndeny_statuss = 401\n",
            "unknown field 'deny_statuss' (did you mean 'deny_status'?)",
        ),
        ("defaults = 3\n", "[defaults] must be a table"),
        ("rules = 3\n", "rules must be an array of tables"),
        ("rules = [1]\n", "a rule must be a table"),
        ("[[rule]]\nname = 'x'\n", "unknown top-level key 'rule'"),
    ],
)
def test_invalid_file_structure_is_reported(text: str, expected: str) -> None:
    """Problems outside rules are issues too, with no rule name."""
    issues = errors_of(text)
    assert [issue.message for issue in issues] == [expected]
    assert issues[0].rule is None


THREE_ERRORS = """\
[defaults]
deny_status = 403

[[rules]]
name = "public"
paths = ["/healthz"]
allow = "anonymous"

[[rules]]
name = "orders writes"
paths = ["/orders/**"]
require_role = ["orders-writer"]

[[rules]]
name = "reports"
methods = ["GET"]
paths = ["/reports/*.pdf"]

[[rules]]
name = "tenant"
paths = ["/tenants/{tenant}/**"]
require_mfa = true
allow = "anonymous"
"""


def test_all_errors_are_reported_together_with_names_and_lines() -> None:
    """A file with three mistakes in three rules reports all three, in file order."""
    issues = errors_of(THREE_ERRORS)
    assert [(i.rule, i.index, i.line) for i in issues] == [
        ("orders writes", 1, 12),
        ("reports", 2, 17),
        ("tenant", 3, 23),
    ]
    assert "unknown field 'require_role'" in issues[0].message


def test_cli_style_formatting_of_issues() -> None:
    """PolicyError renders each issue as ``source:line: rule 'name': message``."""
    with pytest.raises(PolicyError) as caught:
        parse_policy(THREE_ERRORS, "policy.toml")
    assert caught.value.lines()[0] == (
        "policy.toml:12: rule 'orders writes': unknown field 'require_role' "
        "(did you mean 'require_roles'?)"
    )
    assert str(caught.value).count("\n") == 2


def test_several_errors_in_one_rule_are_all_reported() -> None:
    """Errors in different fields of one rule are not hidden behind the first."""
    text = rules('name = "r"\npaths = ["/a*"]\nmethods = []\nrequire_rol = ["x"]\naudit = "x"')
    issues = errors_of(text)
    assert [i.line for i in issues] == [3, 4, 5, 6]
    assert {i.rule for i in issues} == {"r"}


def test_duplicate_names_point_at_the_second_rule() -> None:
    """The second use of a name is the error, and it cites the first one's line."""
    text = rules(
        'name = "same"\npaths = ["/a"]',
        'name = "other"\npaths = ["/b"]',
        'name = "same"\npaths = ["/c"]',
    )
    (issue,) = errors_of(text)
    assert issue.rule == "same"
    assert issue.index == 2
    assert issue.line == 10
    assert issue.message == "duplicate rule name 'same' (first defined at line 1)"


def test_duplicate_names_are_found_even_in_invalid_rules() -> None:
    """A rule with other errors still counts for name uniqueness."""
    text = rules('name = "same"\npaths = ["/a"]', 'name = "same"\npaths = []')
    messages = [i.message for i in errors_of(text)]
    assert len(messages) == 2
    assert any(m.startswith("duplicate rule name") for m in messages)


def test_rule_without_name_is_identified_by_position() -> None:
    """An unnamed rule is shown as ``rule #N`` with its header line."""
    (issue,) = errors_of(rules('name = "a"\npaths = ["/"]', 'paths = ["/"]'))
    assert (issue.rule, issue.index, issue.line) == (None, 1, 5)
    assert issue.format("p.toml") == "p.toml:5: rule #2: missing required field 'name'"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[[rules]]\nname = "a"\npaths = ["/"\n', 3),
        ("[defaults]\ndeny_status = \n", 2),
        ('[[rules]]\nname = "a"\nname = "b"\n', 3),
    ],
)
def test_toml_syntax_errors_carry_tomllib_line(text: str, line: int) -> None:
    """A TOML syntax error is one issue at the line tomllib reports."""
    (issue,) = errors_of(text)
    assert issue.line == line
    assert issue.message.startswith("TOML syntax: ")
    assert "(at " not in issue.message


def test_lines_are_found_for_subtables_and_quoted_keys() -> None:
    """Keys in ``[rules.x]`` sub-tables and quoted keys are located too."""
    text = (
        '[[rules]]\nname = "a"\npaths = ["/"]\n'
        '"require_scopes" = []\n'
        "[rules.require_client_roles]\napi = []\n"
    )
    assert [i.line for i in errors_of(text)] == [4, 5]


def test_multiline_strings_do_not_confuse_line_finding() -> None:
    """A ``[[rules]]`` line inside a multi-line string is not a header."""
    text = 'x = """\n[[rules]]\n"""\n[[rules]]\nname = "a"\npaths = ["nope"]\n'
    issues = errors_of(text)
    assert [(i.message, i.line) for i in issues] == [
        ("unknown top-level key 'x'", 1),
        ("path 'nope': must start with '/'", 6),
    ]
