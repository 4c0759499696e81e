"""The local spool: framing, torn tails, segment release, and orphan locking."""

from __future__ import annotations

from pathlib import Path

from auth_service.audit.spool import Spool, find_orphans, read_frames


def test_frames_read_back_in_order_across_segments(tmp_path: Path) -> None:
    """Appended events come back in order even when they span several segments."""
    spool = Spool(tmp_path, "w1", segment_bytes=100)
    spool.open()
    for seq in range(1, 21):
        assert spool.append(seq, b"x" * 30)
    assert [s for s, _ in spool.read_from(1, 100)] == list(range(1, 21))
    assert [s for s, _ in spool.read_from(15, 3)] == [15, 16, 17]
    spool.close(remove=True)
    assert not (tmp_path / "w1").exists()


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    """A half-written last frame (crash mid-write) is skipped; earlier frames survive."""
    spool = Spool(tmp_path, "w1")
    spool.open()
    spool.append(1, b"first")
    spool.append(2, b"second")
    spool.close(remove=False)
    seg = next((tmp_path / "w1").glob("seg-*.log"))
    seg.write_bytes(seg.read_bytes()[:-3])
    assert [p for _, p, _ in read_frames(seg)] == [b"first"]


def test_release_deletes_written_segments(tmp_path: Path) -> None:
    """Segments whose events are all written are deleted; the size shrinks accordingly."""
    spool = Spool(tmp_path, "w1", segment_bytes=50)
    spool.open()
    for seq in range(1, 11):
        spool.append(seq, b"y" * 20)
    spool.release_through(6)
    assert [s for s, _ in spool.read_from(1, 100)][0] <= 7
    spool.release_through(10)
    assert spool.size == 0 and spool.read_from(1, 100) == []
    spool.close(remove=True)


def test_cap_refuses_appends(tmp_path: Path) -> None:
    """Past ``max_bytes`` nothing is written and append says so."""
    spool = Spool(tmp_path, "w1", max_bytes=100)
    spool.open()
    assert spool.append(1, b"z" * 50)
    assert not spool.append(2, b"z" * 50)
    spool.close(remove=True)


def test_locked_spool_is_not_an_orphan_until_released(tmp_path: Path) -> None:
    """A live writer's directory is skipped; after it closes, it is adopted exactly once."""
    live = Spool(tmp_path, "live")
    live.open()
    live.append(1, b"e")
    assert find_orphans(tmp_path) == []
    live.close(remove=False)
    (orphan,) = find_orphans(tmp_path)
    assert find_orphans(tmp_path) == []  # the first adopter holds the lock
    assert [p for _, p in orphan.frames()] == [b"e"]
    orphan.remove()
    assert not (tmp_path / "live").exists()
