"""Rollups and retention on SQLite and MariaDB: every raw row in its rollup once, deleted raw
rows only once folded, and the writer writing on while the retention deletes in batches."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.analysis.plot_data import garage_series
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.rollup import Rollups, bucket_of, energy_per_connector
from charged.storage.schema import (
    connector_status,
    connector_status_rollup,
    measurement,
    measurement_rollup,
)
from charged.storage.writes import write_rows

START = datetime(2025, 6, 1)
NOW = START + timedelta(days=10)
POLL = timedelta(minutes=5)
INTERVAL_S = POLL.total_seconds()


def polls(since: datetime, until: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two chargers' connector 1 every 5 min; charging (three phases) in the first half hour
    of every hour, at a current that changes from poll to poll."""
    statuses, phases = [], []
    moment, k = since, 0
    while moment < until:
        for cp in ("CP1", "CP2"):
            charging = moment.minute < 30
            statuses.append(
                {
                    "charge_point_id": cp,
                    "connector_id": 1,
                    "status": "Charging" if charging else "Available",
                    "date_created": moment,
                }
            )
            if charging:
                for n, phase in enumerate(("L1", "L2", "L3")):
                    phases.append(
                        {
                            "charge_point_id": cp,
                            "connector_id": 1,
                            "phase": phase,
                            "current": 6.0 + (k + n) % 11,
                            "voltage": 230.0,
                            "date_created": moment,
                        }
                    )
        moment += POLL
        k += 1
    return statuses, phases


async def store(engine: AsyncEngine, statuses: list[Any], phases: list[Any]) -> None:
    async with engine.begin() as conn:
        await write_rows(conn, "connector_status", statuses)
        await write_rows(conn, "measurement", phases)


def expected_measurement(phases: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    out: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for r in phases:
        acc = out[(r["charge_point_id"], 1, bucket_of(r["date_created"]), r["phase"])]
        acc[0] += 1
        acc[1] += r["current"]
        acc[2] = max(acc[2], r["current"])
        acc[3] += r["current"] * r["voltage"] * INTERVAL_S / 3600
    return {k: (int(n), s, m, pytest.approx(e)) for k, (n, s, m, e) in out.items()}


async def rollup_rows(engine: AsyncEngine) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    r = measurement_rollup.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                r.charge_point_id,
                r.connector_id,
                r.bucket_start,
                r.phase,
                r.samples,
                r.current_sum,
                r.current_max,
                r.energy_wh,
            )
        )
        return {tuple(row[:4]): tuple(row[4:]) for row in rows}


async def count(engine: AsyncEngine, table: Any, *where: Any) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(table).where(*where)
        return int((await conn.execute(query)).scalar_one())


@pytest.fixture
async def engine(db_url: str) -> Any:
    await upgrade(db_url)
    eng = create_engine(db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


async def test_a_deleted_raw_row_is_in_its_rollup(engine: AsyncEngine) -> None:
    statuses, phases = polls(START, NOW)
    await store(engine, statuses, phases)
    rollups = Rollups(engine, interval=INTERVAL_S, raw_days=7, batch_rows=500, pause=0)
    first = await rollups.run_pass(NOW)
    # the first pass only notes how far the tables reach: a write still open then is
    # committed by the next pass, which folds up to there
    assert first.folded == {"measurement": 0, "connector_status": 0}
    assert first.deleted == {"measurement": 0, "connector_status": 0}
    second = await rollups.run_pass(NOW)
    assert second.folded == {"measurement": len(phases), "connector_status": len(statuses)}
    cutoff = NOW - timedelta(days=7)
    old = [r for r in phases if r["date_created"] < cutoff]
    assert second.deleted["measurement"] == len(old) > 0
    assert second.deleted["connector_status"] == sum(
        1 for r in statuses if r["date_created"] < cutoff
    )
    assert await count(engine, measurement, measurement.c.date_created < cutoff) == 0
    assert await count(engine, measurement) == len(phases) - len(old)
    assert await count(engine, connector_status, connector_status.c.date_created < cutoff) == 0
    # every raw row, deleted or not, is in its bucket's rollup, once
    assert await rollup_rows(engine) == expected_measurement(phases)
    s = connector_status_rollup.c
    async with engine.connect() as conn:
        charging_s = (
            await conn.execute(select(func.sum(s.seconds)).where(s.status == "Charging"))
        ).scalar_one()
        energy = await energy_per_connector(conn, START, START + timedelta(days=1))
    charging_polls = sum(1 for r in statuses if r["status"] == "Charging")
    assert charging_s == charging_polls * INTERVAL_S
    day = [r for r in phases if r["date_created"] < START + timedelta(days=1)]
    for cp in ("CP1", "CP2"):
        watt_hours = sum(
            r["current"] * r["voltage"] * INTERVAL_S / 3600
            for r in day
            if r["charge_point_id"] == cp
        )
        assert energy[(cp, 1)] == pytest.approx(watt_hours / 1000)
    # a day whose raw polls are gone is drawn from the rollups, per quarter hour
    async with engine.connect() as conn:
        garage = await garage_series(conn, START, START + timedelta(days=1))
    mean_w: dict[datetime, float] = defaultdict(float)
    for r in day:
        mean_w[bucket_of(r["date_created"])] += r["current"] * r["voltage"] * INTERVAL_S / 900
    assert garage.times == sorted(mean_w)
    assert garage.power_w == pytest.approx([mean_w[t] for t in garage.times])


async def test_rows_stored_late_are_folded_once_and_nothing_twice(engine: AsyncEngine) -> None:
    statuses, phases = polls(START, START + timedelta(days=1))
    await store(engine, statuses, phases)
    rollups = Rollups(engine, interval=INTERVAL_S, raw_days=None, batch_rows=100, pause=0)
    await rollups.run_pass(NOW)
    await rollups.run_pass(NOW)
    # a spool replayed after an outage: old times, new ids, some in folded buckets
    late_statuses, late_phases = polls(START + timedelta(minutes=2), START + timedelta(hours=3))
    await store(engine, late_statuses, late_phases)
    await rollups.run_pass(NOW)
    await rollups.run_pass(NOW)
    await rollups.run_pass(NOW)  # nothing new: nothing changes
    assert await rollup_rows(engine) == expected_measurement(phases + late_phases)
    assert await count(engine, measurement) == len(phases) + len(late_phases)  # none deleted


async def test_the_writer_keeps_writing_during_a_batch_delete(engine: AsyncEngine) -> None:
    statuses, phases = polls(START, NOW - timedelta(days=7))
    await store(engine, statuses, phases)
    folding = Rollups(engine, interval=INTERVAL_S, batch_rows=1000, pause=0)
    await folding.run_pass(NOW)
    await folding.run_pass(NOW)  # every row folded; none deleted (no raw_days)
    retention = Rollups(engine, interval=INTERVAL_S, raw_days=7, batch_rows=100, pause=0)
    deleting = asyncio.create_task(retention.run_pass(NOW))
    written_during = new_rows = 0
    tick = NOW
    while not deleting.done():
        new_statuses, new_phases = polls(tick, tick + POLL)
        await store(engine, new_statuses, new_phases)  # a transaction of its own, as a flush
        tick += POLL
        new_rows += len(new_phases)
        written_during += not deleting.done()
    result = await deleting
    # every old row; the newest is kept if it was the table's newest when the pass began (so
    # that its id is never handed out again), else the writer's rows had come after it
    kept = len(phases) - result.deleted["measurement"]
    assert kept in (0, 1)
    # the writer's transactions went in between the delete's (every 100 rows), not after
    batches = len(phases) // 100
    assert written_during >= batches // 4, (written_during, batches)
    assert await count(engine, measurement) == new_rows + kept  # every new row stored
