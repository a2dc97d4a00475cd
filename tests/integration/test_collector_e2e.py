"""The whole collector against the simulator over real sockets, into SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import pytest
from sqlalchemy import func, select

from charged.collector.supervisor import TickResult
from charged.config import Settings, settings_from_mapping
from charged.daemon.service import Daemon
from charged.simulator import Simulator
from charged.storage.engine import create_engine
from charged.storage.schema import metadata


def settings_for(sim: Simulator, db_url: str, **collector: Any) -> Settings:
    spool = tempfile.mkdtemp(prefix="charged-test-spool-")
    return settings_from_mapping(
        {
            "api": {
                "base_url": sim.base_url,
                "email": sim.account.email,
                "password": sim.account.password,
                "api_key": sim.account.api_key,
                "max_concurrency": 30,
                "max_requests_per_second": None,
            },
            "collector": {"interval": 5, **collector},
            "database": {"url": db_url},
            "writer": {"flush_interval": 0.2},
            "spool": {"directory": str(spool)},
            "ops": {"enabled": False},
        },
        source="test",
    )


async def count(db_url: str, table: str) -> int:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return int(
                (
                    await conn.execute(select(func.count()).select_from(metadata.tables[table]))
                ).scalar_one()
            )
    finally:
        await engine.dispose()


async def fetch(db_url: str, table: str) -> list[dict[str, Any]]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(select(metadata.tables[table]))
            return [dict(r._mapping) for r in result]
    finally:
        await engine.dispose()


async def test_one_tick_of_30_chargers_lands_row_for_row(simulator: Simulator, db_url: str) -> None:
    ticks: list[TickResult] = []
    async with Daemon(settings_for(simulator, db_url)) as collector:
        assert collector.supervisor is not None and collector.writer is not None
        ticks.append(await collector.supervisor.tick())
        await collector.writer.wait_flushed()
    (tick,) = ticks
    assert (tick.asked, tick.ok, tick.failed) == (30, 30, 0)

    served = {s.charge_point_id: s.body for s in simulator.served}
    assert len(served) == 30
    expected_connectors = {
        (cp, c["connectorId"]): c
        for cp, body in served.items()
        for c in body.get("connectorStatuses") or []
    }
    expected_phases = {
        (cp, c["connectorId"], m["phase"]): m
        for (cp, _), c in expected_connectors.items()
        for m in c.get("measurements") or []
    }
    connectors = await fetch(db_url, "connector_status")
    assert len(connectors) == len(expected_connectors) == 60
    for row in connectors:
        sent = expected_connectors[(row["charge_point_id"], row["connector_id"])]
        assert row["status"] == sent["status"]
        assert row["session_id"] == sent.get("sessionId")
        assert float(row["total_consumption_kwh"]) == pytest.approx(
            sent["totalConsumptionKwh"], abs=1e-3
        )
        assert row["date_created"] == tick.tick_time
    measurements = await fetch(db_url, "measurement")
    assert len(measurements) == len(expected_phases)
    for row in measurements:
        sent = expected_phases[(row["charge_point_id"], row["connector_id"], row["phase"])]
        assert row["current"] == pytest.approx(sent["current"], rel=1e-6)
        assert row["voltage"] == pytest.approx(sent["voltage"], rel=1e-6)
    cps = await fetch(db_url, "charge_point_status")
    assert {r["id"] for r in cps} == set(served)
    assert all(r["name"] and r["status"] == "Online" for r in cps)
    (cycle,) = await fetch(db_url, "poll_cycle")
    assert (cycle["chargers_asked"], cycle["chargers_ok"], cycle["chargers_failed"]) == (30, 30, 0)
    assert cycle["rows"] == tick.rows


async def test_failing_charger_is_a_recorded_gap_and_others_are_stored(
    simulator: Simulator, db_url: str
) -> None:
    broken = simulator.charge_point_ids()[3]
    simulator.faults.malformed.add(broken)
    async with Daemon(settings_for(simulator, db_url)) as collector:
        assert collector.supervisor is not None and collector.writer is not None
        tick = await collector.supervisor.tick()
        await collector.writer.wait_flushed()
    assert (tick.ok, tick.failed) == (29, 1)
    (gap,) = await fetch(db_url, "poll_gap")
    assert gap["charge_point_id"] == broken and gap["tick_time"] == tick.tick_time
    assert await count(db_url, "connector_status") == 58


async def test_run_until_stopped_logs_in_once_and_flushes(
    simulator: Simulator, sqlite_url: str
) -> None:
    stop = asyncio.Event()
    results: list[TickResult] = []

    def on_tick(result: TickResult) -> None:
        results.append(result)
        if len(results) == 2:
            stop.set()

    settings = settings_for(simulator, sqlite_url, interval=1)
    collector = Daemon(settings, on_tick=on_tick)
    try:
        await collector.start()
        await asyncio.wait_for(collector.run(stop), timeout=20)
    finally:
        await collector.close()
    assert collector.metrics.token_logins._value.get() == 1
    # both ticks' rows are in the database after close(): nothing left in the queue
    assert await count(sqlite_url, "poll_cycle") == 2
    assert await count(sqlite_url, "connector_status") == 120
