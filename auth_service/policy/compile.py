"""A validated policy compiled once into segment tries, and the request-time API.

Every path pattern of every rule is inserted into a trie whose nodes hold a
dict of literal children, a ``*`` child, ``{name}`` children and a ``**``
child. Matching walks the trie once with an explicit stack, so a request costs
roughly its segment count whatever the number of rules; no regex is compiled
or run per request.

Rules: the lowest rule index (file order) whose path, host and method match
wins; within a rule, its first matching path pattern provides the captures,
and ``**`` takes as few segments as possible (leftmost first). Each node knows
the lowest (rule, pattern) key beneath it, so branches that cannot beat the
best match found so far are skipped, and each (node, position) is visited once.

Case (``[defaults] path_case``): a path is read the way each kind of upstream
would read it, exactly and through each fold of ``CASE_FOLDS`` (patterns folded
the same way, one trie per fold, shared when folding changes no literal). With
``"sensitive"`` all those readings, with ``"insensitive"`` the folded ones, must
reach the same rule with the same captures; otherwise the path is refused as
``ambiguous_path``, since some upstream would route it elsewhere. Captured
values always come from the request's own segments, in their own case.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from auth_service.policy.evaluate import CompiledRule, Decision, Subject
from auth_service.policy.evaluate import needed_claims as rule_claims
from auth_service.policy.model import Policy, Rule
from auth_service.policy.paths import (
    CASE,
    CASE_FOLDS,
    PathRefusal,
    PatternSegment,
    canonical_path,
    normalize_host,
    parse_pattern,
    path_segments,
    unescape_segment,
)

_NO_KEY: Final = (1 << 62, 0)

Key = tuple[int, int]
"""(rule index, pattern position within the rule)."""
Captures = tuple[tuple[str, int], ...]
"""Capture name to the index of the path segment it took."""
Found = tuple[Key, Captures]


class _Node:
    __slots__ = ("captures", "ends", "globstar", "id", "literal", "min_key", "repeats", "star")

    def __init__(self, node_id: int, *, repeats: bool = False) -> None:
        self.id = node_id
        self.literal: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.captures: dict[str, _Node] = {}
        self.globstar: _Node | None = None
        self.repeats = repeats  # reached through "**": may swallow more segments
        self.ends: list[Key] = []
        self.min_key = _NO_KEY

    def children(self) -> list["_Node"]:
        found = [*self.literal.values(), *self.captures.values()]
        return found + [n for n in (self.star, self.globstar) if n is not None]


class _Trie:
    """The path patterns of a policy, literals optionally case-folded."""

    def __init__(self, patterns: list[tuple[tuple[PatternSegment, ...], Key]]) -> None:
        self._size = 1
        self.root = _Node(0)
        for pattern, key in patterns:
            self._insert(pattern, key)
        self._settle()

    def _new(self, *, repeats: bool = False) -> _Node:
        self._size += 1
        return _Node(self._size - 1, repeats=repeats)

    def _insert(self, pattern: tuple[PatternSegment, ...], key: Key) -> None:
        node = self.root
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

    def _settle(self) -> None:
        order: list[_Node] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            order.append(node)
            stack.extend(node.children())
        for node in reversed(order):
            node.ends.sort()
            keys = [child.min_key for child in node.children()] + node.ends[:1]
            node.min_key = min(keys, default=_NO_KEY)

    def find(self, segments: list[str], accepts: Callable[[int], bool]) -> Found | None:
        """The lowest key matching ``segments`` whose rule ``accepts`` (method and host)."""
        count = len(segments)
        best_key: Key = _NO_KEY
        best_caps: Captures = ()
        seen: set[int] = set()
        stack: list[tuple[_Node, int, Captures]] = [(self.root, 0, ())]
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
                    if accepts(key[0]):
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
            for name, child in node.captures.items():
                stack.append((child, i + 1, (*caps, (name, i))))
            if node.star is not None:
                stack.append((node.star, i + 1, caps))
            if (exact := node.literal.get(segments[i])) is not None:
                stack.append((exact, i + 1, caps))
        if best_key == _NO_KEY:
            return None
        return best_key, best_caps


def _fold_pattern(
    pattern: tuple[PatternSegment, ...], fold: Callable[[str], str]
) -> tuple[PatternSegment, ...]:
    return tuple(
        PatternSegment("literal", fold(s.value)) if s.kind == "literal" else s for s in pattern
    )


_MEMO_SIZE = 8192
_MEMO_LONGEST = 512

Reading = tuple[_Trie, Callable[[str], str] | None]
"""A trie and the fold applied to the path before matching it (``None``: as is)."""


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
        defaults = policy.defaults
        self.path_parameters = defaults.path_parameters
        """``[defaults] path_parameters``: ``refuse`` or ``strip``."""
        self.path_case = defaults.path_case
        """``[defaults] path_case``: ``sensitive`` or ``insensitive``."""
        self._memo: dict[tuple[str, str, str], Match | PathRefusal | None] = {}
        self.deny_status: int = defaults.deny_status
        """Status when an authenticated request matches no rule."""
        self.needed_claims = frozenset(name for rule in policy.rules for name in rule_claims(rule))
        """Top-level claim names any rule's ``require_claims`` reads."""
        self.claim_paths = tuple(
            sorted({path for rule in policy.rules for path in rule.require_claims})
        )
        """Every claim path any rule's ``require_claims`` reads (looked up once per token)."""
        self._rules = tuple(CompiledRule(i, rule) for i, rule in enumerate(policy.rules))
        self._no_match = Decision(
            outcome="deny", rule=None, reason="no_matching_rule", status=self.deny_status
        )
        self._no_credentials = Decision(
            outcome="unauthenticated", rule=None, reason="authentication_required", status=401
        )
        patterns = [
            (parse_pattern(pattern), (index, position))
            for index, rule in enumerate(policy.rules)
            for position, pattern in enumerate(rule.paths)
        ]
        exact = _Trie(patterns)
        readings: list[Reading] = [] if self.path_case == "insensitive" else [(exact, None)]
        for fold in CASE_FOLDS:
            folded = [(_fold_pattern(pattern, fold), key) for pattern, key in patterns]
            same = all(f == p for (f, _), (p, _) in zip(folded, patterns, strict=True))
            readings.append((exact if same else _Trie(folded), fold))
        self._readings = tuple(readings)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules, in file order."""
        return self.policy.rules

    def normalize(self, raw: str) -> str | PathRefusal:
        """The canonical path of a request target under this policy's ``path_parameters``."""
        return canonical_path(raw, self.path_parameters)

    def route(self, method: str, host: str, raw: str) -> Match | PathRefusal | None:
        """Normalise a request target and find its rule: the whole path step of a decision.

        A `PathRefusal` (400) when the path is invalid or ambiguous, ``None`` when
        no rule matches. ``method`` and ``host`` are normalised here.
        """
        path = canonical_path(raw, self.path_parameters)
        if isinstance(path, PathRefusal):
            return path
        return self.resolve(method, host, path)

    def resolve(self, method: str, host: str, path: str) -> Match | PathRefusal | None:
        """Find the rule of a normalised path, refusing one that readings disagree on.

        Results are memoised per compiled policy (bounded), since gateways ask
        about the same few routes over and over; a reload brings a fresh memo.
        """
        key = (method, host, path)
        memo = self._memo
        if key in memo:
            return memo[key]
        found = self._resolve(method, host, path)
        if len(path) + len(host) + len(method) > _MEMO_LONGEST:
            return found  # long values are not kept: the memo stays small whatever is asked
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[key] = found
        return found

    def match(self, method: str, host: str, path: str) -> Match | None:
        """The first rule (file order) matching a request; ``path`` must be normalised.

        ``None`` when no rule matches, and also for a path `resolve` refuses as
        ambiguous (which no rule may decide).
        """
        found = self.resolve(method, host, path)
        return None if isinstance(found, PathRefusal) else found

    def _resolve(self, method: str, host: str, path: str) -> Match | PathRefusal | None:
        method, host = method.upper(), normalize_host(host)
        if not path.startswith("/"):
            return None
        rules = self._rules

        def accepts(index: int) -> bool:
            return rules[index].accepts(method, host)

        first: Found | None = None
        tried: set[tuple[int, str]] = set()
        for number, (trie, fold) in enumerate(self._readings):
            reading = path if fold is None else fold(path)
            if (id(trie), reading) in tried:
                continue
            tried.add((id(trie), reading))
            found = trie.find(path_segments(reading), accepts)
            if number == 0:
                first = found
            elif _differs(found, first):
                return CASE
        if first is None:
            return None
        segments = path_segments(path)
        compiled = rules[first[0][0]]
        captures = {name: unescape_segment(segments[i]) for name, i in first[1]}
        return Match(rule=compiled.rule, index=compiled.index, captures=captures)

    def decide(self, match: Match | None, subject: Subject | None, *, mfa_done: bool) -> Decision:
        """Decide a matched (or unmatched) request for ``subject`` (``None``: no credentials)."""
        if match is None:
            return self._no_credentials if subject is None else self._no_match
        compiled = self._rules[match.index]
        if compiled.rule is not match.rule:
            raise ValueError("match comes from a different policy")
        return compiled.decide(match.captures, subject, mfa_done)


def _differs(found: Found | None, first: Found | None) -> bool:
    if found is None or first is None:
        return found is not first
    return found[0][0] != first[0][0] or found[1] != first[1]


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Compile a validated policy (from ``parse_policy``) for matching."""
    return CompiledPolicy(policy)
