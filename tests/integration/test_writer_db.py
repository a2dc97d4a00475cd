"""BatchWriter against real databases (SQLite and MariaDB): ticks through the queue."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.clock import FakeClock
from charged.metrics import Metrics
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.rejected import RejectedRows
from charged.storage.schema import metadata
from charged.storage.writer import BatchWriter, GroupedRows
from charged.storage.writes import RowBatch
from tests.integration.test_storage import TICK, tick_rows


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade(db_url)
    eng = create_engine(db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


def per_charger_items(batch: dict[str, list[dict[str, Any]]]) -> list[RowBatch]:
    """Split a tick the way the supervisor queues it: one item per charger, then the cycle."""
    items: list[RowBatch] = []
    for cp in batch["charge_point_status"]:
        items.append(
            {
                table: [r for r in rows if r.get("charge_point_id", r.get("id")) == cp["id"]]
                for table, rows in batch.items()
            }
        )
    tick = batch["charge_point_status"][0]["last_seen"]
    items.append(
        {
            "poll_cycle": [
                {
                    "tick_time": tick,
                    "chargers_asked": 31,
                    "chargers_ok": 30,
                    "chargers_failed": 1,
                    "rows": sum(len(r) for r in batch.values()),
                    "duration_s": 0.8,
                    "skipped_ticks": 0,
                }
            ],
            "poll_gap": [
                {"tick_time": tick, "charge_point_id": "2399999999A", "reason": "Timeout"}
            ],
        }
    )
    return items


async def counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            name: int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            for name, table in metadata.tables.items()
            if name
            in ("charge_point_status", "connector_status", "measurement", "poll_cycle", "poll_gap")
        }


EXPECTED = {
    "charge_point_status": 30,
    "connector_status": 60,
    "measurement": 45,
    "poll_cycle": 1,
    "poll_gap": 1,
}


async def test_a_tick_through_the_queue_is_one_commit_and_replays_add_nothing(
    engine: AsyncEngine,
) -> None:
    commits: list[int] = []
    event.listen(engine.sync_engine, "commit", lambda _conn: commits.append(1))
    clock = FakeClock()
    metrics = Metrics()
    queue: asyncio.Queue[RowBatch] = asyncio.Queue(maxsize=100)
    writer = BatchWriter(engine, queue, clock=clock, metrics=metrics, flush_interval=1.0)
    task = asyncio.create_task(writer.run())
    try:
        for item in per_charger_items(tick_rows(TICK)):
            await queue.put(item)
        await writer.wait_flushed()
        assert await counts(engine) == EXPECTED
        assert len(commits) == 1  # 31 items, 137 rows: one transaction

        # the same tick again (a retried batch, a replayed spool): nothing new
        for item in per_charger_items(tick_rows(TICK)):
            await queue.put(item)
        await writer.wait_flushed()
        assert await counts(engine) == EXPECTED

        for item in per_charger_items(tick_rows(TICK + timedelta(seconds=30))):
            await queue.put(item)
    finally:
        await writer.stop()
        await task
    assert await counts(engine) == {
        "charge_point_status": 30,
        "connector_status": 120,
        "measurement": 90,
        "poll_cycle": 2,
        "poll_gap": 2,
    }
    assert writer.rows_written["connector_status"] == 180  # rows sent, duplicates included
    # the second copy of the first tick: every row skipped as a duplicate, and counted so
    # (charge_point_status is upserted: a row there updates, it is never a duplicate)
    assert writer.rows_duplicate == {
        "connector_status": 60,
        "measurement": 45,
        "poll_cycle": 1,
        "poll_gap": 1,
    }
    assert metrics.rows_duplicate.labels("measurement")._value.get() == 45
    assert metrics.rows_written.labels("measurement")._value.get() == 135


class LostAckWriter(BatchWriter):
    """The first write commits, then the connection drops before the writer hears of it."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.attempts = 0

    async def _write_batch(self, grouped: GroupedRows) -> dict[str, int]:
        self.attempts += 1
        if self.attempts <= 3:
            await super()._write_batch(grouped)
            raise OperationalError("COMMIT", {}, ConnectionResetError(104, "reset by peer"))
        return await super()._write_batch(grouped)


async def test_database_down_then_up_writes_everything_once(engine: AsyncEngine) -> None:
    clock = FakeClock()
    metrics = Metrics()
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    writer = LostAckWriter(
        engine, queue, clock=clock, metrics=metrics, rng=random.Random(1), batch_size=100_000
    )
    task = asyncio.create_task(writer.run())
    try:
        for item in per_charger_items(tick_rows(TICK)):
            await queue.put(item)
        await writer.wait_flushed()
    finally:
        await writer.stop()
        await task
    assert writer.attempts == 4
    assert metrics.db_errors._value.get() == 3
    assert await counts(engine) == EXPECTED


async def test_rows_the_database_refuses_are_set_aside_and_the_rest_is_written(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    clock = FakeClock()
    metrics = Metrics()
    queue: asyncio.Queue[RowBatch] = asyncio.Queue(maxsize=100)
    aside = RejectedRows(tmp_path, clock=clock, metrics=metrics)
    writer = BatchWriter(engine, queue, clock=clock, metrics=metrics, rejected=aside)
    task = asyncio.create_task(writer.run())
    items = per_charger_items(tick_rows(TICK))
    # a NOT NULL column without a value: refused by SQLite and MariaDB alike
    bad_gap = {"tick_time": TICK, "charge_point_id": None, "reason": "Timeout"}
    items.append({"poll_gap": [bad_gap]})
    refused, connectors = 1, EXPECTED["connector_status"]
    if engine.dialect.name != "sqlite":
        # strict MariaDB/MySQL also refuses a value longer than its column (SQLite stores it)
        first, *others = items[0]["connector_status"]
        too_long = {**first, "status": "x" * 200}
        items[0] = {**items[0], "connector_status": [too_long, *others]}
        refused, connectors = refused + 1, connectors - 1
    try:
        for item in items:
            await queue.put(item)
        await writer.wait_flushed()
        assert not task.done()  # the writer goes on
    finally:
        await writer.stop()
        await task
    stored = await counts(engine)
    assert stored == {**EXPECTED, "connector_status": connectors}
    lines = [json.loads(line) for line in aside.path.read_text().splitlines()]
    assert len(lines) == refused
    gap = next(line for line in lines if line["table"] == "poll_gap")
    assert gap["row"] == {**bad_gap, "tick_time": TICK.isoformat()}
    assert "IntegrityError" in gap["reason"]
    assert metrics.rows_rejected.labels("poll_gap")._value.get() == 1
    assert metrics.rows_written.labels("poll_gap")._value.get() == 1  # the good one
