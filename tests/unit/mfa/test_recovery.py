"""Recovery codes: format, argon2id hashing, single-pass lookup."""

from __future__ import annotations

from auth_service.mfa.recovery import ALPHABET, CODE_COUNT, RecoveryCodes, normalise

FAST = RecoveryCodes(time_cost=1, memory_cost=1024)


def test_generated_codes_are_distinct_and_well_formed() -> None:
    """Ten codes ``xxxxx-xxxxx`` from the look-alike-free alphabet."""
    codes = FAST.generate()
    assert len(codes) == CODE_COUNT == len(set(codes))
    for code in codes:
        head, tail = code.split("-")
        assert len(head) == len(tail) == 5
        assert set(head + tail) <= set(ALPHABET)
        assert not set("ilo01") & set(head + tail)


def test_hash_is_salted_argon2id_without_the_code() -> None:
    """Equal codes hash differently (salt); the PHC string says argon2id; no plaintext."""
    code = FAST.generate(1)[0]
    a, b = FAST.hash(code), FAST.hash(code)
    assert a != b and a.startswith("$argon2id$")
    assert normalise(code) not in a and code not in a


def test_find_returns_the_matching_id_whatever_the_spelling() -> None:
    """Upper case, spaces and missing dashes still match; wrong codes match nothing."""
    codes = FAST.generate(3)
    rows = [(i, FAST.hash(c)) for i, c in enumerate(codes, start=10)]
    assert FAST.find(codes[1], rows) == 11
    assert FAST.find(codes[2].upper().replace("-", " "), rows) == 12
    assert FAST.find("aaaaa-aaaaa", rows) is None
    assert FAST.find(codes[0], []) is None


def test_find_checks_every_hash() -> None:
    """The lookup does not stop at the first match (timing does not reveal the position)."""
    codes = FAST.generate(4)
    rows = [(i, FAST.hash(c)) for i, c in enumerate(codes)]
    calls: list[str] = []
    inner = FAST._hasher

    class Counting:
        def verify(self, stored: str, presented: str) -> bool:
            calls.append(stored)
            return inner.verify(stored, presented)

    counted = RecoveryCodes(time_cost=1, memory_cost=1024)
    counted._hasher = Counting()  # type: ignore[assignment]
    assert counted.find(codes[0], rows) == 0
    assert len(calls) == 4


def test_a_corrupt_hash_is_a_mismatch() -> None:
    """A malformed stored value never matches and never raises."""
    assert FAST.find("abcde-fghjk", [(1, "not-a-hash")]) is None
