"""``[defaults] path_parameters`` and ``path_case``: validation, stripping, case readings."""

from pathlib import Path

import pytest

from auth_service.policy import (
    AMBIGUOUS_PATH,
    Decision,
    PathRefusal,
    PolicyError,
    check_policy_file,
    parse_policy,
)

from .samples import FakeSubject, compiled, evaluate, rules

ADMIN = FakeSubject(realm_roles=frozenset({"auth-admin"}))
USER = FakeSubject(realm_roles=frozenset({"app-user"}), claims={"tenant_id": "t-002"})

BODIES = (
    'name = "public"\npaths = ["/public/**"]\nallow = "anonymous"',
    'name = "admin"\npaths = ["/admin/**"]\nrequire_roles = ["auth-admin"]',
    'name = "tenant"\npaths = ["/tenants/{tenant}/**"]\n'
    'require_claims = { tenant_id = "{tenant}" }',
    'name = "signed in"\npaths = ["/**"]',
)


def policy(defaults: str = "") -> str:
    """The test policy with the given ``[defaults]`` lines."""
    return rules(*BODIES, defaults=defaults or "deny_status = 403")


def decide(defaults: str, path: str, subject: FakeSubject | None) -> Decision:
    """Evaluate ``GET path`` under the test policy."""
    return evaluate(compiled(policy(defaults)), "GET", "h", path, subject, mfa_done=False)


class TestValidation:
    """The new keys are checked like every other field, with the line of the mistake."""

    def test_defaults_are_refuse_and_sensitive(self) -> None:
        """Without the keys, ';' is refused and literals compare case-sensitively."""
        parsed = parse_policy(policy())
        assert parsed.defaults.path_parameters == "refuse"
        assert parsed.defaults.path_case == "sensitive"

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            (
                'path_parameters = "drop"',
                "path_parameters must be one of 'refuse', 'strip', got 'drop'",
            ),
            (
                'path_case = "ignore"',
                "path_case must be one of 'sensitive', 'insensitive', got 'ignore'",
            ),
            ("path_case = true", "path_case must be one of 'sensitive', 'insensitive', got True"),
            (
                'path_parameter = "strip"',
                "unknown field 'path_parameter' (did you mean 'path_parameters'?)",
            ),
        ],
    )
    def test_bad_values_are_errors_with_their_line(self, line: str, message: str) -> None:
        """A wrong value or a misspelt key is an issue pointing at its line."""
        text = f"[defaults]\ndeny_status = 403\n{line}\n\n[[rules]]\nname = 'a'\npaths = ['/']\n"
        with pytest.raises(PolicyError) as caught:
            parse_policy(text)
        (issue,) = caught.value.errors
        assert issue.message == message
        assert issue.line == 3

    def test_policy_check_reports_them(self, tmp_path: Path) -> None:
        """``auth-service policy check`` prints the error with file and line, exit 1."""
        path = tmp_path / "policy.toml"
        path.write_text('[defaults]\npath_parameters = "keep"\n')
        code, lines = check_policy_file(path)
        assert code == 1
        assert lines == [f"{path}:2: path_parameters must be one of 'refuse', 'strip', got 'keep'"]
        path.write_text(policy('path_parameters = "strip"\npath_case = "insensitive"'))
        assert check_policy_file(path) == (0, [f"{path}: ok (4 rules)"])

    @pytest.mark.parametrize("pattern", ["/admin;x/**", "/a;/b"])
    def test_patterns_may_not_hold_parameters(self, pattern: str) -> None:
        """A ';' in a pattern could never match a normalised path: an error, not dead text."""
        with pytest.raises(PolicyError) as caught:
            parse_policy(rules(f'name = "p"\npaths = ["{pattern}"]'))
        assert "';'" in caught.value.errors[0].message


class TestParameters:
    """``;`` path parameters: refused by default, stripped on request."""

    @pytest.mark.parametrize(
        "path", ["/public/..;/admin/users", "/admin;x=1/users", "/payments;x/1", "/public;/x"]
    )
    def test_refused_by_default_for_everyone(self, path: str) -> None:
        """Before any rule: the anonymous rule does not get a say, nor does an admin's role."""
        for subject in (None, USER, ADMIN):
            assert decide("", path, subject) is AMBIGUOUS_PATH

    def test_strip_decides_the_path_tomcat_routes(self) -> None:
        """With "strip", ``/public/..;/admin`` is ``/admin``: the admin rule decides."""
        strip = 'path_parameters = "strip"'
        assert decide(strip, "/public/..;/admin/users", None).rule == "admin"
        assert decide(strip, "/public/..;/admin/users", USER).reason == "missing_role"
        assert decide(strip, "/admin;x=1/users", ADMIN).outcome == "allow"
        found = decide(strip, "/tenants/t-002/..;/t-001/orders", USER)
        assert (found.rule, found.reason) == ("tenant", "claim_mismatch")
        assert decide(strip, "/public;jsessionid=1/page", None).rule == "public"


class TestCase:
    """Case: refused when a case-folding upstream would route elsewhere, or folded on request."""

    @pytest.mark.parametrize(
        "path", ["/ADMIN/users", "/Admin/users", "/admın/users", "/PUBLIC/x", "/Tenants/t-002/x"]
    )
    def test_sensitive_refuses_paths_a_folding_upstream_routes_elsewhere(self, path: str) -> None:
        """Exact reading: "signed in"; folded reading: another rule. Neither may decide."""
        for subject in (None, USER, ADMIN):
            assert decide("", path, subject) is AMBIGUOUS_PATH

    @pytest.mark.parametrize("path", ["/Other/X", "/ÉTÉ", "/tenants/T-002/x", "/admin/USERS"])
    def test_sensitive_decides_paths_every_reading_agrees_on(self, path: str) -> None:
        """Upper case that changes no rule is fine (captures keep their case)."""
        found = decide("", path, USER)
        assert found.status != 400
        if path.startswith("/tenants"):
            assert found.reason == "claim_mismatch"  # "T-002" is not "t-002"

    def test_uppercase_literals_in_the_file_are_read_both_ways(self) -> None:
        """A pattern ``/Admin/**`` makes ``/admin/x`` ambiguous in sensitive mode."""
        text = rules('name = "a"\npaths = ["/Admin/**"]', 'name = "rest"\npaths = ["/**"]')
        policy = compiled(text)
        assert policy.route("GET", "h", "/admin/x") is not None
        assert isinstance(policy.route("GET", "h", "/admin/x"), PathRefusal)
        found = policy.route("GET", "h", "/Admin/x")
        assert not isinstance(found, PathRefusal) and found is not None
        assert found.rule.name == "a"

    @pytest.mark.parametrize(
        ("path", "rule"),
        [
            ("/ADMIN/users", "admin"),
            ("/Admin/Users", "admin"),
            ("/\u212aey", "signed in"),
            ("/PUBLIC/x", "public"),
            ("/Tenants/t-002/x", "tenant"),
        ],
    )
    def test_insensitive_matches_folded(self, path: str, rule: str) -> None:
        """path_case = "insensitive": literals compare case-insensitively."""
        found = decide('path_case = "insensitive"', path, USER)
        assert found.rule == rule
        if rule == "admin":
            assert found.reason == "missing_role"

    def test_insensitive_keeps_the_case_of_captures(self) -> None:
        """``{tenant}`` is compared as sent: ``T-002`` is not the claim ``t-002``."""
        insensitive = 'path_case = "insensitive"'
        assert decide(insensitive, "/TENANTS/t-002/x", USER).outcome == "allow"
        assert decide(insensitive, "/tenants/T-002/x", USER).reason == "claim_mismatch"

    def test_insensitive_refuses_where_folds_disagree(self) -> None:
        """Kelvin sign: Unicode lower-case reads "k", ASCII folding and upper-case do not;
        dotless i: upper-case (.NET) reads "I", the others do not."""
        assert decide('path_case = "insensitive"', "/admın/users", ADMIN) is AMBIGUOUS_PATH
        text = rules(
            'name = "keys"\npaths = ["/keys/**"]\nrequire_roles = ["x"]',
            'name = "rest"\npaths = ["/**"]',
            defaults='path_case = "insensitive"',
        )
        assert isinstance(compiled(text).route("GET", "h", "/\u212aeys/1"), PathRefusal)
        assert compiled(text).route("GET", "h", "/KEYS/1") is not None
