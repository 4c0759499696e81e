"""Matching requests to rules: file order, hosts, methods, wildcards, captures, scale."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth_service.policy import compile_policy, parse_policy

from .samples import CONTRACT_POLICY, compiled, rules

CONTRACT = compiled(CONTRACT_POLICY)


@pytest.mark.parametrize(
    ("method", "host", "path", "rule"),
    [
        ("GET", "api.example.test", "/healthz", "public health"),
        ("HEAD", "api.example.test", "/healthz", "public health"),
        ("get", "API.EXAMPLE.TEST:443", "/healthz", "public health"),
        ("GET", "api.example.test", "/docs", "public health"),
        ("GET", "api.example.test", "/docs/a/b/c", "public health"),
        ("POST", "api.example.test", "/healthz", None),
        ("GET", "other.example.test", "/healthz", None),
        ("GET", "api.example.test", "/healthz/x", None),
        ("POST", "any.host", "/orders", "orders writes"),
        ("put", "any.host", "/orders/42", "orders writes"),
        ("DELETE", "any.host", "/orders/42/items/1", "orders writes"),
        ("GET", "any.host", "/orders/42", None),
        ("PATCH", "any.host", "/orders/42", None),
        ("GET", "any.host", "/tenants/acme", "tenant isolation"),
        ("GET", "any.host", "/tenants/acme/users/7", "tenant isolation"),
        ("GET", "any.host", "/tenants", None),
        ("GET", "any.host", "/", None),
    ],
)
def test_contract_example_matching(method: str, host: str, path: str, rule: str | None) -> None:
    """The CONTRACT §3 example routes requests to the documented rules."""
    found = CONTRACT.match(method, host, path)
    assert (found.rule.name if found else None) == rule


def test_tenant_capture_is_returned() -> None:
    """``{tenant}`` captures its (decoded) segment."""
    found = CONTRACT.match("GET", "h", "/tenants/acme%25corp/x")
    assert found is not None
    assert found.captures == {"tenant": "acme%corp"}
    assert found.index == 2


FIRST_MATCH = compiled(
    rules(
        'name = "admin reads"\npaths = ["/admin/**"]\nmethods = ["GET"]',
        'name = "admin exact"\npaths = ["/admin/users"]',
        'name = "catch all"\npaths = ["/**"]',
        'name = "never"\npaths = ["/admin/users"]\nallow = "anonymous"',
    )
)


@pytest.mark.parametrize(
    ("method", "path", "rule"),
    [
        ("GET", "/admin/users", "admin reads"),
        ("POST", "/admin/users", "admin exact"),
        ("POST", "/admin/other", "catch all"),
        ("GET", "/", "catch all"),
        ("DELETE", "/public/../admin/users", "catch all"),
    ],
)
def test_first_matching_rule_in_file_order_wins(method: str, path: str, rule: str) -> None:
    """A more specific later rule never overrides an earlier one that matches."""
    found = FIRST_MATCH.match(method, "h", path)
    assert found is not None
    assert found.rule.name == rule


WILDCARDS = compiled(
    rules(
        'name = "sub"\nhosts = ["*.example.test"]\npaths = ["/**"]',
        'name = "apex"\nhosts = ["example.test", "[::1]"]\npaths = ["/**"]',
    )
)


@pytest.mark.parametrize(
    ("host", "rule"),
    [
        ("a.example.test", "sub"),
        ("A.B.Example.Test.:8080", "sub"),
        ("example.test", "apex"),
        ("[::1]:8443", "apex"),
        ("badexample.test", None),
        ("example.test.evil", None),
        ("a.example.testx", None),
        ("", None),
    ],
)
def test_host_wildcards(host: str, rule: str | None) -> None:
    """``*.example.test`` matches subdomains at any depth, not the apex or look-alikes."""
    found = WILDCARDS.match("GET", host, "/x")
    assert (found.rule.name if found else None) == rule


PATTERNS = compiled(
    rules(
        'name = "star"\npaths = ["/one/*"]',
        'name = "globstar mid"\npaths = ["/a/**/z"]',
        'name = "capture"\npaths = ["/users/{id}/profile"]',
        'name = "two globstars"\npaths = ["/**/admin/**"]',
        'name = "root"\npaths = ["/"]',
    )
)


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("/one/x", "star"),
        ("/one/x/", "star"),
        ("/one", None),
        ("/one/x/y", None),
        ("/a/z", "globstar mid"),
        ("/a/b/z", "globstar mid"),
        ("/a/b/c/d/z", "globstar mid"),
        ("/a/b", None),
        ("/users/7/profile", "capture"),
        ("/users/profile", None),
        ("/admin", "two globstars"),
        ("/x/y/admin/z", "two globstars"),
        ("/", "root"),
        ("/x/y", None),
    ],
)
def test_wildcards_and_zero_segment_globstar(path: str, rule: str | None) -> None:
    """``*`` is exactly one segment, ``**`` zero or more, ``{x}`` exactly one."""
    found = PATTERNS.match("GET", "h", path)
    assert (found.rule.name if found else None) == rule


def test_globstar_is_lazy_for_captures() -> None:
    """With ``/**/{x}/**``, ``x`` is the leftmost possible segment."""
    policy = compiled(rules('name = "r"\npaths = ["/**/k/{x}/**"]'))
    found = policy.match("GET", "h", "/k/1/k/2/end")
    assert found is not None
    assert found.captures == {"x": "1"}


def test_first_matching_path_of_a_rule_provides_the_captures() -> None:
    """When two patterns of one rule match, the one listed first captures."""
    policy = compiled(rules('name = "r"\npaths = ["/{a}/{b}", "/{b}/{a}"]'))
    found = policy.match("GET", "h", "/1/2")
    assert found is not None
    assert found.captures == {"a": "1", "b": "2"}


def test_rule_with_another_host_does_not_block_a_later_rule() -> None:
    """Host and method filtering happen before first-match selection."""
    policy = compiled(
        rules(
            'name = "other host"\nhosts = ["x.test"]\npaths = ["/**"]',
            'name = "mine"\npaths = ["/**"]\nmethods = ["GET"]',
        )
    )
    found = policy.match("GET", "y.test", "/a")
    assert found is not None
    assert found.rule.name == "mine"


def test_unnormalised_path_never_matches() -> None:
    """``match`` expects a normalised path and refuses anything else."""
    assert CONTRACT.match("GET", "api.example.test", "healthz") is None


def test_long_paths_do_not_recurse() -> None:
    """A path with thousands of segments against ``**`` patterns is fine."""
    policy = compiled(rules('name = "r"\npaths = ["/**/**/end"]'))
    path = "/a" * 4000 + "/end"
    found = policy.match("GET", "h", path)
    assert found is not None
    assert policy.match("GET", "h", "/a" * 4000) is None


def test_five_hundred_rules_compile_and_the_first_match_wins() -> None:
    """A large policy compiles, and matching still respects file order."""
    bodies = []
    for i in range(500):
        methods = '\nmethods = ["POST"]' if i % 2 else ""
        bodies.append(f'name = "svc {i}"\npaths = ["/svc{i % 250}/**", "/exact/{i}"]{methods}')
    bodies.append('name = "fallback"\npaths = ["/**"]')
    policy = compile_policy(parse_policy(rules(*bodies)))
    assert len(policy.rules) == 501

    def name(method: str, path: str) -> str | None:
        found = policy.match(method, "h", path)
        return found.rule.name if found else None

    assert name("GET", "/svc3/x") == "fallback"  # svc 3 and svc 253 are POST-only
    assert name("POST", "/svc3/x") == "svc 3"
    assert name("GET", "/svc4/x") == "svc 4"
    assert name("GET", "/exact/498") == "svc 498"
    assert name("GET", "/exact/499") == "fallback"
    assert name("POST", "/exact/499") == "svc 499"
    assert name("GET", "/svc248") == "svc 248"
    assert name("POST", "/svc249/a") == "svc 249"
    assert name("POST", "/svc250/x") == "fallback"


def reference_match(segments: list[str], pattern: list[str]) -> dict[str, str] | None:
    """Plain recursive matcher: ``**`` tries the fewest segments first."""
    if not pattern:
        return {} if not segments else None
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        for taken in range(len(segments) + 1):
            found = reference_match(segments[taken:], rest)
            if found is not None:
                return found
        return None
    if not segments:
        return None
    found = reference_match(segments[1:], rest)
    if found is None or (head not in ("*", "{x}", "{y}") and head != segments[0]):
        return None
    return {head[1:-1]: segments[0], **found} if head.startswith("{") else found


_PATTERN = st.lists(st.sampled_from(["a", "b", "*", "**", "{x}", "{y}"]), max_size=5).filter(
    lambda parts: parts.count("{x}") < 2 and parts.count("{y}") < 2
)


@given(
    st.lists(st.lists(_PATTERN, min_size=1, max_size=2), min_size=1, max_size=6),
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=7),
)
def test_trie_agrees_with_a_naive_matcher(
    rule_patterns: list[list[list[str]]], segments: list[str]
) -> None:
    """For random rules and paths, the trie picks the same rule and captures as a linear scan."""
    bodies = []
    for i, patterns in enumerate(rule_patterns):
        paths = ", ".join('"/' + "/".join(p) + '"' for p in patterns)
        bodies.append(f'name = "r{i}"\npaths = [{paths}]')
    policy = compiled(rules(*bodies))
    expected = None
    for i, patterns in enumerate(rule_patterns):
        for pattern in patterns:
            captures = reference_match(segments, pattern)
            if captures is not None:
                expected = (i, captures)
                break
        if expected is not None:
            break
    found = policy.match("GET", "h", "/" + "/".join(segments))
    assert (None if found is None else (found.index, dict(found.captures))) == expected
