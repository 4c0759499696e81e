"""The durable local spool: append-only segment files, one directory per writer.

Layout::

    <spool root>/<chain id>/lock            flock()ed by the owning process while it lives
    <spool root>/<chain id>/seg-00000001.log
    <spool root>/<chain id>/seg-00000002.log ...

Every event is appended to the current segment by `emit` with a single
``write()`` on an ``O_APPEND`` descriptor *before* `emit` returns. That is the
durability point for a process crash: once ``write()`` returned, the bytes are
in the kernel's page cache and survive ``kill -9``. ``fsync`` (which only
matters for a machine crash or power loss) is done in batches by the
background writer, off the event loop. Segments whose events are all in
PostgreSQL are deleted; the current one is rotated as soon as it is fully
written, so an idle spool is empty.

Frames are ``<u32 length><u32 crc32><u64 seq><payload>``; the CRC covers seq
and payload. A reader stops at the first short or corrupt frame, which can only
be the torn tail of a segment whose writer died mid-``write()``.

A directory whose ``lock`` can be taken is an orphan: its writer is dead (a
crashed worker, a previous run). `find_orphans` locks such directories so
exactly one live writer replays each, then `OrphanSpool.remove` deletes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

__all__ = ("OrphanSpool", "Spool", "encode_frame", "find_orphans", "read_frames")

_HEADER = struct.Struct("<IIQ")
_SEQ = struct.Struct("<Q")
_MAX_FRAME = 16 * 1024 * 1024
log = structlog.get_logger("auth_service.audit.spool")


def encode_frame(seq: int, payload: bytes) -> bytes:
    """One frame: header (length, CRC, seq) followed by the payload."""
    crc = zlib.crc32(payload, zlib.crc32(_SEQ.pack(seq)))
    return _HEADER.pack(len(payload), crc, seq) + payload


def _parse(buf: bytes, offset: int) -> tuple[int, bytes, int] | None:
    """The frame at ``offset`` as ``(seq, payload, next offset)``, or ``None`` if torn."""
    end = offset + _HEADER.size
    if end > len(buf):
        return None
    length, crc, seq = _HEADER.unpack_from(buf, offset)
    if length > _MAX_FRAME or end + length > len(buf):
        return None
    payload = buf[end : end + length]
    if zlib.crc32(payload, zlib.crc32(_SEQ.pack(seq))) != crc:
        return None
    return seq, payload, end + length


def read_frames(path: Path, offset: int = 0) -> Iterator[tuple[int, bytes, int]]:
    """``(seq, payload, offset after it)`` for each intact frame of a segment file."""
    try:
        buf = path.read_bytes()
    except FileNotFoundError:
        return
    while offset < len(buf):
        frame = _parse(buf, offset)
        if frame is None:
            log.warning("audit_spool_torn_tail", segment=str(path), dropped_bytes=len(buf) - offset)
            return
        yield frame
        offset = frame[2]


def _segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("seg-*.log"))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class _Segment:
    path: Path
    first_seq: int = 0
    last_seq: int = 0
    size: int = 0


class Spool:
    """The spool a live writer appends to (``<root>/<owner>/``); not thread-safe by itself."""

    def __init__(
        self, root: Path, owner: str, *, segment_bytes: int = 8 << 20, max_bytes: int = 1 << 30
    ) -> None:
        self.root = root
        self.dir = root / owner
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self._segments: list[_Segment] = []
        self._next_index = 1
        self._fd = -1
        self._lock_fd = -1
        self._dirty = False
        self._cursor: tuple[Path, int, int] | None = None  # (segment, offset, next seq)
        self.size = 0
        """Bytes currently in this spool's segments."""

    def open(self) -> None:
        """Create the directory, lock it for this process and open the first segment."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._open_segment()
        _fsync_dir(self.root)

    def _open_segment(self) -> None:
        path = self.dir / f"seg-{self._next_index:08d}.log"
        self._next_index += 1
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._segments.append(_Segment(path))
        _fsync_dir(self.dir)

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        self._open_segment()

    def append(self, seq: int, payload: bytes) -> bool:
        """Append one event; ``False`` (nothing written) at the cap or when the disk fails."""
        frame = encode_frame(seq, payload)
        if self.size + len(frame) > self.max_bytes:
            return False
        current = self._segments[-1]
        if current.size >= self.segment_bytes:
            self._rotate()
            current = self._segments[-1]
        try:
            view = memoryview(frame)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            log.error("audit_spool_write_failed", error=str(exc))
            # A partial frame may now end this segment: continue in a fresh one.
            with contextlib.suppress(OSError):
                self._rotate()
            return False
        if current.first_seq == 0:
            current.first_seq = seq
        current.last_seq = seq
        current.size += len(frame)
        self.size += len(frame)
        self._dirty = True
        return True

    def take_dirty_fd(self) -> int | None:
        """A duplicate of the current segment's descriptor to ``fsync`` (caller closes it)."""
        if not self._dirty or self._fd < 0:
            return None
        self._dirty = False
        return os.dup(self._fd)

    def release_through(self, seq: int) -> None:
        """Delete segments whose events (up to ``seq``) are all in PostgreSQL."""
        current = self._segments[-1]
        if current.size and current.last_seq <= seq:
            self._rotate()
        keep: list[_Segment] = []
        for seg in self._segments[:-1]:
            if seg.size == 0 or seg.last_seq <= seq:
                with contextlib.suppress(FileNotFoundError):
                    seg.path.unlink()
                self.size -= seg.size
            else:
                keep.append(seg)
        keep.append(self._segments[-1])
        self._segments = keep

    def read_from(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` spooled events with ``seq`` at or after ``seq``, in order."""
        out: list[tuple[int, bytes]] = []
        for seg in self._segments:
            if seg.size == 0 or seg.last_seq < seq:
                continue
            offset = 0
            if self._cursor is not None and self._cursor[0] == seg.path and self._cursor[2] <= seq:
                offset = self._cursor[1]
            for frame_seq, payload, end in read_frames(seg.path, offset):
                if frame_seq < seq:
                    continue
                out.append((frame_seq, payload))
                self._cursor = (seg.path, end, frame_seq + 1)
                if len(out) >= limit:
                    return out
        return out

    def close(self, *, remove: bool) -> None:
        """Close; with ``remove`` (everything written) delete the directory too."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if remove:
            for seg in self._segments:
                with contextlib.suppress(FileNotFoundError):
                    seg.path.unlink()
            self.size = 0
            with contextlib.suppress(FileNotFoundError):
                (self.dir / "lock").unlink()
            with contextlib.suppress(OSError):
                self.dir.rmdir()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


class OrphanSpool:
    """The spool of a dead writer, locked by this process for replay."""

    def __init__(self, directory: Path, lock_fd: int) -> None:
        self.dir = directory
        self._lock_fd = lock_fd

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """Every intact spooled event, in order (segments by number, frames by position)."""
        for path in _segment_files(self.dir):
            for seq, payload, _ in read_frames(path):
                yield seq, payload

    def size(self) -> int:
        """Bytes left in its segments."""
        return sum(p.stat().st_size for p in _segment_files(self.dir))

    def remove(self) -> None:
        """Delete the directory (after a complete replay) and release the lock."""
        for path in _segment_files(self.dir):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "lock").unlink()
        with contextlib.suppress(OSError):
            self.dir.rmdir()
        self.release()

    def release(self) -> None:
        """Give the lock back without deleting anything (another writer may adopt it)."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def find_orphans(root: Path, *, exclude: frozenset[str] = frozenset()) -> list[OrphanSpool]:
    """Lock and return every spool directory under ``root`` whose owner is gone."""
    found: list[OrphanSpool] = []
    try:
        entries = sorted(root.iterdir())
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.name in exclude or not entry.is_dir():
            continue
        try:
            fd = os.open(entry / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # a live writer owns it
            continue
        found.append(OrphanSpool(entry, fd))
    return found
