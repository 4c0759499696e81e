"""Recovery codes: generated once, shown once, stored as argon2id hashes, used once.

A code is 10 characters from a 31-symbol alphabet without look-alikes (49 bits),
shown as ``xxxxx-xxxxx``; input is normalised (case, spaces, dashes) before
hashing. Hashes are argon2id PHC strings with a random salt each (argon2-cffi),
so the table reveals nothing usable and equal codes of two users differ.

Checking a presented code hashes it against *every* unused hash of the user,
without stopping at the first match: the time taken does not depend on which
code (if any) matched. argon2-cffi compares digests in constant time. The work
is CPU-bound, so it runs in a thread (`asyncio.to_thread` in the service).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ("ALPHABET", "CODE_COUNT", "RecoveryCodes", "normalise")

ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
"""31 symbols: no i, l, o, 0, 1 (look-alikes)."""
CODE_COUNT = 10
_LENGTH = 10


def normalise(code: str) -> str:
    """Lower case without spaces or dashes (what the user may have typed around the code)."""
    return "".join(c for c in code.lower() if c not in " -\t")


class RecoveryCodes:
    """Generates, hashes and checks recovery codes.

    Args:
        time_cost: argon2 iterations; memory_cost: KiB; parallelism: lanes. The
            defaults are OWASP's argon2id minimum (m=19 MiB, t=2, p=1).
    """

    def __init__(self, *, time_cost: int = 2, memory_cost: int = 19 * 1024, parallelism: int = 1):
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )

    @staticmethod
    def generate(count: int = CODE_COUNT) -> list[str]:
        """``count`` fresh random codes, formatted ``xxxxx-xxxxx``."""
        codes = []
        for _ in range(count):
            raw = "".join(secrets.choice(ALPHABET) for _ in range(_LENGTH))
            codes.append(f"{raw[:5]}-{raw[5:]}")
        return codes

    def hash(self, code: str) -> str:
        """The argon2id PHC string of a normalised code."""
        return self._hasher.hash(normalise(code))

    def find(self, code: str, hashes: Sequence[tuple[int, str]]) -> int | None:
        """The id of the hash ``code`` matches among ``(id, hash)`` pairs, or ``None``.

        Every hash is checked, whatever the outcome, so timing does not leak the position.
        """
        presented = normalise(code)
        found: int | None = None
        for row_id, stored in hashes:
            try:
                ok: bool = self._hasher.verify(stored, presented)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                ok = False
            if ok and found is None:
                found = row_id
        return found
