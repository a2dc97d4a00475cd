"""SessionTracker on connector_status/measurement rows written by hand into a real database.

Hand-made rows reach what the simulator does not produce: rows that name no charger (a
damaged import) and a charger whose voltage reading is wrong, which the energy cross-check
(∑ I×V×Δt against the energy counter) must notice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.analysis.plot_data import find_sessions, session_series
from charged.analysis.plot_sessions import energy_power_figure
from charged.chargeamps.models import ChargingSession
from charged.clock import FakeClock
from charged.metrics import Metrics
from charged.sessions.tracker import SessionTracker
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.schema import (
    charge_point_status,
    charging_session,
    connector_status,
    measurement,
)

T0 = datetime(2026, 1, 5, 8, 0, 0)
CP = "2301000001A"
INTERVAL = 30.0
AMPS = 16.0
VOLTS = 230.0
MISMATCH_METRIC = "charged_session_energy_mismatches_total"


@dataclass
class Recorder:
    """Takes the tracker's log lines (structlog's call shape: message, then fields)."""

    warnings: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def warning(self, message: str, **fields: Any) -> None:
        self.warnings.append((message, fields))

    def info(self, message: str, **fields: Any) -> None:
        pass


@pytest.fixture
async def engine(sqlite_url: str) -> Any:
    await upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def write_session(
    engine: AsyncEngine,
    *,
    session_id: int,
    connector: int = 1,
    polls: int = 20,
    reported_volts: float = VOLTS,
    start: datetime = T0,
    junk_every: int = 0,
    measured: bool = True,
) -> datetime:
    """A three-phase session of ``polls`` charging polls every 30 s, then a poll without it.

    The energy counter moves as 3 × AMPS × VOLTS would make it; the measurement rows report
    ``reported_volts`` (none if not ``measured``: only the vendor's chargingPowerKw tells the
    power).  ``junk_every``: a row naming no charger after every so many polls.  Returns the
    time of the closing poll.
    """
    step_kwh = 3 * AMPS * VOLTS * INTERVAL / 3_600_000
    status_rows: list[dict[str, Any]] = []
    phase_rows: list[dict[str, Any]] = []
    junk: list[dict[str, Any]] = []
    for k in range(polls):
        when = start + timedelta(seconds=INTERVAL * k)
        status_rows.append(
            {
                "charge_point_id": CP,
                "connector_id": connector,
                "total_consumption_kwh": round(k * step_kwh, 4),
                "session_type": "ThreePhase",
                "status": "Charging",
                "start_time": start.isoformat(),
                "session_id": session_id,
                "date_created": when,
                "charging_power_kw": 3 * AMPS * VOLTS / 1000,
            }
        )
        phase_rows += [
            {
                "phase": phase,
                "current": AMPS,
                "voltage": reported_volts,
                "connector_id": connector,
                "charge_point_id": CP,
                "session_id": session_id,
                "date_created": when,
            }
            for phase in ("L1", "L2", "L3")
        ]
        if junk_every and k % junk_every == 0:
            junk += [{"status": "Charging", "date_created": when} for _ in range(junk_every)]
    closing = start + timedelta(seconds=INTERVAL * polls)
    status_rows.append(
        {
            "charge_point_id": CP,
            "connector_id": connector,
            "total_consumption_kwh": 0.0,
            "status": "Available",
            "date_created": closing,
        }
    )
    async with engine.begin() as conn:
        # interleaved by id: each junk batch lands between two of the session's rows
        per_poll = max(1, junk_every)
        for i, row in enumerate(status_rows):
            await conn.execute(connector_status.insert(), [row])
            if junk and i % per_poll == 0:
                await conn.execute(connector_status.insert(), junk[:per_poll])
                del junk[:per_poll]
        if measured:
            await conn.execute(measurement.insert(), phase_rows)
    return closing


async def session_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(charging_session).order_by(charging_session.c.id))
        return [dict(r._mapping) for r in result]


def tracker(engine: AsyncEngine, **kwargs: Any) -> SessionTracker:
    return SessionTracker(engine, None, clock=FakeClock(), interval=INTERVAL, **kwargs)


# ---------------------------------------------------------------- paging


async def test_rows_naming_no_connector_neither_end_a_pass_early_nor_stall_it(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        # more rows than a batch, all left out: the first batch keeps none of them
        await conn.execute(
            connector_status.insert(),
            [{"status": "Charging", "date_created": T0 - timedelta(minutes=1)}] * 7,
        )
    await write_session(engine, session_id=41, polls=12, junk_every=3)
    async with engine.connect() as conn:
        last_id = await conn.scalar(select(func.max(connector_status.c.id)))
    one = tracker(engine, batch_rows=3)
    assert await one.update() == 1  # one pass reaches the session behind them
    (row,) = await session_rows(engine)
    assert (row["session_id"], row["polls"], row["phases"]) == (41, 12, 3)
    assert row["end_time"] == T0 + timedelta(seconds=INTERVAL * 12)
    assert one._after == last_id  # it went past the last row, junk included
    assert await one.update() == 0  # and stays there

    # a pass that finds only such rows moves past them too, and the next row is folded in
    async with engine.begin() as conn:
        await conn.execute(connector_status.insert(), [{"status": "x"}] * 4)
    assert await one.update() == 0
    await write_session(engine, session_id=42, polls=5, start=T0 + timedelta(hours=1))
    assert await one.update() == 1
    assert [r["session_id"] for r in await session_rows(engine)] == [41, 42]


# ---------------------------------------------------------------- energy cross-check


async def test_a_wrong_voltage_reading_is_counted_and_logged_once(engine: AsyncEngine) -> None:
    # the charger reports 115 V while the energy counter moves as at 230 V
    await write_session(engine, session_id=7, reported_volts=VOLTS / 2)
    metrics, log = Metrics(), Recorder()
    one = tracker(engine, metrics=metrics, logger=log)
    assert await one.update() == 1
    (row,) = await session_rows(engine)
    assert row["energy_from_power_kwh"] == pytest.approx(row["observed_energy_kwh"] / 2)
    assert metrics.registry.get_sample_value(MISMATCH_METRIC) == 1.0
    ((message, fields),) = log.warnings
    assert "disagrees with the energy counter" in message
    assert fields["charge_point"] == CP and fields["session"] == 7 and fields["connector"] == 1
    assert fields["counter_kwh"] == pytest.approx(2 * fields["from_power_kwh"], rel=0.01)

    # the finished session is not counted again when it is refreshed
    one._after = 0
    assert await one.update() == 1
    assert metrics.registry.get_sample_value(MISMATCH_METRIC) == 1.0
    assert len(log.warnings) == 1


async def test_a_consistent_session_is_not_a_mismatch(engine: AsyncEngine) -> None:
    await write_session(engine, session_id=8)
    metrics, log = Metrics(), Recorder()
    assert await tracker(engine, metrics=metrics, logger=log).update() == 1
    (row,) = await session_rows(engine)
    assert row["end_time"] is not None and row["gap_count"] == 0
    assert row["energy_from_power_kwh"] == pytest.approx(row["observed_energy_kwh"], rel=1e-3)
    assert row["observed_energy_kwh"] > 1.0
    assert metrics.registry.get_sample_value(MISMATCH_METRIC) == 0.0
    assert log.warnings == []


# ---------------------------------------------------------------- plot and session agree


async def test_without_measurements_the_plot_shows_the_power_the_session_figures_use(
    engine: AsyncEngine,
) -> None:
    # an older collector, or a charger that reports chargingPowerKw but no phases
    await write_session(engine, session_id=9, measured=False)
    assert await tracker(engine).update() == 1
    async with engine.connect() as conn:
        (row,) = await find_sessions(conn)
        series = await session_series(conn, row)
    watts = 3 * AMPS * VOLTS
    assert row["peak_power_w"] == pytest.approx(watts) == row["mean_power_w"]
    assert series.power_w == [pytest.approx(watts)] * 20  # not 0 W
    assert max(p for p in series.power_w if p is not None) == pytest.approx(row["peak_power_w"])
    # the phases were not measured: unknown, not 0 A
    assert all(series.phase_currents[p] == [None] * 20 for p in ("L1", "L2", "L3"))
    figure = energy_power_figure([series], "t")
    power_ax = figure.axes[1]
    (line,) = power_ax.get_lines()
    assert max(line.get_ydata()) == pytest.approx(watts)


async def test_measured_power_in_the_plot_is_the_sessions_peak(engine: AsyncEngine) -> None:
    await write_session(engine, session_id=10, reported_volts=231.0)
    assert await tracker(engine).update() == 1
    async with engine.connect() as conn:
        (row,) = await find_sessions(conn)
        series = await session_series(conn, row)
    assert max(p for p in series.power_w if p is not None) == pytest.approx(row["peak_power_w"])
    assert row["peak_power_w"] == pytest.approx(3 * AMPS * 231.0)
    assert series.phase_currents["L2"] == [AMPS] * 20


# ---------------------------------------------------------------- no overlap on a connector


async def _write_status(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    base = {"charge_point_id": CP, "connector_id": 1, "total_consumption_kwh": 0.0}
    async with engine.begin() as conn:
        await conn.execute(connector_status.insert(), [{**base, **r} for r in rows])


async def test_a_session_ends_at_the_latest_when_the_next_one_on_its_connector_began(
    engine: AsyncEngine,
) -> None:
    # Session 1 is last seen at 08:09:30; the collector is away until 09:00, when the poll
    # already shows session 2, begun (by the status) at 08:40.  Session 1 ended before that.
    await write_session(engine, session_id=1, polls=20)  # 08:00-08:09:30, Available at 08:10
    async with engine.begin() as conn:  # drop the closing poll: the gap hides the end
        await conn.execute(connector_status.delete().where(connector_status.c.session_id.is_(None)))
    second_start = T0 + timedelta(minutes=40)
    await _write_status(
        engine,
        [
            {
                "status": "Charging",
                "session_id": 2,
                "start_time": second_start.isoformat(),
                "date_created": T0 + timedelta(hours=1, seconds=30 * k),
            }
            for k in range(5)
        ],
    )
    assert await tracker(engine).update() == 2
    first, second = await session_rows(engine)
    assert first["end_time"] == second_start  # not 09:00, the first poll without it
    assert second["start_time"] == second_start
    assert first["end_time"] <= second["start_time"]
    assert first["last_poll"] == T0 + timedelta(seconds=30 * 19)


class OneVendorSession:
    """The vendor client's chargingsessions, answering with one session."""

    def __init__(self, session: ChargingSession) -> None:
        self.session = session

    async def charging_sessions(self, cp: str, **_: Any) -> list[ChargingSession]:
        return [self.session] if cp == self.session.charge_point_id else []


async def test_sessions_of_one_connector_never_overlap(engine: AsyncEngine) -> None:
    # two sessions polled, then the reconcile reports one in between that the polls missed
    # (begun between session 10's last poll, 08:04:30, and its closing poll, 08:05): each
    # session's end is at most the next one's start
    await write_session(engine, session_id=10, polls=10)
    await write_session(engine, session_id=12, polls=10, start=T0 + timedelta(minutes=30))
    async with engine.begin() as conn:
        await conn.execute(charge_point_status.insert(), [{"id": CP, "status": "Online"}])
    between = ChargingSession(
        id=11,
        charge_point_id=CP,
        connector_id=1,
        user_id=None,
        rfid=None,
        rfid_dec=None,
        session_type="OnePhase",
        start_time=(T0 + timedelta(minutes=4, seconds=45)).replace(tzinfo=UTC),
        end_time=(T0 + timedelta(minutes=20)).replace(tzinfo=UTC),
        total_consumption_kwh=1.5,
        external_transaction_id=None,
        external_id=None,
    )
    clock = FakeClock(T0.replace(tzinfo=UTC).timestamp() + 7200)
    one = SessionTracker(engine, OneVendorSession(between), clock=clock, interval=INTERVAL)
    await one.update()
    assert await one.reconcile() == 1
    rows = sorted(await session_rows(engine), key=lambda r: r["start_time"])
    assert [r["session_id"] for r in rows] == [10, 11, 12]
    for earlier, later in itertools.pairwise(rows):
        assert earlier["end_time"] <= later["start_time"], (earlier, later)
    assert rows[0]["end_time"] == T0 + timedelta(minutes=4, seconds=45)
    assert rows[1]["end_time"] == T0 + timedelta(minutes=20)  # the vendor's, as it is
