"""The verified-token cache: bounded, oldest out first, entries gone when they expire."""

from __future__ import annotations

from auth_service.tokens.cache import ExpiringCache, token_key


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_full_cache_drops_the_oldest_entry_first() -> None:
    cache: ExpiringCache[str] = ExpiringCache(3, Clock())
    for name in ("a", "b", "c", "d", "e"):
        cache.put(name.encode(), name, 2_000)
    assert len(cache) == 3
    assert [cache.get(k) for k in (b"a", b"b", b"c", b"d", b"e")] == [None, None, "c", "d", "e"]


def test_replacing_a_key_when_full_evicts_nothing() -> None:
    cache: ExpiringCache[int] = ExpiringCache(2, Clock())
    cache.put(b"a", 1, 2_000)
    cache.put(b"b", 2, 2_000)
    cache.put(b"a", 3, 2_000)
    assert (cache.get(b"a"), cache.get(b"b"), len(cache)) == (3, 2, 2)


def test_entries_expire_with_their_token() -> None:
    clock = Clock()
    cache: ExpiringCache[str] = ExpiringCache(10, clock)
    cache.put(b"short", "s", clock.now + 5)
    cache.put(b"long", "l", clock.now + 60)
    cache.put(b"dead", "d", clock.now)  # already expired: not stored
    assert (cache.get(b"short"), cache.get(b"long"), cache.get(b"dead")) == ("s", "l", None)
    clock.now += 5
    assert (cache.get(b"short"), cache.get(b"long")) == (None, "l")
    assert len(cache) == 1  # the expired entry was dropped on read


def test_eviction_sweeps_expired_entries_before_dropping_live_ones() -> None:
    clock = Clock()
    cache: ExpiringCache[str] = ExpiringCache(3, clock)
    cache.put(b"live-old", "x", clock.now + 600)
    cache.put(b"expiring-1", "y", clock.now + 5)
    cache.put(b"expiring-2", "z", clock.now + 5)
    clock.now += 30
    cache.put(b"new", "n", clock.now + 600)
    assert cache.get(b"live-old") == "x" and cache.get(b"new") == "n"
    assert len(cache) == 2


def test_token_key_is_a_fixed_size_digest_that_tells_tokens_apart() -> None:
    a, b = token_key("header.payload.sig1"), token_key("header.payload.sig2")
    assert len(a) == len(b) == 32 and a != b
    assert token_key("header.payload.sig1") == a
    assert len(token_key("x" * 20_000)) == 32
