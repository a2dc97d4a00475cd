"""BatchWriter + a real on-disk Spool, with the database replaced at the writer's seam.

The database is a switch (``db.up``); the spool is the real one in a temporary directory, so
these tests see what an operator would find on disk.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from charged.clock import FakeClock
from charged.metrics import Metrics
from charged.storage.engine import create_engine
from charged.storage.rejected import RejectedRows
from charged.storage.spool import Spool
from charged.storage.spool_records import HEADER
from charged.storage.writer import BatchWriter, GroupedRows
from charged.storage.writes import RowBatch
from tests.unit.test_writer import RecordingLog, item, settle


class SwitchedDb(BatchWriter):
    """Commits into ``flushes`` while ``up``; raises a connection error while down."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.up = True
        self.refuse: Exception | None = None
        self.refuse_row: dict[str, Any] | None = None
        self.flushes: list[GroupedRows] = []
        self.attempts = 0

    async def _write_batch(self, grouped: GroupedRows) -> dict[str, int]:
        self.attempts += 1
        if self.refuse is not None:
            raise self.refuse
        if not self.up:
            raise OperationalError("INSERT", {}, ConnectionRefusedError(111, "refused"))
        if any(row == self.refuse_row for rows in grouped.values() for row in rows):
            raise IntegrityError("INSERT", {}, Exception("Column 'status' cannot be null"))
        self.flushes.append({t: list(rows) for t, rows in grouped.items()})
        return {}


class Harness:
    def __init__(self, directory: Path, *, max_bytes: int = 1 << 20, **kw: Any) -> None:
        self.clock = FakeClock(auto_advance=False)
        self.metrics = Metrics()
        self.log = RecordingLog()
        self.spool = Spool(
            directory, max_bytes=max_bytes, clock=self.clock, metrics=self.metrics, logger=self.log
        )
        self.spool.open()
        self.queue: asyncio.Queue[RowBatch] = asyncio.Queue()
        kw.setdefault("batch_size", 3)
        kw.setdefault("flush_interval", 1.0)
        self.writer = SwitchedDb(
            create_engine("sqlite+aiosqlite:///:memory:"),
            self.queue,
            clock=self.clock,
            metrics=self.metrics,
            logger=self.log,
            rng=random.Random(3),
            retry_backoff_max=4.0,
            spool=self.spool,
            **kw,
        )
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.writer.run())

    async def put_ticks(self, first: int, last: int) -> None:
        for tick in range(first, last):
            await self.queue.put(item(tick, rows=2, tick=tick))
        await self.writer.wait_flushed()

    async def until_drained(self, limit_s: float = 600.0) -> None:
        """Advance the fake clock until nothing waits for the database."""
        waited = 0.0
        while self.writer.backlog:
            assert waited < limit_s, "the spool did not drain"
            await self.clock.advance(0.5)
            await settle()
            waited += 0.5

    async def put_ticks_during_outage(self, first: int, last: int) -> None:
        """put_ticks while the clock moves on: with the spool full, a flush waits for the
        next replay attempt (if that fails, the outage goes on and the rows are dropped)."""
        flushed = asyncio.ensure_future(self.put_ticks(first, last))
        waited = 0.0
        while not flushed.done():
            assert waited < 600.0, "the rows were neither spooled nor dropped"
            await self.clock.advance(0.5)
            await settle()
            waited += 0.5
        await flushed

    def written_ticks(self) -> list[int]:
        return [
            int(row["id"][2:])
            for flush in self.writer.flushes
            for row in flush.get("charge_point_status", [])
        ]

    def metric(self, name: str, table: str) -> float:
        value: float = getattr(self.metrics, name).labels(table)._value.get()
        return value

    async def close(self) -> None:
        await self.writer.stop(timeout=5.0)
        if self.task is not None and not self.task.done():
            await self.task
        self.spool.close()


async def test_outage_spools_keeps_the_queue_moving_and_replays_in_order(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.start()
    await h.put_ticks(0, 3)
    h.writer.up = False
    # wait_flushed returns during the outage: spooled rows are safe on disk
    await asyncio.wait_for(h.put_ticks(3, 12), timeout=5)
    down_during_outage = h.writer.db_down
    assert down_during_outage and h.spool.pending()
    assert h.metric("rows_spooled", "charge_point_status") == 9
    assert h.metric("rows_spooled", "connector_status") == 18
    warnings = [e for lvl, e, _ in h.log.lines if lvl == "warning"]
    assert warnings == ["database write failed; spooling rows to disk until it answers"]

    h.writer.up = True
    await h.put_ticks(12, 15)  # newer rows arrive before the spool has drained
    await h.until_drained()
    assert h.written_ticks() == list(range(15))  # nothing missing, nothing twice, in order
    assert not h.spool.pending() and h.spool.size_bytes == 0
    assert h.metric("rows_written", "connector_status") == 30
    assert h.metrics.spool_bytes._value.get() == 0
    assert not h.writer.db_down
    await h.close()


async def test_replay_retries_with_capped_jittered_backoff(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.start()
    h.writer.up = False
    await h.put_ticks(0, 3)
    before = h.writer.attempts
    await h.clock.advance(60.0)
    await settle()
    attempts = h.writer.attempts - before
    # backoff capped at 4 s: at least 60/4 attempts a minute, but not a busy loop
    assert 15 <= attempts <= 200
    h.writer.up = True
    await h.until_drained(limit_s=10.0)
    assert h.written_ticks() == [0, 1, 2]
    await h.close()


async def test_a_full_spool_keeps_the_oldest_and_counts_the_dropped(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_bytes=600, batch_size=1)
    h.start()
    h.writer.up = False
    await h.put_ticks_during_outage(0, 40)
    assert h.writer.spool_full
    dropped = h.metric("rows_dropped", "charge_point_status")
    spooled = h.metric("rows_spooled", "charge_point_status")
    assert dropped > 0 and spooled > 0 and dropped + spooled == 40
    full_warnings = [e for lvl, e, _ in h.log.lines if lvl == "warning" and "spool full" in e]
    assert len(full_warnings) == 1  # once per transition, not per batch

    h.writer.up = True
    await h.until_drained()
    # the oldest ticks were kept, the newest dropped
    assert h.written_ticks() == list(range(int(spooled)))
    await h.close()


async def test_a_killed_process_finds_its_spool_at_the_next_start(tmp_path: Path) -> None:
    first = Harness(tmp_path)
    first.start()
    first.writer.up = False
    await first.put_ticks(0, 6)
    # "kill": the task dies without a graceful stop; the spool's file descriptors just close
    assert first.task is not None
    first.task.cancel()
    await asyncio.gather(first.task, return_exceptions=True)
    first.spool.close()

    second = Harness(tmp_path)
    assert second.spool.pending()
    second.start()
    await second.put_ticks(6, 8)
    await second.until_drained()
    assert second.written_ticks() == list(range(8))
    await second.close()


async def test_stop_deadline_spools_what_is_left_instead_of_dropping(tmp_path: Path) -> None:
    h = Harness(tmp_path, batch_size=1000, flush_interval=3600.0)
    h.start()
    for tick in range(5):
        await h.queue.put(item(tick, rows=2, tick=tick))
    await settle()
    h.writer.up = False
    await h.writer.stop(timeout=0)
    assert h.task is not None and h.task.done()
    assert h.metric("rows_dropped", "charge_point_status") == 0
    assert h.spool.records >= 1
    h.spool.close()

    again = Harness(tmp_path)
    again.start()
    await again.until_drained()
    assert again.written_ticks() == list(range(5))
    await again.close()


def corrupt_second_record(directory: Path) -> None:
    """Flip a byte inside the payload of the second record of the only segment."""
    (segment,) = sorted(directory.glob("*.spool"))
    data = bytearray(segment.read_bytes())
    first_len = HEADER.unpack_from(data, 0)[2] + HEADER.size
    data[first_len + HEADER.size + 2] ^= 0xFF
    segment.write_bytes(bytes(data))


async def test_a_corrupt_record_is_skipped_with_a_warning(tmp_path: Path) -> None:
    h = Harness(tmp_path, batch_size=1)
    h.start()
    h.writer.up = False
    await h.put_ticks(0, 3)
    await h.writer.stop(timeout=0)
    h.spool.close()
    corrupt_second_record(tmp_path)

    again = Harness(tmp_path)
    again.start()
    await again.until_drained()
    assert again.written_ticks() == [0, 2]
    assert any("corrupt spool data skipped" in e for _, e, _ in again.log.lines)
    await again.close()


async def test_a_spooled_record_the_schema_refuses_waits_for_the_fix(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.start()
    h.writer.up = False
    await h.put_ticks(0, 2)
    h.writer.up = True
    h.writer.refuse = ProgrammingError("INSERT", {}, Exception("Unknown column 'x'"))
    await h.clock.advance(30.0)
    await settle()
    assert h.task is not None and not h.task.done()  # the writer goes on collecting
    assert h.spool.pending() and h.writer.db_down  # the records stay, /readyz says so
    await h.put_ticks(2, 4)  # spooled behind, in order
    h.writer.refuse = None  # `charged db upgrade` ran
    await h.until_drained()
    assert h.written_ticks() == [0, 1, 2, 3]
    await h.close()


async def test_a_spooled_record_with_a_refused_row_is_replayed_without_it(
    tmp_path: Path,
) -> None:
    aside = RejectedRows(tmp_path / "aside")
    h = Harness(tmp_path, rejected=aside)
    h.start()
    h.writer.up = False
    await h.put_ticks(0, 3)
    h.writer.up = True
    h.writer.refuse_row = {"id": "cp1", "status": "Online"}  # the database now refuses it
    await h.until_drained()
    assert h.written_ticks() == [0, 2]
    assert not h.spool.pending()  # acked: not replayed again at every start
    [line] = aside.path.read_text().splitlines()
    assert json.loads(line)["row"] == {"id": "cp1", "status": "Online"}
    assert h.metric("rows_written", "connector_status") == 6
    await h.close()


async def test_a_full_spool_does_not_drop_new_rows_once_the_database_answers(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, max_bytes=600, batch_size=1)
    h.start()
    h.writer.up = False
    await h.put_ticks_during_outage(0, 40)
    assert h.writer.spool_full
    dropped = h.metric("rows_dropped", "charge_point_status")
    spooled = int(h.metric("rows_spooled", "charge_point_status"))
    h.writer.up = True
    # new ticks before the replay has made room: they wait for it, not dropped
    await h.put_ticks_during_outage(40, 50)
    assert h.metric("rows_dropped", "charge_point_status") == dropped
    await h.until_drained()
    assert h.written_ticks() == list(range(spooled)) + list(range(40, 50))
    await h.close()


async def test_a_bug_in_the_write_spools_the_rows_rejects_none_and_stops_loudly(
    tmp_path: Path,
) -> None:
    # a TypeError is not the database refusing values: the rows are fine, the code is not
    aside = RejectedRows(tmp_path / "aside")
    h = Harness(tmp_path / "spool", rejected=aside, batch_size=1000, flush_interval=1.0)
    h.start()
    for tick in range(3):
        await h.queue.put(item(tick, rows=2, tick=tick))
    await settle()
    h.writer.refuse = TypeError("unsupported type for a datetime column: 'str'")
    await h.clock.advance(1.0)
    await settle()
    assert h.task is not None and h.task.done()
    assert isinstance(h.task.exception(), TypeError)  # the daemon sees it and stops
    assert not aside.path.exists()
    assert h.metric("rows_rejected", "charge_point_status") == 0
    assert h.metric("rows_dropped", "charge_point_status") == 0
    errors = [(event, kw) for level, event, kw in h.log.lines if level == "error"]
    assert [event for event, _ in errors] == [
        "the database writer failed; what it held is kept, and it stops"
    ]
    assert "TypeError" in errors[0][1]["error"]
    # rows queued after the failure (the tick in flight) are kept by the stop
    await h.queue.put(item(3, rows=2, tick=3))
    await h.writer.stop(timeout=5.0)
    h.spool.close()

    again = Harness(tmp_path / "spool")  # the bug fixed, the next start writes them all
    again.start()
    await again.until_drained()
    assert again.written_ticks() == [0, 1, 2, 3]
    await again.close()
