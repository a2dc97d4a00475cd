"""The runtime's per-tick site: a fuse's scheduled limit is in force at the tick's time (and
is what its rows and metrics say); the power target caps the top fuse."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from charged.balancer.model import ChargerSpec, Fuse, Site
from charged.balancer.power_target import TargetSpec, WindowState
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


def tick(at: float, amps: float = 16.0, only_l1: bool = False) -> TickInput:
    per_phase = (amps, 0.0, 0.0) if only_l1 else (amps, amps, amps)
    measured = tuple(
        Measurement(p, a, 230.0) for p, a in zip(("L1", "L2", "L3"), per_phase, strict=True)
    )
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


class Building:
    """A meter on the top fuse reading ``amps`` per phase (the headroom: 2 A more)."""

    def __init__(self, amps: float) -> None:
        self.amps = amps

    def loads(self, now: float) -> Mapping[str, tuple[float, float, float]]:
        return {"main": (self.amps + 2,) * 3}

    def measured(self, now: float) -> Mapping[str, tuple[float, float, float]]:
        return {"main": (self.amps,) * 3}


class Recalled:
    def __init__(self, state: WindowState | None) -> None:
        self.state = state
        self.asked = 0

    async def recall(self, spec: TargetSpec) -> WindowState | None:
        self.asked += 1
        return self.state


T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp()
TARGET = TargetSpec(target_w=13_800.0, window_s=900.0, voltage=230.0)


async def test_the_power_target_caps_the_top_fuse_from_the_windows_energy() -> None:
    # 5 minutes into the window at 13.8 kW (6900 W of chargers, 10 A of building): 1150 Wh
    # used of 3450; the car draws 10 A on three phases (6900 W), the building 10 A (6900 W)
    recalled = Recalled(WindowState(T0, 1150.0, T0 + 270, 13_800.0, "2026-01"))
    rows, metrics = Rows(), Metrics()
    rt = runtime(
        rows,
        metrics,
        building=Building(10.0),
        power_target=TARGET,
        window_recall=recalled,
        tick_s=30.0,
    )
    report = await rt.step(tick(T0 + 300, amps=10.0))
    assert recalled.asked == 1
    power = report.power
    assert power is not None
    assert power.chargers_w == 6900.0 and power.building_w == 6900.0
    # + 13.8 kW for 30 s = 115 Wh: 1265 Wh used, 2185 Wh left for 600 s -> 13,110 W mean;
    # less the building's 6900 W: 6210 W over 3 x 230 V = 9.0 A per phase
    assert power.window.energy_wh == pytest.approx(1265.0)
    assert power.cap.allowed_w == pytest.approx(13_110.0)
    assert power.cap_a == 9.0
    root = report.site.root
    assert report.site.capacity(root) == (9.0, 9.0, 9.0)  # 40 - 12 A of building = 28 A, capped
    assert report.allocation.decisions[KEY].target == 9.0
    (row,) = rows.last("power_window")
    assert row["energy_wh"] == pytest.approx(1265.0)
    assert (row["window_s"], row["month"], row["cap_a"], row["target_w"]) == (
        900,
        "2026-01",
        9.0,
        13_800.0,
    )
    assert row["window_start"] == datetime(2026, 1, 5, 8, 0)
    sample = metrics.registry.get_sample_value
    assert sample("charged_power_target_cap_amperes", {}) == 9.0
    assert sample("charged_power_window_energy_wh", {}) == pytest.approx(1265.0)
    assert sample("charged_power_site_watts", {"part": "building"}) == 6900.0
    assert sample("charged_balancer_fuse_capacity_amperes", {"fuse": "main", "phase": "L1"}) == 9.0
    # the next tick does not ask the database again
    await rt.step(tick(T0 + 330, amps=9.0))
    assert recalled.asked == 1


async def test_a_spent_window_pauses_the_chargers_and_the_fuse_still_rules() -> None:
    spent = Recalled(WindowState(T0, 3500.0, T0 + 570, 13_800.0, "2026-01"))
    rt = runtime(Rows(), Metrics(), power_target=TARGET, window_recall=spent)
    report = await rt.step(tick(T0 + 600, amps=10.0))
    assert report.power is not None and report.power.cap_a == 0.0
    assert report.allocation.decisions[KEY].target == 0.0
    # a generous target: the fuse (40 A) is what limits
    rt = runtime(Rows(), Metrics(), power_target=TargetSpec(100_000.0))
    report = await rt.step(tick(T0 + 600, amps=10.0))
    assert report.site.capacity(report.site.root) == (40.0, 40.0, 40.0)
    assert report.allocation.decisions[KEY].target == 32.0


async def test_the_power_targets_caps_follow_the_phases_the_chargers_draw_on() -> None:
    # a new window 5 minutes in, no building: 3450 Wh left for 600 s = 20,700 W, 90 A over
    # the three phases. A one-phase car draws 20 A on L1: the floors (6, 6, 6), L1 its 20 A,
    # and the 58 A left in proportion to the fuse's room left (20, 34, 34 of 88 A)
    rt = runtime(Rows(), Metrics(), power_target=TARGET, tick_s=30.0)
    one_phase = tick(T0 + 300, amps=20.0, only_l1=True)
    report = await rt.step(one_phase)
    power = report.power
    assert power is not None and power.cap.allowed_w == pytest.approx(20_700.0)
    assert power.caps == (
        math.floor((20 + 58 * 20 / 88) * 10) / 10,
        math.floor((6 + 58 * 34 / 88) * 10) / 10,
        math.floor((6 + 58 * 34 / 88) * 10) / 10,
    )
    assert power.caps == (33.1, 28.4, 28.4)  # 89.9 A of the 90: the tenths rounded down
    assert report.site.capacity(report.site.root) == (33.1, 28.4, 28.4)
    assert power.cap_a == pytest.approx(29.97)  # their mean, what the row and gauge show
