"""BatchWriter logic on a fake clock, with the database write replaced at its seam (no I/O).

The engine given to the writer is never connected: ``_write_batch`` — the one method that
touches the database (test_writer_spool.py adds the disk spool) — records what it was asked
to write, or fails on demand.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import DataError, OperationalError, ProgrammingError

from charged.clock import FakeClock
from charged.metrics import Metrics
from charged.storage.engine import create_engine
from charged.storage.rejected import RejectedRows
from charged.storage.writer import SCHEMA_HINT, BatchWriter, GroupedRows
from charged.storage.writes import RowBatch, ordered_tables


class RecordingWriter(BatchWriter):
    """Records each committed flush; fails the first ``failures`` attempts; can be held."""

    def __init__(self, *args: Any, failures: int = 0, error: Exception | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.flushes: list[GroupedRows] = []
        self.attempts = 0
        self.failures = failures
        self.error = error or OperationalError("INSERT", {}, ConnectionRefusedError(111, "down"))
        self.gate = asyncio.Event()
        self.gate.set()

    async def _write_batch(self, grouped: GroupedRows) -> dict[str, int]:
        self.attempts += 1
        await self.gate.wait()
        if self.attempts <= self.failures:
            raise self.error
        self.flushes.append({t: list(rows) for t, rows in grouped.items()})
        return {}


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def _add(self, level: str, event: str, **kw: Any) -> None:
        self.lines.append((level, event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self._add("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._add("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._add("error", event, **kw)


def item(cp: int, rows: int = 1, tick: int = 0) -> RowBatch:
    """One charger's rows of one tick: its status row and ``rows`` connector rows."""
    return {
        "charge_point_status": [{"id": f"cp{cp}", "status": "Online"}],
        "connector_status": [
            {"charge_point_id": f"cp{cp}", "connector_id": c, "date_created": tick}
            for c in range(rows)
        ],
    }


def make(
    queue: asyncio.Queue[RowBatch], clock: FakeClock, **kw: Any
) -> tuple[RecordingWriter, RecordingLog]:
    log = RecordingLog()
    # a real engine object, never connected: every write goes through the recording seam
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    kw.setdefault("metrics", Metrics())
    writer = RecordingWriter(engine, queue, clock=clock, logger=log, rng=random.Random(7), **kw)
    return writer, log


async def settle(rounds: int = 50) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


def all_rows(flushes: list[GroupedRows], table: str) -> list[Mapping[str, Any]]:
    return [row for flush in flushes for row in flush.get(table, [])]


async def test_flushes_at_batch_size_without_waiting_for_the_interval() -> None:
    clock = FakeClock(auto_advance=False)
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    writer, _ = make(queue, clock, batch_size=10, flush_interval=60.0)
    task = asyncio.create_task(writer.run())
    for cp in range(3):
        await queue.put(item(cp, rows=4))  # 5 rows each: the size is reached on the 2nd
    await settle()
    assert clock.monotonic() == 1000.0  # no time passed
    assert len(writer.flushes) == 1
    first = writer.flushes[0]
    assert [r["id"] for r in first["charge_point_status"]] == ["cp0", "cp1"]
    assert len(first["connector_status"]) == 8
    # the third item waits for the interval
    await clock.advance(59.9)
    assert len(writer.flushes) == 1
    await clock.advance(0.1)
    await settle()
    assert len(writer.flushes) == 2 and writer.flushes[1]["charge_point_status"][0]["id"] == "cp2"
    await writer.stop()
    await task


async def test_small_batches_wait_for_the_flush_interval() -> None:
    clock = FakeClock(auto_advance=False)
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    writer, _ = make(queue, clock, batch_size=5000, flush_interval=1.0)
    task = asyncio.create_task(writer.run())
    await queue.put(item(1))
    await clock.advance(0.5)
    await queue.put(item(2))  # joins the pending batch; the deadline is from the first row
    await clock.advance(0.4)
    assert writer.flushes == []
    await clock.advance(0.1)
    await settle()
    assert len(writer.flushes) == 1
    assert [r["id"] for r in writer.flushes[0]["charge_point_status"]] == ["cp1", "cp2"]
    assert writer.rows_written == {"charge_point_status": 2, "connector_status": 2}
    await writer.stop()
    await task


async def test_wait_flushed_commits_pending_rows_now() -> None:
    clock = FakeClock(auto_advance=False)
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    writer, _ = make(queue, clock, flush_interval=3600.0)
    task = asyncio.create_task(writer.run())
    await queue.put(item(1, rows=2))
    await settle()
    await asyncio.wait_for(writer.wait_flushed(), timeout=5)
    assert clock.monotonic() == 1000.0
    assert len(all_rows(writer.flushes, "connector_status")) == 2
    await writer.stop()
    await task


async def test_full_queue_blocks_the_producer_and_nothing_is_dropped() -> None:
    clock = FakeClock()
    queue: asyncio.Queue[RowBatch] = asyncio.Queue(maxsize=2)
    writer, _ = make(queue, clock, batch_size=1, flush_interval=1.0)
    writer.gate.clear()  # the database is slow: the first write hangs
    task = asyncio.create_task(writer.run())

    async def produce() -> None:
        for cp in range(10):
            await queue.put(item(cp, tick=cp))

    producer = asyncio.create_task(produce())
    await settle()
    assert not producer.done()
    assert queue.full()
    writer.gate.set()
    await asyncio.wait_for(producer, timeout=5)
    await writer.wait_flushed()
    ids = [r["id"] for r in all_rows(writer.flushes, "charge_point_status")]
    assert ids == [f"cp{n}" for n in range(10)]
    await writer.stop()
    await task


async def test_database_down_then_up_keeps_rows_and_logs_each_transition_once() -> None:
    clock = FakeClock()
    metrics = Metrics()
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    writer, log = make(queue, clock, failures=4, metrics=metrics, retry_backoff_max=8.0)
    task = asyncio.create_task(writer.run())
    started = clock.monotonic()
    await queue.put(item(1, rows=2))
    await queue.put(item(2, rows=2))
    await writer.wait_flushed()

    assert writer.attempts == 5
    assert len(writer.flushes) == 1  # the kept batch, written once after recovery
    assert len(all_rows(writer.flushes, "connector_status")) == 4
    assert metrics.db_errors._value.get() == 4
    assert metrics.rows_written.labels("connector_status")._value.get() == 4
    levels = [(level, event) for level, event, _ in log.lines]
    assert levels == [
        ("warning", "database write failed; keeping the rows and retrying"),
        ("info", "database writes succeed again"),
    ]
    # full-jitter backoff waits, capped: 0.5, 1, 2, 4 at most
    waited = clock.monotonic() - started
    assert 0 < waited <= 0.5 + 1 + 2 + 4
    assert not writer.db_down
    await writer.stop()
    await task


async def test_backoff_is_capped() -> None:
    clock = FakeClock()
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    writer, _ = make(queue, clock, failures=12, retry_backoff_max=2.0)
    task = asyncio.create_task(writer.run())
    started = clock.monotonic()
    await queue.put(item(1))
    await writer.wait_flushed()
    assert writer.attempts == 13
    assert clock.monotonic() - started <= 12 * 2.0
    await writer.stop()
    await task


async def test_a_statement_the_schema_refuses_keeps_the_rows_until_it_takes_them() -> None:
    # ProgrammingError (a table or column missing): a migration fixes it, not other values
    clock = FakeClock()
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    bad = ProgrammingError("INSERT", {}, Exception("Table 'charged.measurement' doesn't exist"))
    writer, log = make(queue, clock, failures=3, error=bad)
    task = asyncio.create_task(writer.run())
    await queue.put(item(1))
    await asyncio.wait_for(writer.wait_flushed(), timeout=5)
    assert writer.attempts == 4 and not task.done()
    assert all_rows(writer.flushes, "charge_point_status") == [{"id": "cp1", "status": "Online"}]
    errors = [(event, kw["error"]) for level, event, kw in log.lines if level == "error"]
    assert errors == [(SCHEMA_HINT, "Exception: Table 'charged.measurement' doesn't exist")]
    assert "charged db upgrade" in SCHEMA_HINT
    await writer.stop()


class RefusingWriter(RecordingWriter):
    """Refuses, like a strict MySQL, every transaction holding a row marked ``bad``."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.transactions = 0

    async def _write_batch(self, grouped: GroupedRows) -> dict[str, int]:
        self.transactions += 1
        for rows in grouped.values():
            if any(row.get("status") == "bad" for row in rows):
                raise DataError("INSERT", {}, Exception("Data too long for column 'status'"))
        self.flushes.append({t: list(rows) for t, rows in grouped.items()})
        return {}


async def test_rows_refused_for_their_values_are_isolated_kept_aside_and_the_rest_written(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    metrics = Metrics()
    log = RecordingLog()
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    rejected = RejectedRows(tmp_path, clock=clock, metrics=metrics, logger=log)
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    writer = RefusingWriter(
        engine,
        queue,
        clock=clock,
        logger=log,
        metrics=metrics,
        rejected=rejected,
        batch_size=1000,
    )
    task = asyncio.create_task(writer.run())
    for cp in range(40):
        batch = item(cp, rows=2)
        if cp in (7, 31):
            batch = {**batch, "charge_point_status": [{"id": f"cp{cp}", "status": "bad"}]}
        await queue.put(batch)
    await asyncio.wait_for(writer.wait_flushed(), timeout=5)
    written = {r["id"] for r in all_rows(writer.flushes, "charge_point_status")}
    assert written == {f"cp{cp}" for cp in range(40)} - {"cp7", "cp31"}
    assert len(all_rows(writer.flushes, "connector_status")) == 80  # other tables untouched
    # halving finds two bad rows in 38 + 2 in far fewer writes than one per row
    assert writer.transactions < 30
    assert writer.rows_written == {"charge_point_status": 38, "connector_status": 80}
    assert metrics.rows_rejected.labels("charge_point_status")._value.get() == 2
    lines = [json.loads(line) for line in rejected.path.read_text().splitlines()]
    assert [line["row"] for line in lines] == [
        {"id": "cp7", "status": "bad"},
        {"id": "cp31", "status": "bad"},
    ]
    assert all(line["table"] == "charge_point_status" for line in lines)
    assert lines[0]["reason"] == "Exception: Data too long for column 'status'"
    assert [event for level, event, _ in log.lines if level == "error"] == [
        "the database refused rows; they are kept aside, the others were written"
    ]  # once per kind of refusal, not per row
    assert not task.done()  # the writer goes on
    await queue.put(item(99))
    await asyncio.wait_for(writer.wait_flushed(), timeout=5)
    assert "cp99" in {r["id"] for r in all_rows(writer.flushes, "charge_point_status")}
    await writer.stop()


class HangingOnceWriter(RecordingWriter):
    """The first write never answers, like a server that stopped mid-statement."""

    async def _write_batch(self, grouped: GroupedRows) -> dict[str, int]:
        if self.attempts == 0:
            self.attempts += 1
            await asyncio.Event().wait()
        return await super()._write_batch(grouped)


async def test_a_write_that_hangs_counts_as_failed_after_write_timeout() -> None:
    # write_timeout runs on the loop's clock (a hung server is real time): a short one here
    clock = FakeClock()
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    log = RecordingLog()
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    writer = HangingOnceWriter(engine, queue, clock=clock, logger=log, write_timeout=0.05)
    task = asyncio.create_task(writer.run())
    await queue.put(item(1))
    await asyncio.wait_for(writer.wait_flushed(), timeout=5)
    assert writer.attempts == 2
    assert all_rows(writer.flushes, "charge_point_status") == [{"id": "cp1", "status": "Online"}]
    warnings = [(event, kw["error"]) for level, event, kw in log.lines if level == "warning"]
    assert warnings == [("database write failed; keeping the rows and retrying", "TimeoutError")]
    await writer.stop()
    assert task.done()


async def test_stop_drains_the_queue_and_flushes_everything() -> None:
    clock = FakeClock(auto_advance=False)
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    writer, _ = make(queue, clock, batch_size=5000, flush_interval=3600.0)
    task = asyncio.create_task(writer.run())
    for cp in range(25):
        await queue.put(item(cp))
    await settle()
    assert writer.flushes == []
    await writer.stop()
    assert task.done() and task.exception() is None
    assert len(all_rows(writer.flushes, "charge_point_status")) == 25
    assert queue.empty()


async def test_stop_deadline_while_database_down_counts_every_unwritten_row() -> None:
    clock = FakeClock()
    metrics = Metrics()
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    writer, log = make(queue, clock, failures=10**9, metrics=metrics, batch_size=3)
    task = asyncio.create_task(writer.run())
    for cp in range(4):
        await queue.put(item(cp, rows=2))  # 3 rows each
    await settle()
    await writer.stop(timeout=10.0)
    assert task.cancelled()
    assert writer.flushes == []
    assert metrics.rows_dropped.labels("charge_point_status")._value.get() == 4
    assert metrics.rows_dropped.labels("connector_status")._value.get() == 8
    (level, event, fields) = log.lines[-1]
    assert level == "error" and "not written" in event and fields["rows"] == 12


async def test_cancelling_the_writer_is_not_swallowed() -> None:
    clock = FakeClock()
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    writer, _ = make(queue, clock)
    writer.gate.clear()
    task = asyncio.create_task(writer.run())
    await queue.put(item(1))
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # also while idle, waiting for the queue
    idle_writer, _ = make(asyncio.Queue(), clock)
    idle = asyncio.create_task(idle_writer.run())
    await settle()
    idle.cancel()
    with pytest.raises(asyncio.CancelledError):
        await idle


async def test_run_twice_is_refused() -> None:
    writer, _ = make(asyncio.Queue(), FakeClock())
    task = asyncio.create_task(writer.run())
    await settle()
    with pytest.raises(RuntimeError, match="already running"):
        await writer.run()
    await writer.stop()
    await task


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        make(asyncio.Queue(), FakeClock(), batch_size=0)
    with pytest.raises(ValueError, match="flush_interval must be positive"):
        make(asyncio.Queue(), FakeClock(), flush_interval=0)


def test_charge_points_are_written_before_the_rows_that_refer_to_them() -> None:
    tables = {"measurement", "poll_gap", "charge_point_status", "connector_status", "poll_cycle"}
    assert ordered_tables(tables) == [
        "charge_point_status",
        "connector_status",
        "measurement",
        "poll_cycle",
        "poll_gap",
    ]


async def test_a_bug_without_a_spool_is_raised_and_its_rows_counted_not_rejected(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    metrics = Metrics()
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    rejected = RejectedRows(tmp_path, clock=clock, metrics=metrics)
    writer, log = make(
        queue,
        clock,
        failures=1,
        error=TypeError("bad row rendering"),
        rejected=rejected,
        metrics=metrics,
    )
    task = asyncio.create_task(writer.run())
    await queue.put(item(1, rows=2))
    with pytest.raises(TypeError, match="bad row rendering"):
        await asyncio.wait_for(task, timeout=5)
    assert writer.attempts == 1  # not bisected row by row into rejected.jsonl
    assert not rejected.path.exists()
    assert [event for level, event, _ in log.lines if level == "error"] == [
        "the database writer failed; what it held is kept, and it stops",
        "writer stopped with rows not written",
    ]
    assert metrics.rows_dropped.labels("connector_status")._value.get() == 2  # counted
    assert metrics.rows_rejected.labels("connector_status")._value.get() == 0
