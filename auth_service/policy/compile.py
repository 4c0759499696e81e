"""A validated policy compiled once into a segment trie, and the request-time API.

Every path pattern of every rule is inserted into one trie whose nodes hold a
dict of literal children, a ``*`` child, ``{name}`` children and a ``**``
child. Matching walks the trie once with an explicit stack, so a request costs
roughly its segment count whatever the number of rules; no regex is compiled
or run per request.

Rules: the lowest rule index (file order) whose path, host and method match
wins; within a rule, its first matching path pattern provides the captures,
and ``**`` takes as few segments as possible (leftmost first). Each node knows
the lowest (rule, pattern) key beneath it, so branches that cannot beat the
best match found so far are skipped, and each (node, position) is visited once.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from auth_service.policy.evaluate import CompiledRule, Decision, Subject
from auth_service.policy.evaluate import needed_claims as rule_claims
from auth_service.policy.model import Policy, Rule
from auth_service.policy.paths import (
    PatternSegment,
    normalize_host,
    parse_pattern,
    path_segments,
    unescape_segment,
)

_NO_KEY: Final = (1 << 62, 0)


class _Node:
    __slots__ = ("captures", "ends", "globstar", "id", "literal", "min_key", "repeats", "star")

    def __init__(self, node_id: int, *, repeats: bool = False) -> None:
        self.id = node_id
        self.literal: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.captures: dict[str, _Node] = {}
        self.globstar: _Node | None = None
        self.repeats = repeats  # reached through "**": may swallow more segments
        self.ends: list[tuple[int, int]] = []
        self.min_key = _NO_KEY

    def children(self) -> list["_Node"]:
        found = [*self.literal.values(), *self.captures.values()]
        return found + [n for n in (self.star, self.globstar) if n is not None]


_MEMO_SIZE = 8192


@dataclass(frozen=True, slots=True)
class Match:
    """The rule that matched a request, with the path segments it captured."""

    rule: Rule
    """The deciding rule."""
    index: int
    """Its zero-based position in the file."""
    captures: Mapping[str, str]
    """Capture name to the (decoded) path segment."""


class CompiledPolicy:
    """A policy ready for matching; immutable, safe to share between requests."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        """The policy this was compiled from."""
        self._memo: dict[tuple[str, str, str], Match | None] = {}
        self.deny_status: int = policy.defaults.deny_status
        """Status when an authenticated request matches no rule."""
        self.needed_claims = frozenset(name for rule in policy.rules for name in rule_claims(rule))
        """Top-level claim names any rule's ``require_claims`` reads."""
        self._rules = tuple(CompiledRule(i, rule) for i, rule in enumerate(policy.rules))
        self._no_match = Decision(
            outcome="deny", rule=None, reason="no_matching_rule", status=self.deny_status
        )
        self._no_credentials = Decision(
            outcome="unauthenticated", rule=None, reason="authentication_required", status=401
        )
        self._size = 1
        self._root = _Node(0)
        for index, rule in enumerate(policy.rules):
            for position, pattern in enumerate(rule.paths):
                self._insert(parse_pattern(pattern), (index, position))
        self._settle(self._root)

    def _new(self, *, repeats: bool = False) -> _Node:
        self._size += 1
        return _Node(self._size - 1, repeats=repeats)

    def _insert(self, pattern: tuple[PatternSegment, ...], key: tuple[int, int]) -> None:
        node = self._root
        for segment in pattern:
            if segment.kind == "literal":
                child = node.literal.get(segment.value)
                if child is None:
                    child = node.literal[segment.value] = self._new()
            elif segment.kind == "capture":
                child = node.captures.get(segment.value)
                if child is None:
                    child = node.captures[segment.value] = self._new()
            elif segment.kind == "star":
                child = node.star = node.star or self._new()
            else:
                child = node.globstar = node.globstar or self._new(repeats=True)
            node = child
        node.ends.append(key)

    def _settle(self, root: _Node) -> None:
        order: list[_Node] = []
        stack = [root]
        while stack:
            node = stack.pop()
            order.append(node)
            stack.extend(node.children())
        for node in reversed(order):
            node.ends.sort()
            keys = [child.min_key for child in node.children()] + node.ends[:1]
            node.min_key = min(keys, default=_NO_KEY)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules, in file order."""
        return self.policy.rules

    def match(self, method: str, host: str, path: str) -> Match | None:
        """The first rule (file order) matching a request; ``path`` must be normalised.

        Results are memoised per compiled policy (bounded), since gateways ask
        about the same few routes over and over; a reload brings a fresh memo.
        """
        key = (method, host, path)
        memo = self._memo
        if key in memo:
            return memo[key]
        found = self._match(method, host, path)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[key] = found
        return found

    def _match(self, method: str, host: str, path: str) -> Match | None:
        method, host = method.upper(), normalize_host(host)
        if not path.startswith("/"):
            return None
        segments = path_segments(path)
        count = len(segments)
        best_key: tuple[int, int] = _NO_KEY
        best_caps: tuple[tuple[str, str], ...] = ()
        seen: set[int] = set()
        stack: list[tuple[_Node, int, tuple[tuple[str, str], ...]]] = [(self._root, 0, ())]
        while stack:
            node, i, caps = stack.pop()
            if node.min_key >= best_key:
                continue
            mark = node.id * (count + 1) + i
            if mark in seen:
                continue
            seen.add(mark)
            if i == count:
                for key in node.ends:
                    if key >= best_key:
                        break
                    if self._rules[key[0]].accepts(method, host):
                        best_key, best_caps = key, caps
                        break
            # Pushed in reverse order of preference: swallowing one more segment
            # into "**" is tried last, which makes "**" lazy.
            if node.repeats and i < count:
                stack.append((node, i + 1, caps))
            if node.globstar is not None:
                stack.append((node.globstar, i, caps))
            if i == count:
                continue
            segment = segments[i]
            for name, child in node.captures.items():
                stack.append((child, i + 1, (*caps, (name, segment))))
            if node.star is not None:
                stack.append((node.star, i + 1, caps))
            if (exact := node.literal.get(segment)) is not None:
                stack.append((exact, i + 1, caps))
        if best_key == _NO_KEY:
            return None
        compiled = self._rules[best_key[0]]
        captures = {name: unescape_segment(value) for name, value in best_caps}
        return Match(rule=compiled.rule, index=compiled.index, captures=captures)

    def decide(self, match: Match | None, subject: Subject | None, *, mfa_done: bool) -> Decision:
        """Decide a matched (or unmatched) request for ``subject`` (``None``: no credentials)."""
        if match is None:
            return self._no_credentials if subject is None else self._no_match
        compiled = self._rules[match.index]
        if compiled.rule is not match.rule:
            raise ValueError("match comes from a different policy")
        return compiled.decide(match.captures, subject, mfa_done)


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Compile a validated policy (from ``parse_policy``) for matching."""
    return CompiledPolicy(policy)
