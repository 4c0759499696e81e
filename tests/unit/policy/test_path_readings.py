"""Property: a path is decided as every upstream would read it, or refused (CONTRACT §3).

Small reference readers, written here independently of ``policy/paths.py``,
read a raw path the way common upstreams do:

* nginx-like: percent-decode everything, merge slashes, resolve dot segments;
* Tomcat-like: drop ``;...`` from each raw segment (so ``..;`` is ``..``), read
  ``\\`` as ``/``, decode (``%2F`` too), merge, resolve dots;
* Envoy-like: unescape ``%2F``/``%5C``, decode unreserved characters only,
  merge, resolve dots; the upstream behind it decodes the rest;
* Windows/IIS-like: ``\\`` is ``/`` before and after decoding;

each also through every case fold (ASCII, Unicode lower-case, upper-case),
which is how case-insensitive routers compare. A tiny reference matcher finds
the rule each reading reaches. For every generated path and subject, the
service either refuses it (400), and then there was something to refuse, or
every reading reaches the same rule and the decision equals the most
restrictive of the readings' decisions.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth_service.policy import CompiledPolicy, Decision, Match

from .samples import FakeSubject, compiled, evaluate, rules

Reader = Callable[[str], list[str] | None]
Fold = Callable[[str], str]

# -- reference readers -------------------------------------------------------

_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset((string.ascii_letters + string.digits + "-._~").encode())


def _decode(text: str, *, only: Callable[[int], bool] = lambda _: True) -> str | None:
    data = text.encode()
    if re.search(rb"%(?![0-9A-Fa-f]{2})", data):
        return None  # every server refuses a stray '%'
    out = _ESCAPE.sub(
        lambda m: bytes([int(m[1], 16)]) if only(int(m[1], 16)) else m[0].upper(), data
    )
    try:
        return out.decode()
    except UnicodeDecodeError:
        return None


def _dots(path: str) -> list[str]:
    """Merge slashes and resolve '.'/'..' (never above the root): the segments."""
    stack: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if stack:
                stack.pop()
        else:
            stack.append(segment)
    return stack


def nginx(raw: str) -> list[str] | None:
    """Decode all, then merge and resolve."""
    decoded = _decode(raw)
    return None if decoded is None else _dots(decoded)


def strip_parameters(raw: str) -> str:
    """Tomcat, Jetty, Spring: ';...' up to the next '/' is a path parameter, dropped."""
    return "/".join(segment.split(";")[0] for segment in raw.split("/"))


def tomcat(raw: str) -> list[str] | None:
    """Parameters dropped first (``..;`` is ``..``), backslash is slash, then decode."""
    decoded = _decode(strip_parameters(raw).replace("\\", "/"))
    return None if decoded is None else _dots(decoded.replace("\\", "/"))


def envoy(raw: str) -> list[str] | None:
    """Unreserved decoded, resolved, escaped slashes kept (the default); the upstream then
    decodes each segment, so ``%2F`` is a character inside one."""
    partial = _decode(raw, only=lambda byte: byte in _UNRESERVED)
    if partial is None:
        return None
    segments = [_decode(segment) for segment in _dots(partial)]
    return None if None in segments else [s for s in segments if s is not None]


def windows(raw: str) -> list[str] | None:
    """IIS: backslash is a separator, raw or encoded."""
    decoded = _decode(raw.replace("\\", "/"))
    return None if decoded is None else _dots(decoded.replace("\\", "/"))


READERS: tuple[Reader, ...] = (nginx, tomcat, envoy, windows)


def ascii_lower(text: str) -> str:
    """Only A-Z folded."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


FOLDS: tuple[Fold, ...] = (ascii_lower, str.lower, str.upper)

# -- reference matcher -------------------------------------------------------


def _glob(
    pattern: list[str], segments: list[str], captures: tuple[tuple[str, int], ...], at: int
) -> tuple[tuple[str, int], ...] | None:
    if not pattern:
        return captures if at == len(segments) else None
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        for end in range(at, len(segments) + 1):  # as few segments as possible
            found = _glob(rest, segments, captures, end)
            if found is not None:
                return found
        return None
    if at == len(segments):
        return None
    if head == "*":
        return _glob(rest, segments, captures, at + 1)
    if head.startswith("{"):
        return _glob(rest, segments, (*captures, (head[1:-1], at)), at + 1)
    return _glob(rest, segments, captures, at + 1) if head == segments[at] else None


def reference_match(
    policy: CompiledPolicy, original: list[str], fold: Fold | None
) -> tuple[int, tuple[tuple[str, str], ...]] | None:
    """First rule (file order) and its captured values for a reading; literals folded."""
    segments = original if fold is None else [fold(s) for s in original]
    for index, rule in enumerate(policy.rules):
        for pattern in rule.paths:
            parts = [p for p in pattern.split("/") if p]
            if fold is not None:
                parts = [p if p in ("*", "**") or p.startswith("{") else fold(p) for p in parts]
            found = _glob(parts, segments, (), 0)
            if found is not None:
                return index, tuple((name, original[at]) for name, at in found)
    return None


# -- the property ------------------------------------------------------------

_RANK = {"allow": 0, "mfa_required": 1, "unauthenticated": 2, "deny": 3}
_ENCODED_SEPARATOR = re.compile(r"%(2[fF]|5[cC]|3[bB]|00)")


def readings(raw: str, parameters: str, case: str) -> list[tuple[list[str], Fold | None]]:
    """Every (decoded path, fold) some upstream may act on; refusing servers left out."""
    source = strip_parameters(raw) if parameters == "strip" else raw
    paths = [read(source) for read in READERS]
    folds: list[Fold | None] = [*FOLDS] if case == "insensitive" else [None, *FOLDS]
    return [(path, fold) for path in paths if path is not None for fold in folds]


def reference_decide(
    policy: CompiledPolicy,
    path: list[str],
    fold: Fold | None,
    subject: FakeSubject | None,
    mfa: bool,
) -> tuple[int | None, Decision]:
    """The rule a reading reaches and the policy's decision there."""
    found = reference_match(policy, path, fold)
    if found is None:
        return None, policy.decide(None, subject, mfa_done=mfa)
    index, captured = found
    match = Match(rule=policy.rules[index], index=index, captures=dict(captured))
    return index, policy.decide(match, subject, mfa_done=mfa)


def something_to_refuse(raw: str, parameters: str) -> bool:
    """Syntax that upstreams read in different ways, or that does not decode."""
    if "\\" in raw or "#" in raw:  # even inside a parameter that "strip" would remove
        return True
    path = strip_parameters(raw) if parameters == "strip" else raw
    if ";" in path or _ENCODED_SEPARATOR.search(path):
        return True
    decoded = _decode(path)
    return decoded is None or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in decoded)


_BODIES = (
    'name = "public"\npaths = ["/", "/public/**", "/Docs/**"]\nallow = "anonymous"',
    'name = "admin"\npaths = ["/admin/**"]\nrequire_roles = ["auth-admin"]',
    'name = "tenant"\npaths = ["/tenants/{tenant}/**"]\n'
    'require_claims = { tenant_id = "{tenant}" }',
    'name = "payments"\npaths = ["/payments/**"]\nrequire_mfa = true',
    'name = "keys"\npaths = ["/keys/*"]\nrequire_roles = ["key-reader"]',
)
_CATCH_ALL = 'name = "signed in"\npaths = ["/**"]'

POLICIES = {
    (parameters, case, catch_all): compiled(
        rules(
            *_BODIES,
            *([_CATCH_ALL] if catch_all else []),
            defaults=f'path_parameters = "{parameters}"\npath_case = "{case}"',
        )
    )
    for parameters in ("refuse", "strip")
    for case in ("sensitive", "insensitive")
    for catch_all in (True, False)
}

SUBJECTS = (
    None,
    FakeSubject(realm_roles=frozenset({"app-user"}), claims={"tenant_id": "t-1"}),
    FakeSubject(realm_roles=frozenset({"auth-admin", "key-reader"}), claims={"tenant_id": "T-1"}),
)

_PIECES = st.sampled_from(
    [
        "public", "PUBLIC", "admin", "Admin", "ADMIN", "adm\u0131n", "%61dmin", "tenants",
        "Tenants", "t-1", "T-1", "t-2", "payments", "keys", "\u212aeys", "docs", "Docs", "x",
        ".", "..", "%2e", "%2E%2e", ".%2e", "", ";", ";x=1", "..;", "\\", "%5C", "%5c", "%2F",
        "%2f", "%3B", "%00", "%25", "%252F", "%", "%zz", "%C3%A9", "\u00e9", "%ff", "%0a", "#",
    ]
)  # fmt: skip
_SEGMENTS = st.lists(_PIECES, min_size=1, max_size=3).map("".join)
PATHS = st.lists(_SEGMENTS, max_size=6).map(lambda segments: "/" + "/".join(segments))


@pytest.mark.parametrize(("parameters", "case", "catch_all"), list(POLICIES))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=PATHS, mfa=st.booleans())
def test_decision_is_the_most_restrictive_reading_or_a_refusal(
    parameters: str, case: str, catch_all: bool, raw: str, mfa: bool
) -> None:
    """Refused only with cause; otherwise all readings agree on the rule, and on the decision."""
    policy = POLICIES[(parameters, case, catch_all)]
    views = readings(raw, parameters, case)
    for subject in SUBJECTS:
        ours = evaluate(policy, "GET", "h", raw, subject, mfa_done=mfa)
        theirs = [reference_decide(policy, path, fold, subject, mfa) for path, fold in views]
        reached = {index for index, _ in theirs}
        if ours.status == 400:
            assert ours.reason in ("invalid_path", "ambiguous_path")
            assert something_to_refuse(raw, parameters) or len(reached) > 1, (raw, reached)
            continue
        assert not something_to_refuse(raw, parameters), raw
        assert len(reached) == 1, (raw, reached)  # no reading reaches another rule
        strictest = max((d for _, d in theirs), key=lambda d: _RANK[d.outcome])
        assert (ours.outcome, ours.reason, ours.status, ours.rule) == (
            strictest.outcome,
            strictest.reason,
            strictest.status,
            strictest.rule,
        ), raw


@pytest.mark.parametrize(
    ("raw", "parameters", "case"),
    [
        ("/public/..;/admin/users", "refuse", "sensitive"),
        ("/admin;x=1/users", "refuse", "sensitive"),
        ("/payments;x/1", "refuse", "sensitive"),
        ("/tenants/t-2/..;/t-1/orders", "refuse", "sensitive"),
        ("/ADMIN/users", "refuse", "sensitive"),
        ("/public/..\\admin", "refuse", "sensitive"),
        ("/public/..%5Cadmin", "strip", "insensitive"),
        ("/public%2F..%2Fadmin", "strip", "sensitive"),
        ("/adm\u0131n/users", "refuse", "insensitive"),
    ],
)
def test_the_readers_do_disagree_on_the_reproductions(raw: str, parameters: str, case: str) -> None:
    """Sanity of the references: each known bypass is read in two different ways."""
    policy = POLICIES[(parameters, case, True)]
    source = strip_parameters(raw) if parameters == "strip" else raw
    reached = {
        reference_match(policy, path, fold)
        for path in (nginx(raw), tomcat(source), envoy(source), windows(source))
        if path is not None
        for fold in (None, *FOLDS)
    }
    assert len(reached) > 1  # another rule, or the same rule capturing another segment
    assert evaluate(policy, "GET", "h", raw, None, mfa_done=False).status == 400
