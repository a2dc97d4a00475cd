"""The power target survives a restart: the window's energy and the month's peak are read
back from power_window (SQLite and MariaDB), and `charged balance status` shows them."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from charged.balancer.power_target import TargetSpec
from charged.balancer.runtime import BalancerRuntime
from charged.balancer.status import print_status, read_status
from charged.balancer.window_recall import SqlWindowRecall
from charged.clock import FakeClock
from charged.metrics import Metrics
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.writes import RowBatch, write_rows
from tests.unit.test_balancer_runtime_limits import Building, Vendor, site, tick

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp()
MONTHLY = TargetSpec(target_w=2000.0, window_s=900.0, monthly=True, timezone="Europe/Stockholm")


async def test_a_restart_takes_the_window_and_the_months_peak_back(db_url: str) -> None:
    await upgrade(db_url)
    engine = create_engine(db_url)

    async def put(batch: RowBatch) -> None:
        async with engine.begin() as conn:
            for table, rows in batch.items():
                await write_rows(conn, table, rows)

    def runtime() -> BalancerRuntime:
        return BalancerRuntime(
            site(),
            mode="shadow",
            controller=Vendor(),  # type: ignore[arg-type]
            audit_rows=None,
            put=put,
            clock=FakeClock(0.0),
            metrics=Metrics(),
            building=Building(10.0),  # 6900 W
            power_target=MONTHLY,
            window_recall=SqlWindowRecall(engine),
        )

    try:
        first = runtime()
        # the 07:45 window: a 16 A car and the building, 17,940 W, for its last 2 minutes
        # (nothing known before), then 10 A (13,800 W) into the 08:00 window
        await first.step(tick(T0 - 120, amps=16.0))
        await first.step(tick(T0 - 60, amps=16.0))
        report = await first.step(tick(T0 + 60, amps=10.0))
        assert report.power is not None
        # 07:45 window: 120 s at 17,940 W = 598 Wh (the last minute's 16 -> 10 A ramp ends
        # at 15,870 W at 08:00): 299 + (17,940 + 15,870) / 2 x 60 s = 299 + 281.75 Wh
        peak = (299.0 + 281.75) * 4
        assert report.power.window.month_peak_w == pytest.approx(peak)
        assert report.power.window.energy_wh == pytest.approx((15_870 + 13_800) / 2 / 60)
        used = report.power.window.energy_wh
        # a restart: the new runtime has no memory; the rows do
        second = runtime()
        again = await second.step(tick(T0 + 120, amps=10.0))
        assert again.power is not None
        assert again.power.window.window_start == T0
        assert again.power.window.energy_wh == pytest.approx(used + 13_800 / 60)
        assert again.power.window.month_peak_w == pytest.approx(peak)
        assert again.power.cap.target_w == pytest.approx(peak)  # monthly: the peak, > 2 kW
        status = await read_status(engine)
    finally:
        await engine.dispose()
    assert status is not None and status.power is not None
    assert status.power.energy_wh == pytest.approx(used + 13_800 / 60)
    out = io.StringIO()
    print_status(status, out)
    line = next(x for x in out.getvalue().splitlines() if x.startswith("power target"))
    # 247.25 Wh + 230 Wh; 0 A: the building alone is above the 2.32 kW target
    assert line == (
        "power target 2.32 kW in force (month 2026-01's peak 2.32 kW); 15-min window from "
        "08:00 UTC: 0.477 kWh used, 13.80 kW now (building 6.90 kW); chargers capped at 0 A "
        "per phase on average"
    )
    assert status.to_json()["powerTarget"]["capA"] == 0.0
