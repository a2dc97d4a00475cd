"""Retention of the tables without rollups (balancer_decision, poll_gap, balancer_fuse,
power_window) on SQLite and MariaDB: rows older than their days go in batches, newer ones
stay, the writer writes on."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.balancer.power_target import TargetSpec
from charged.balancer.window_recall import SqlWindowRecall
from charged.config_service import RetentionSettings
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.retention import Retention
from charged.storage.rollup import storage_pass
from charged.storage.schema import (
    balancer_decision,
    balancer_fuse,
    connector_status,
    poll_gap,
    power_window,
)
from charged.storage.writes import write_rows

START = datetime(2025, 6, 1)
NOW = START + timedelta(days=40)
STEP = timedelta(hours=1)


def decisions(since: datetime, until: datetime) -> list[dict[str, Any]]:
    rows, moment = [], since
    while moment < until:
        rows += [
            {
                "tick_time": moment,
                "charge_point_id": cp,
                "connector_id": c,
                "mode": "shadow",
                "allocated_a": 16.0,
            }
            for cp in ("CP1", "CP2")
            for c in (1, 2)
        ]
        moment += STEP
    return rows


def gaps(since: datetime, until: datetime) -> list[dict[str, Any]]:
    rows, moment = [], since
    while moment < until:
        rows += [{"tick_time": moment, "charge_point_id": cp, "reason": "timeout"} for cp in "AB"]
        moment += STEP
    return rows


def fuse_rows(since: datetime, until: datetime) -> list[dict[str, Any]]:
    rows, moment = [], since
    while moment < until:
        rows += [
            {
                "tick_time": moment,
                "mode": "shadow",
                "fuse": fuse,
                "parent": None if fuse == "main" else "main",
                "phase": phase,
                "limit_a": 100.0,
                "capacity_a": 90.0,
                "envelope_a": 40.0,
                "measured_a": 30.0,
            }
            for fuse in ("main", "row-a")
            for phase in ("L1", "L2", "L3")
        ]
        moment += STEP
    return rows


def window_rows(since: datetime, until: datetime) -> list[dict[str, Any]]:
    rows, moment = [], since
    while moment < until:
        rows.append(
            {
                "tick_time": moment,
                "mode": "shadow",
                "window_start": moment,
                "window_s": 900,
                "month": moment.strftime("%Y-%m"),
                "energy_wh": 10.0,
                "power_w": 40_000.0,
                "building_w": 10_000.0,
                "target_w": 90_000.0,
                "month_peak_w": 85_000.0,
                "cap_a": 40.0,
            }
        )
        moment += STEP
    return rows


async def store(engine: AsyncEngine, table: str, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await write_rows(conn, table, rows)


async def times(engine: AsyncEngine, table: Any) -> list[datetime]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(table.c.tick_time))).scalars())


@pytest.fixture
async def engine(db_url: str) -> Any:
    await upgrade(db_url)
    eng = create_engine(db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


async def test_old_decisions_and_gaps_go_and_the_rest_stays(engine: AsyncEngine) -> None:
    stored_decisions, stored_gaps = decisions(START, NOW), gaps(START, NOW)
    await store(engine, "balancer_decision", stored_decisions)
    await store(engine, "poll_gap", stored_gaps)
    retention = Retention(
        engine, {"balancer_decision": 30, "poll_gap": 10}, batch_rows=100, pause=0
    )
    deleted = await retention.run_pass(NOW)
    decision_cutoff, gap_cutoff = NOW - timedelta(days=30), NOW - timedelta(days=10)
    old_decisions = [r for r in stored_decisions if r["tick_time"] < decision_cutoff]
    old_gaps = [r for r in stored_gaps if r["tick_time"] < gap_cutoff]
    assert deleted == {"balancer_decision": len(old_decisions), "poll_gap": len(old_gaps)}
    assert len(old_decisions) > 100 and len(old_gaps) > 100  # more than one batch each
    assert sorted(await times(engine, balancer_decision)) == sorted(
        r["tick_time"] for r in stored_decisions if r["tick_time"] >= decision_cutoff
    )
    assert sorted(await times(engine, poll_gap)) == sorted(
        r["tick_time"] for r in stored_gaps if r["tick_time"] >= gap_cutoff
    )
    # nothing old is left: the next pass deletes nothing
    assert await retention.run_pass(NOW) == {"balancer_decision": 0, "poll_gap": 0}


async def test_the_writer_keeps_writing_during_a_batch_delete(engine: AsyncEngine) -> None:
    old = decisions(START, NOW - timedelta(days=8))
    await store(engine, "balancer_decision", old)
    retention = Retention(engine, {"balancer_decision": 7}, batch_rows=50, pause=0)
    deleting = asyncio.create_task(retention.run_pass(NOW))
    written_during = new_rows = 0
    tick = NOW
    while not deleting.done():
        fresh = decisions(tick, tick + STEP)
        await store(engine, "balancer_decision", fresh)  # a transaction of its own, as a flush
        tick += STEP
        new_rows += len(fresh)
        written_during += not deleting.done()
    assert (await deleting)["balancer_decision"] == len(old)
    # the writer's transactions went in between the delete's (every 50 rows), not after
    batches = len(old) // 50
    assert written_during >= batches // 4, (written_during, batches)
    assert len(await times(engine, balancer_decision)) == new_rows  # every new row stored


async def test_the_daemon_s_pass_without_rollups_deletes_only_the_other_tables(
    engine: AsyncEngine,
) -> None:
    await store(engine, "poll_gap", gaps(START, NOW))
    await store(engine, "balancer_decision", decisions(START, NOW))
    status = [
        {"charge_point_id": "A", "connector_id": 1, "status": "Available", "date_created": START}
    ]
    await store(engine, "connector_status", status)
    one_pass = storage_pass(engine, RetentionSettings(rollups=False, gap_days=1), interval=30.0)
    assert one_pass is not None
    deleted = await one_pass(NOW)
    assert deleted == {"poll_gap": len(gaps(START, NOW - timedelta(days=1)))}
    assert min(await times(engine, poll_gap)) == NOW - timedelta(days=1)
    assert len(await times(engine, balancer_decision)) == len(decisions(START, NOW))
    async with engine.connect() as conn:
        count = select(func.count()).select_from(connector_status)
        assert (await conn.execute(count)).scalar_one() == 1  # raw polls: no raw_days
    # with the rollups on, one pass does both
    both = storage_pass(engine, RetentionSettings(raw_days=7, decision_days=7), interval=30.0)
    assert both is not None
    deleted = await both(NOW)
    assert set(deleted) == {"measurement", "connector_status", "balancer_decision"}
    assert deleted["balancer_decision"] == len(decisions(START, NOW - timedelta(days=7)))


async def test_old_fuse_and_power_window_rows_go_and_the_window_is_still_recalled(
    engine: AsyncEngine,
) -> None:
    stored_fuses, stored_windows = fuse_rows(START, NOW), window_rows(START, NOW)
    await store(engine, "balancer_fuse", stored_fuses)
    await store(engine, "power_window", stored_windows)
    settings = RetentionSettings(rollups=False, fuse_days=2, power_days=32, batch_rows=100)
    one_pass = storage_pass(engine, settings, interval=30.0)
    assert one_pass is not None
    deleted = await one_pass(NOW)
    fuse_cutoff, window_cutoff = NOW - timedelta(days=2), NOW - timedelta(days=32)
    old_fuses = [r for r in stored_fuses if r["tick_time"] < fuse_cutoff]
    old_windows = [r for r in stored_windows if r["tick_time"] < window_cutoff]
    # 38 days of 6 rows an hour, 8 days of a row an hour: more than one batch each
    assert (len(old_fuses), len(old_windows)) == (38 * 24 * 6, 8 * 24)
    assert deleted == {"balancer_fuse": len(old_fuses), "power_window": len(old_windows)}
    assert sorted(await times(engine, balancer_fuse)) == sorted(
        r["tick_time"] for r in stored_fuses if r["tick_time"] >= fuse_cutoff
    )
    assert min(await times(engine, power_window)) == window_cutoff
    # the newest row is what a restarted daemon reads back: still there
    recalled = await SqlWindowRecall(engine).recall(TargetSpec(90_000.0))
    assert recalled is not None
    assert recalled.month_peak_w == 85_000.0 and recalled.month == NOW.strftime("%Y-%m")
    assert await one_pass(NOW) == {"balancer_fuse": 0, "power_window": 0}


def test_nothing_to_do_is_no_pass_and_bad_days_are_refused() -> None:
    engine = create_engine("sqlite+aiosqlite://")
    assert storage_pass(engine, RetentionSettings(rollups=False), interval=30.0) is None
    with pytest.raises(ValidationError, match="decision_days"):
        RetentionSettings(decision_days=3)
    with pytest.raises(ValidationError, match="gap_days"):
        RetentionSettings(gap_days=0)
    with pytest.raises(ValidationError, match="fuse_days"):
        RetentionSettings(fuse_days=0)
    with pytest.raises(ValidationError, match="power_days"):
        RetentionSettings(power_days=31)  # the month's peak is read back from the newest row
    with pytest.raises(ValueError, match="no retention for measurement"):
        Retention(engine, {"measurement": 30})
