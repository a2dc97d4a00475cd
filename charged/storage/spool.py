"""Durable on-disk spool for row batches the database could not take.

Layout of ``directory``::

    000000000001.spool   segment files, appended in order, each a run of records
    000000000002.spool
    ack.json             {"segment": N, "offset": M}: everything before it is in the database
    LOCK                 held (POSIX lock) while a process uses the spool

A record (its framing, encoding and checksum: :mod:`charged.storage.spool_records`) holds one
batch.  Records are read strictly in order (segment number, then offset); a record that fails
its checksum is skipped with a warning and the reader resynchronises on the next valid header,
so one bad sector costs one record, not the spool.

A process only ever appends to segments it created itself: after a restart it starts a new
segment, so a torn tail left by a killed process is never extended; it is cut off at open.
Appends go straight to the file descriptor (a killed process loses nothing already appended);
``flush`` fsyncs, on ``fsync_interval`` via :meth:`Spool.run_fsync` and at close, which bounds
what a power cut can lose.  Replaying a record twice is harmless (inserts are idempotent by
natural key), so whenever the ack position is in doubt the spool replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import structlog

from charged.clock import Clock, SystemClock
from charged.metrics import Metrics
from charged.storage.spool_ack import fsync_ack, load_ack, write_ack
from charged.storage.spool_records import (
    FLAG_ZLIB,
    HEADER_SIZE,
    DecodedBatch,
    RowBatch,
    decode_batch,
    encode_batch,
    frame,
    read_record,
    resync,
    scan_segment,
)

_SEGMENT_RE = re.compile(r"^(\d{12})\.spool$")
_LOCK_FILE = "LOCK"


class SpoolError(Exception):
    """The spool directory cannot be used (in use elsewhere, not writable, …)."""


class SpoolNoRoom(Exception):
    """A batch does not fit behind what the spool holds (only with drop_when_full=False)."""


@dataclass(frozen=True, slots=True)
class RecordId:
    """Where a record lives: segment number, byte offset in it, total length with header."""

    segment: int
    offset: int
    length: int


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    size: int


def _segment_name(seq: int) -> str:
    return f"{seq:012d}.spool"


# ------------------------------------------------------------------ the spool


class Spool:
    """A bounded FIFO of row batches on disk; see the module docstring for the format."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 512 * 1024**2,
        fsync_interval: float = 1.0,
        segment_bytes: int = 8 * 1024**2,
        compress: bool = True,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        logger: Any = None,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"spool max_bytes must be positive, got {max_bytes}")
        if fsync_interval <= 0:
            raise ValueError(f"spool fsync_interval must be positive, got {fsync_interval}")
        self._dir = Path(directory)
        self._max_bytes = max_bytes
        self._fsync_interval = fsync_interval
        self._segment_bytes = max(segment_bytes, 1)
        self._compress = compress
        self._clock = clock or SystemClock()
        self._metrics = metrics or Metrics()
        self._log = logger or structlog.get_logger("charged.spool")
        self._metrics.spool_max_bytes.set(max_bytes)  # for "spool filling" (bytes / max)

        self._segments: list[_Segment] = []  # ordered by seq; the last may be the active one
        self._active: _Segment | None = None  # the segment this process appends to
        self._fd: int | None = None  # write descriptor of the active segment
        self._lock: IO[bytes] | None = None
        self._read_offset = 0  # in the head segment: everything before is consumed
        self._next_seq = 1
        self._records = 0
        self._peeked: tuple[RecordId, DecodedBatch] | None = None
        self._dirty = False  # appended or acked since the last fsync
        self._full = False
        self._rejected_size = 0  # size of the record that made the spool full
        self._dropped_since_full = 0
        self._ack_failing = False  # warn once while the ack file cannot be written

    # ---------------------------------------------------------------- state

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def size_bytes(self) -> int:
        """Bytes of unconsumed records on disk (what counts against ``max_bytes``)."""
        return sum(s.size for s in self._segments) - self._read_offset

    @property
    def records(self) -> int:
        """Unconsumed records (corrupt ones found later are not known until read)."""
        return self._records

    @property
    def full(self) -> bool:
        """True from a rejected append until there is room for such a batch again."""
        return self._full

    def pending(self) -> bool:
        return self.size_bytes > 0

    # ---------------------------------------------------------------- lifecycle

    def open(self) -> None:
        """Create or take over the directory and find what an earlier process left."""
        if self._lock is not None:
            return
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = open(self._dir / _LOCK_FILE, "ab")  # noqa: SIM115 (held until close)
        except OSError as exc:
            raise SpoolError(
                f"spool directory {self._dir} is not usable ({exc.strerror}); "
                "fix its permissions or set spool.directory to a writable place"
            ) from exc
        try:
            # POSIX locks are per process: a second charged on the same directory fails
            # here, while a crashed one leaves nothing behind to clean up.
            fcntl.lockf(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lock.close()
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                raise SpoolError(
                    f"spool directory {self._dir} is in use by another process; stop it or "
                    "give this one its own spool.directory"
                ) from exc
            raise
        try:
            self._scan()
        except OSError as exc:
            lock.close()
            raise SpoolError(
                f"cannot read the spool in {self._dir} ({exc.strerror}); fix the permissions "
                "of its files (the service user must own them)"
            ) from exc
        self._lock = lock
        self._metrics.spool_bytes.set(self.size_bytes)
        if self._records:
            self._log.info(
                "spool holds batches from an earlier run; they will be replayed first",
                records=self._records,
                bytes=self.size_bytes,
            )

    def _scan(self) -> None:
        ack_seq, ack_offset = load_ack(self._dir, self._log)
        found: list[tuple[int, Path]] = []
        for entry in self._dir.iterdir():
            m = _SEGMENT_RE.match(entry.name)
            if m:
                found.append((int(m.group(1)), entry))
        found.sort()
        self._next_seq = max([ack_seq, *(seq for seq, _ in found)]) + 1
        self._segments = []
        self._read_offset = 0
        self._records = 0
        for seq, path in found:
            start = ack_offset if seq == ack_seq else 0
            size = path.stat().st_size
            if seq < ack_seq or start >= size:
                # consumed before the last stop (only the unlink had not happened), or empty
                path.unlink(missing_ok=True)
                continue
            size, count = scan_segment(path, start, size, self._log)
            if not self._segments:
                self._read_offset = min(start, size)
            self._segments.append(_Segment(seq, path, size))
            self._records += count

    def close(self) -> None:
        if self._lock is None:
            return
        try:
            self.flush()
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._active = None
            self._lock.close()
            self._lock = None
            self._peeked = None

    def _require_open(self) -> None:
        if self._lock is None:
            raise RuntimeError("Spool.open() must be called before using the spool")

    # ---------------------------------------------------------------- writing

    def append(self, batch: RowBatch, *, drop_when_full: bool = True) -> bool:
        """Store ``batch`` after everything already spooled; False (counted) when full.

        With ``drop_when_full=False`` a batch that does not fit behind what the spool holds
        raises :class:`SpoolNoRoom` instead: nothing counted, the caller keeps it."""
        self._require_open()
        payload = encode_batch(batch)
        flags = 0
        if self._compress:
            payload = zlib.compress(payload, 1)
            flags |= FLAG_ZLIB
        record = frame(payload, flags)
        if self.size_bytes + len(record) > self._max_bytes:
            if not drop_when_full and self.pending():
                raise SpoolNoRoom(f"{len(record)} bytes do not fit behind {self.size_bytes}")
            self._reject(batch, len(record), "spool is at its size limit")
            return False
        try:
            self._write(record)
        except OSError as exc:
            self._reject(batch, len(record), f"cannot write the spool ({exc.strerror})")
            return False
        self._records += 1
        self._dirty = True
        for table, rows in batch.items():
            if rows:
                self._metrics.rows_spooled.labels(table=table).inc(len(rows))
        self._metrics.spool_bytes.set(self.size_bytes)
        if self._full:
            self._room_again()
        return True

    def _write(self, record: bytes) -> None:
        active = self._active
        if active is None or (active.size > 0 and active.size + len(record) > self._segment_bytes):
            active = self._roll()
        assert self._fd is not None
        before = active.size
        try:
            view = memoryview(record)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            # Leave no half record behind: the next append must start on a clean boundary.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, before)
            raise
        active.size += len(record)

    def _roll(self) -> _Segment:
        if self._fd is not None:
            # the finished segment must be durable before we stop tracking it as dirty
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            # if opening the next segment fails, the next append tries to roll again
            self._active = None
        seq = self._next_seq
        path = self._dir / _segment_name(seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        self._next_seq += 1
        self._fd = fd
        segment = _Segment(seq, path, 0)
        if not self._segments:
            self._read_offset = 0
        self._segments.append(segment)
        self._active = segment
        self._fsync_dir()
        return segment

    def _reject(self, batch: RowBatch, size: int, reason: str) -> None:
        dropped = 0
        for table, rows in batch.items():
            if rows:
                self._metrics.rows_dropped.labels(table=table).inc(len(rows))
                dropped += len(rows)
        if not self.pending():
            # Nothing to keep and nothing to wait for: the batch alone exceeds the limit.
            self._log.warning(
                "a batch larger than the spool's size limit was dropped; raise spool.max_bytes",
                reason=reason,
                rows=dropped,
                batch_bytes=size,
                max_bytes=self._max_bytes,
            )
            return
        if not self._full:
            self._log.warning(
                "spool full: keeping the oldest data, dropping new rows until it drains",
                reason=reason,
                spool_bytes=self.size_bytes,
                max_bytes=self._max_bytes,
            )
            self._full = True
            self._dropped_since_full = 0
        self._dropped_since_full += dropped
        self._rejected_size = size

    # ---------------------------------------------------------------- reading

    def peek(self) -> tuple[RecordId, DecodedBatch] | None:
        """The oldest unconsumed batch, skipping corrupt records (with a warning)."""
        self._require_open()
        if self._peeked is not None:
            return self._peeked
        while self._segments:
            head = self._segments[0]
            if self._read_offset >= head.size:
                if head is self._active:
                    return None
                self._drop_head()
                continue
            with open(head.path, "rb") as f:
                rec = read_record(f, self._read_offset, head.size)
                if rec is None:
                    nxt = resync(f, self._read_offset, head.size)
                    end = head.size if nxt is None else nxt
                    self._log.warning(
                        "corrupt spool data skipped",
                        segment=head.path.name,
                        offset=self._read_offset,
                        bytes=end - self._read_offset,
                    )
                    self._consume(end)
                    continue
            flags, payload = rec
            rid = RecordId(head.seq, self._read_offset, HEADER_SIZE + len(payload))
            try:
                if flags & FLAG_ZLIB:
                    payload = zlib.decompress(payload)
                batch = decode_batch(payload)
            except (ValueError, TypeError, KeyError, zlib.error) as exc:
                # checksum fine but unreadable: written by another version, or a bug
                self._log.warning(
                    "unreadable spool record skipped",
                    segment=head.path.name,
                    offset=rid.offset,
                    error=type(exc).__name__,
                )
                self._records = max(0, self._records - 1)
                self._consume(rid.offset + rid.length)
                continue
            self._peeked = (rid, batch)
            return self._peeked
        return None

    def ack(self, record_id: RecordId) -> None:
        """``record_id`` (the one :meth:`peek` returned) is in the database: drop it."""
        self._require_open()
        if self._peeked is None or self._peeked[0] != record_id:
            raise ValueError(f"ack of {record_id} out of order: only the record peek() returned")
        self._records = max(0, self._records - 1)
        self._consume(record_id.offset + record_id.length)
        # Empty counts as room too: a batch larger than max_bytes alone would otherwise keep
        # the spool "full" (and /readyz failing) with nothing in it.
        if self._full and (
            not self.pending() or self.size_bytes + self._rejected_size <= self._max_bytes
        ):
            self._room_again()

    def _room_again(self) -> None:
        # a warning, like the one when it filled: the operator sees both ends of the loss
        self._log.warning(
            "spool has room again; spooling resumed", dropped_rows=self._dropped_since_full
        )
        self._full = False

    def _consume(self, end: int) -> None:
        """Move the read position to ``end`` in the head segment and persist it."""
        head = self._segments[0]
        self._peeked = None
        self._read_offset = end
        self._save_ack(head.seq, end)
        if end >= head.size:
            self._drop_head()
        if not self._segments:
            self._records = 0
        self._metrics.spool_bytes.set(self.size_bytes)

    def _drop_head(self) -> None:
        head = self._segments.pop(0)
        if head is self._active:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._active = None
        head.path.unlink(missing_ok=True)
        self._read_offset = 0
        self._dirty = True

    # ---------------------------------------------------------------- ack file

    def _save_ack(self, seq: int, offset: int) -> None:
        # Written (not fsynced) on every ack so a killed process does not replay what it
        # already stored; flush() makes it durable.  os.replace keeps it all-or-nothing.
        try:
            write_ack(self._dir, seq, offset)
        except OSError as exc:
            # Not fatal: the rows are in the database; at worst a restart replays them.
            if not self._ack_failing:
                self._log.warning(
                    "cannot record spool progress; a restart may replay stored rows",
                    error=exc.strerror,
                )
                self._ack_failing = True
            return
        self._ack_failing = False
        self._dirty = True

    # ---------------------------------------------------------------- durability

    def flush(self) -> None:
        """fsync appended records and the ack position now."""
        if self._lock is None or not self._dirty:
            return
        if self._fd is not None:
            os.fsync(self._fd)
        fsync_ack(self._dir)
        self._fsync_dir()
        self._dirty = False

    def _fsync_dir(self) -> None:
        # new, renamed and deleted files are only durable once their directory is
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def run_fsync(self) -> None:
        """Background task: fsync every ``fsync_interval`` while there is something new."""
        try:
            while True:
                await self._clock.sleep(self._fsync_interval)
                # a few ms of blocking fsync beats a thread racing close() for the fd
                self._flush_logged()
        except asyncio.CancelledError:
            # shutdown: make what was appended durable, then let the cancellation through
            self._flush_logged()
            raise

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except OSError as exc:
            # a failing disk must not kill the collector; the next interval tries again
            self._log.warning("spool fsync failed", error=exc.strerror)
