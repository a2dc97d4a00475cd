"""The garage view (`charged plot garage`) at a tick where a charger was not read.

Hand-made poll_cycle / poll_gap / measurement rows in a real SQLite database: two chargers
charge steadily, and at one tick the second one does not answer.  Its 0 rows there are not
0 W: the total is unknown at that tick and must not dip.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.analysis.plot_base import x
from charged.analysis.plot_data import garage_series
from charged.analysis.plot_garage import garage_figure
from charged.cli import main
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.schema import measurement, poll_cycle, poll_gap

T0 = datetime(2026, 1, 5, 8, 0, 0)
TICKS = 12
FAILED_TICK = 6
CHARGERS = {"2301000001A": 16.0, "2301000002B": 10.0}  # three-phase A per phase
VOLTS = 230.0


def tick(k: int) -> datetime:
    return T0 + timedelta(seconds=30 * k)


@pytest.fixture
async def engine(sqlite_url: str) -> Any:
    await upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    cycles, gaps, phases = [], [], []
    for k in range(TICKS):
        failed = ["2301000002B"] if k == FAILED_TICK else []
        cycles.append(
            {
                "tick_time": tick(k),
                "chargers_asked": 2,
                "chargers_ok": 2 - len(failed),
                "chargers_failed": len(failed),
                "rows": 0,
                "duration_s": 0.1,
            }
        )
        gaps += [
            {"tick_time": tick(k), "charge_point_id": cp, "reason": "timeout"} for cp in failed
        ]
        for cp, amps in CHARGERS.items():
            if cp in failed:
                continue
            phases += [
                {
                    "phase": phase,
                    "current": amps,
                    "voltage": VOLTS,
                    "connector_id": 1,
                    "charge_point_id": cp,
                    "date_created": tick(k),
                }
                for phase in ("L1", "L2", "L3")
            ]
    async with engine.begin() as conn:
        await conn.execute(poll_cycle.insert(), cycles)
        await conn.execute(poll_gap.insert(), gaps)
        await conn.execute(measurement.insert(), phases)
    try:
        yield engine
    finally:
        await engine.dispose()


FULL_W = sum(3 * amps * VOLTS for amps in CHARGERS.values())
READ_W = 3 * CHARGERS["2301000001A"] * VOLTS


async def test_the_total_is_unknown_at_a_tick_with_a_charger_not_read(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        garage = await garage_series(conn, T0, T0 + timedelta(hours=1))
    assert garage.times == [tick(k) for k in range(TICKS)]
    expected: list[float | None] = [FULL_W] * TICKS
    expected[FAILED_TICK] = None  # not the 5.5 kW that was read: the other charger is unknown
    assert garage.power_w == [None if w is None else pytest.approx(w) for w in expected]
    assert garage.phase_currents["L1"][FAILED_TICK] is None
    assert garage.phase_currents["L3"][FAILED_TICK - 1] == pytest.approx(26.0)
    assert garage.failed_ticks == [tick(FAILED_TICK)]
    assert garage.chargers_failed == {tick(FAILED_TICK): (1, 2)}
    # what was read is kept, as a partial total, only there
    partial = [None] * TICKS
    partial[FAILED_TICK] = pytest.approx(READ_W)
    assert garage.partial_power_w == partial


async def test_the_figure_breaks_the_total_and_marks_the_partial_one(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        garage = await garage_series(conn, T0, T0 + timedelta(hours=1))
    figure = garage_figure(garage, "garage")
    power_ax, amps_ax = figure.axes
    lines = {line.get_label(): line for line in power_ax.get_lines()}
    total = lines["total power (kW)"]
    at = dict(zip(total.get_xdata(), total.get_ydata(), strict=True))
    assert math.isnan(at[x(tick(FAILED_TICK))])  # a break, not a dip
    known = [v for v in at.values() if not math.isnan(v)]
    assert min(known) == pytest.approx(FULL_W / 1000)
    partial = lines["partial total (chargers read)"]
    assert list(partial.get_xdata()) == [x(tick(FAILED_TICK))]
    assert list(partial.get_ydata()) == [pytest.approx(READ_W / 1000)]
    labels = power_ax.get_legend_handles_labels()[1]
    assert "charger not read: total unknown" in labels
    for line in amps_ax.get_lines():
        ys = dict(zip(line.get_xdata(), line.get_ydata(), strict=True))
        assert math.isnan(ys[x(tick(FAILED_TICK))]), line.get_label()


def test_plot_garage_writes_the_marked_figure(
    engine: AsyncEngine, sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sqlite_url.removeprefix("sqlite+aiosqlite:///")
    out = tmp_path / "garage.svg"
    assert main(["plot", "garage", "--db", db, "--date", "2026-01-05", "-o", str(out)]) == 0
    text = out.read_text()
    for label in ("charger not read: total unknown", "partial total (chargers read)"):
        assert label in text
    capsys.readouterr()
