"""A rebooted charger through the whole collector: the simulator over 127.0.0.1 and the
daemon share one fake clock; the reboot takes the charger Offline for 30 fleet seconds.

What must come of it: the tick counts it as offline (not ok, not failed, no poll_gap), its
Online → Offline → Online changes are rows with their tick times, and /metrics has its online
gauge and last-seen time.  On SQLite and MariaDB."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from charged.clock import FakeClock
from charged.config import settings_from_mapping
from charged.daemon.service import Daemon
from charged.metrics import Metrics
from charged.simulator import Simulator, SimulatorConfig
from charged.storage.engine import create_engine
from charged.storage.schema import (
    charge_point_availability,
    charge_point_status,
    poll_cycle,
    poll_gap,
)

MORNING = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)
INTERVAL = 20.0  # a 30 s reboot spans one tick, not two intervals' worth of answers
CHARGERS = 6


def gauges(metrics: Metrics, cp: str) -> dict[str, float]:
    """The charger's samples as /metrics serves them (the text exposition, parsed)."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.labels.get("charge_point") == cp:
                found[sample.name] = sample.value
    return found


async def test_a_rebooted_charger_is_offline_in_the_tick_the_table_and_the_gauges(
    db_url: str,
) -> None:
    clock = FakeClock(MORNING.timestamp(), auto_advance=False)
    sim = Simulator(
        SimulatorConfig(chargers=CHARGERS, seed=5, speed=1.0, start_time=MORNING.timestamp()),
        clock=clock,
    )
    await sim.start("127.0.0.1", 0)
    settings = settings_from_mapping(
        {
            "api": {
                "base_url": sim.base_url,
                "email": sim.account.email,
                "password": sim.account.password,
                "api_key": sim.account.api_key,
                "max_requests_per_second": None,
            },
            "collector": {"interval": INTERVAL},
            "database": {"url": db_url},
            "writer": {"flush_interval": 0.2},
            "spool": {"directory": tempfile.mkdtemp(prefix="charged-test-spool-")},
            "ops": {"enabled": False},
            "sessions": {"enabled": False},
        },
        source="test",
    )
    cp = sim.charge_point_ids()[2]
    metrics = Metrics()
    ticks = []
    try:
        async with Daemon(settings, clock=clock, metrics=metrics) as collector:
            assert collector.supervisor and collector.writer and collector.client
            ticks.append(await collector.supervisor.tick())  # 07:00:00, all online
            await collector.client.reboot(cp)  # what `charged reboot CP` sends
            await clock.advance(INTERVAL)
            ticks.append(await collector.supervisor.tick())  # 07:00:20, rebooting
            offline_gauges = gauges(metrics, cp)
            await collector.writer.wait_flushed()
            assert collector.engine is not None
            async with collector.engine.connect() as conn:
                s = charge_point_status.c
                while_offline = (
                    await conn.execute(select(s.status, s.last_seen).where(s.id == cp))
                ).one()
            await clock.advance(INTERVAL)
            ticks.append(await collector.supervisor.tick())  # 07:00:40, back
            await collector.writer.wait_flushed()
            back_gauges = gauges(metrics, cp)
    finally:
        await sim.stop()

    first, rebooting, back = ticks
    # the newest status says Offline; last_seen stays the last tick it was online
    assert tuple(while_offline) == ("Offline", first.tick_time)
    assert (first.ok, first.offline, first.failed) == (CHARGERS, 0, 0)
    assert (rebooting.ok, rebooting.offline, rebooting.failed) == (CHARGERS - 1, 1, 0)
    assert rebooting.failures == {}
    assert (back.ok, back.offline, back.failed) == (CHARGERS, 0, 0)

    seen_first = first.tick_time.replace(tzinfo=UTC).timestamp()
    assert offline_gauges == {
        "charged_charger_online": 0.0,
        "charged_charger_last_seen_timestamp_seconds": seen_first,
    }
    assert back_gauges == {
        "charged_charger_online": 1.0,
        "charged_charger_last_seen_timestamp_seconds": back.tick_time.replace(
            tzinfo=UTC
        ).timestamp(),
    }

    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            t = charge_point_availability.c
            history = (
                await conn.execute(
                    select(t.tick_time, t.status, t.previous_status)
                    .where(t.charge_point_id == cp)
                    .order_by(t.tick_time)
                )
            ).all()
            others = (
                await conn.execute(select(t.charge_point_id).where(t.charge_point_id != cp))
            ).all()
            c = poll_cycle.c
            cycles = (
                await conn.execute(
                    select(c.chargers_ok, c.chargers_offline, c.chargers_failed).order_by(
                        c.tick_time
                    )
                )
            ).all()
            s = charge_point_status.c
            stored = (await conn.execute(select(s.status, s.last_seen).where(s.id == cp))).one()
            gaps = (await conn.execute(select(poll_gap))).all()
    finally:
        await engine.dispose()

    assert [tuple(r) for r in history] == [
        (first.tick_time, "Online", None),
        (rebooting.tick_time, "Offline", "Online"),
        (back.tick_time, "Online", "Offline"),
    ]
    assert len(others) == CHARGERS - 1  # one row each: what the run first saw
    assert [tuple(r) for r in cycles] == [(CHARGERS, 0, 0), (CHARGERS - 1, 1, 0), (CHARGERS, 0, 0)]
    assert tuple(stored) == ("Online", back.tick_time)
    assert gaps == []
