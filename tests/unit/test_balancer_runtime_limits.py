"""The runtime's per-tick site: a fuse's scheduled limit is in force at the tick's time (and
is what its rows and metrics say); the power target caps the top fuse."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from charged.balancer.model import ChargerSpec, Fuse, Site
from charged.balancer.runtime import BalancerRuntime, TickInput
from charged.balancer.schedule import LimitSchedule, Period
from charged.chargeamps.models import (
    ChargePoint,
    ChargePointStatus,
    ConnectorSettings,
    ConnectorStatus,
    Measurement,
)
from charged.clock import FakeClock
from charged.metrics import Metrics
from charged.storage.writes import RowBatch

KEY = ("CP1", 1)


class Vendor:
    """One charger, its connector 1 at 16 A; the balancer only shadows."""

    async def chargers(self) -> list[ChargePoint]:
        return []

    async def connector_settings(self, cp_id: str, connector_id: int) -> ConnectorSettings:
        return ConnectorSettings(cp_id, connector_id, 16.0, False, "On", False, 32.0)

    async def set_connector(self, *args: Any, **kw: Any) -> Any:
        raise AssertionError("shadow mode sends nothing")


def tick(at: float, amps: float = 16.0) -> TickInput:
    measured = tuple(Measurement(p, amps, 230.0) for p in ("L1", "L2", "L3"))
    charging = ConnectorStatus(
        "CP1", 1, 1.0, 11.0, None, "Charging", measured, datetime(2026, 1, 1, tzinfo=UTC), None, 7
    )
    idle = ConnectorStatus("CP1", 2, 0.0, 0.0, None, "Available", (), None, None, None)
    return TickInput(at, {"CP1": ChargePointStatus("CP1", "Online", (charging, idle))}, 1)


def site() -> Site:
    return Site(Fuse("main", (40.0, 40.0, 40.0), chargers=("CP1",)), (ChargerSpec("CP1"),))


class Rows:
    def __init__(self) -> None:
        self.batches: list[RowBatch] = []

    async def put(self, batch: RowBatch) -> None:
        self.batches.append(batch)

    def last(self, table: str) -> list[Mapping[str, Any]]:
        return list(self.batches[-1].get(table, ()))


def runtime(rows: Rows, metrics: Metrics, **kw: Any) -> BalancerRuntime:
    return BalancerRuntime(
        site(),
        mode="shadow",
        controller=Vendor(),  # type: ignore[arg-type]
        audit_rows=None,
        put=rows.put,
        clock=FakeClock(0.0),
        metrics=metrics,
        **kw,
    )


async def test_the_scheduled_limit_is_in_force_at_the_ticks_local_time() -> None:
    # weekdays 07:00-18:00 Stockholm: 20 A instead of 40 A
    evening = LimitSchedule(
        "Europe/Stockholm", {"main": (Period(frozenset(range(5)), 420, 1080, (20.0,) * 3),)}
    )
    rows, metrics = Rows(), Metrics()
    rt = runtime(rows, metrics, schedule=evening)
    before = datetime(2026, 1, 5, 5, 59, tzinfo=UTC).timestamp()  # Monday 06:59 CET
    report = await rt.step(tick(before))
    assert report.site.root.limit == (40.0, 40.0, 40.0)
    assert report.allocation.decisions[KEY].target == 32.0
    at_work = datetime(2026, 1, 5, 6, 0, tzinfo=UTC).timestamp()  # 07:00 CET
    report = await rt.step(tick(at_work))
    assert report.site.root.limit == (20.0, 20.0, 20.0)
    assert report.allocation.decisions[KEY].target == 20.0
    # both connectors hold 16 A: over the 20 A, so the idle one's decrease goes out first
    assert [(w.key, w.limit) for w in report.plan.writes] == [(("CP1", 2), 0.0)]
    fuse_rows = rows.last("balancer_fuse")
    assert {(r["limit_a"], r["capacity_a"]) for r in fuse_rows} == {(20.0, 20.0)}
    sample = metrics.registry.get_sample_value(
        "charged_balancer_fuse_limit_amperes", {"fuse": "main", "phase": "L1"}
    )
    assert sample == 20.0
    assert rt.site.root.limit == (40.0, 40.0, 40.0)  # the configured site is unchanged
