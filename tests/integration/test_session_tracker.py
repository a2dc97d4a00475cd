"""SessionTracker on a simulated morning: figures against the simulator's own truth."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from simulated_morning import INTERVAL, MORNING, Morning, collect_morning
from sqlalchemy import delete, select

from charged.clock import FakeClock
from charged.metrics import Metrics
from charged.sessions.tracker import SessionTracker
from charged.storage.engine import create_engine
from charged.storage.schema import charging_session

GAP_CHARGER = 1  # index of the charger that answers garbage for a while
GAP_TICKS = range(200, 210)


def _gap_fault(k: int, sim: Any) -> None:
    cp = sim.charge_point_ids()[GAP_CHARGER]
    if k in GAP_TICKS:
        sim.faults.malformed.add(cp)
    else:
        sim.faults.malformed.discard(cp)


@pytest.fixture(scope="module")
def morning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Morning]:
    """07:00–11:00 of 6 chargers, a 5-minute gap on one, derived, then reconciled."""
    db = tmp_path_factory.mktemp("morning") / "charged.db"
    url = f"sqlite+aiosqlite:///{db}"
    yield asyncio.run(collect_morning(url, chargers=6, ticks=480, during=_gap_fault))


async def sessions(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(select(charging_session).order_by(charging_session.c.id))
            return [dict(r._mapping) for r in result]
    finally:
        await engine.dispose()


def key(row: dict[str, Any]) -> tuple[str, int, int]:
    return (row["charge_point_id"], row["connector_id"], row["session_id"])


def naive(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


def seen_from_start(row: dict[str, Any], morning: Morning) -> bool:
    """Started after the first poll: every minute of it was polled (but for gaps)."""
    return morning.truth[key(row)].start >= MORNING.timestamp()


def fully_seen(row: dict[str, Any], morning: Morning) -> bool:
    """Seen from its start and over before the last poll."""
    return seen_from_start(row, morning) and morning.truth[key(row)].end is not None


async def test_every_simulated_session_is_a_row_with_the_vendors_start_end_and_energy(
    morning: Morning,
) -> None:
    rows = await sessions(morning.db_url)
    assert {key(r) for r in rows} == set(morning.truth)
    # the collector's own tracker reconciles too (every 15 fleet minutes), so the test's
    # last pass may find little left to do: what counts is every row's vendor values, below
    assert morning.collector_reconciles >= len(morning.charge_point_ids)
    for row in rows:
        truth = morning.truth[key(row)]
        assert row["start_time"] == naive(truth.start)
        assert row["end_time"] == (None if truth.end is None else naive(truth.end))
        assert row["reconciled_at"] is not None
        assert row["energy_kwh"] == pytest.approx(truth.energy_kwh, rel=0.02)


def copy_of(morning: Morning, tmp_path: Path) -> str:
    """A private copy of the morning's database, for a test that changes it."""
    source = Path(morning.db_url.removeprefix("sqlite+aiosqlite:///"))
    target = tmp_path / "copy.db"
    shutil.copyfile(source, target)
    return f"sqlite+aiosqlite:///{target}"


async def test_energy_from_the_polls_alone_is_within_two_percent_of_the_truth(
    morning: Morning, tmp_path: Path
) -> None:
    # The counter and ∑ I×V×Δt before any reconciliation: the rows derived afresh.
    url = copy_of(morning, tmp_path)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(charging_session))
        written = await SessionTracker(engine, None, clock=FakeClock(), interval=INTERVAL).update()
    finally:
        await engine.dispose()
    derived = await sessions(url)
    assert written >= len(derived) > 0
    assert {key(r) for r in derived} == {
        k for k, t in morning.truth.items() if t.end is None or t.end >= MORNING.timestamp()
    }
    checked = 0
    for row in derived:
        truth = morning.truth[key(row)]
        assert row["reconciled_at"] is None
        assert row["energy_kwh"] == pytest.approx(truth.energy_kwh, rel=0.02)
        if seen_from_start(row, morning) and row["gap_count"] == 0:
            assert row["energy_from_power_kwh"] == pytest.approx(truth.energy_kwh, rel=0.02)
            assert row["observed_energy_kwh"] == pytest.approx(truth.energy_kwh, rel=0.02)
            checked += 1
    assert checked >= 3


async def test_no_session_of_the_simulated_morning_fails_the_energy_cross_check(
    morning: Morning,
) -> None:
    # the simulator's voltages are right, so ∑ I×V×Δt agrees with its energy counter on every
    # session the check applies to (finished, without gaps); a wrong voltage is in
    # test_session_rows.py
    rows = await sessions(morning.db_url)
    checked = [r for r in rows if r["end_time"] is not None and r["gap_count"] == 0]
    assert checked and all(r["energy_from_power_kwh"] for r in checked)
    assert morning.energy_mismatches == 0.0
    # and the two figures agree on every session both exist for, not just the checked ones
    both = [r for r in rows if r["energy_from_power_kwh"] and r["observed_energy_kwh"]]
    assert len(both) >= 5
    for row in both:
        assert row["energy_from_power_kwh"] == pytest.approx(row["observed_energy_kwh"], rel=0.1)


async def test_phases_are_right_for_one_and_three_phase_vehicles(morning: Morning) -> None:
    rows = await sessions(morning.db_url)
    polled = [r for r in rows if r["polls"] > 0]
    assert {morning.truth[key(r)].phases for r in polled} == {1, 3}
    for row in polled:
        assert row["phases"] == morning.truth[key(row)].phases, key(row)


async def test_idle_time_of_cars_left_plugged_in_after_full(morning: Morning) -> None:
    gap_cp = morning.charge_point_ids[GAP_CHARGER]
    checked = 0
    for row in await sessions(morning.db_url):
        truth = morning.truth[key(row)]
        if truth.end is None or not row["charging_s"] or row["charge_point_id"] == gap_cp:
            continue  # still plugged in, never seen charging, or interrupted by the gap
        # one poll (30 s) is the resolution of where charging ended
        assert row["idle_after_s"] == pytest.approx(truth.idle_seconds, abs=2 * INTERVAL)
        assert row["connected_s"] == pytest.approx(truth.end - truth.start)
        if fully_seen(row, morning):
            assert row["gap_count"] == 0
            assert row["charging_s"] == pytest.approx(truth.charging_seconds, abs=2 * INTERVAL)
        if truth.idle_seconds > 600:
            checked += 1
    assert checked >= 3


async def test_a_polling_gap_is_marked_on_the_session_it_interrupts(morning: Morning) -> None:
    cp = morning.charge_point_ids[GAP_CHARGER]
    gap_start = MORNING + timedelta(seconds=INTERVAL * GAP_TICKS.start)
    rows = [
        r
        for r in await sessions(morning.db_url)
        if r["charge_point_id"] == cp
        and r["first_poll"] is not None
        and r["first_poll"] < gap_start.replace(tzinfo=None) < (r["last_poll"])
    ]
    assert rows, "the simulated charger had no session across the gap"
    for row in rows:
        assert row["gap_count"] >= 1
        assert row["gap_s"] >= (len(GAP_TICKS) - 1) * INTERVAL
    others = [r for r in await sessions(morning.db_url) if r["charge_point_id"] != cp]
    assert all(r["gap_count"] == 0 for r in others if fully_seen(r, morning))


async def test_folding_in_again_changes_nothing(morning: Morning, tmp_path: Path) -> None:
    url = copy_of(morning, tmp_path)
    before = await sessions(url)
    engine = create_engine(url)
    try:
        # a restarted tracker resumes after what is stored; one from zero redoes everything
        assert await SessionTracker(engine, None, clock=FakeClock()).update() == 0
        tracker = SessionTracker(engine, None, clock=FakeClock(), interval=INTERVAL)
        tracker._after = 0  # as if it had never run
        assert await tracker.update() > 0
    finally:
        await engine.dispose()
    after = await sessions(url)
    assert [_figures(r) for r in after] == [_figures(r) for r in before]


def _figures(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "updated"}


async def test_sessions_on_sqlite_and_mariadb(db_url: str) -> None:
    morning = await collect_morning(db_url, chargers=3, ticks=120)
    rows = await sessions(db_url)
    assert {key(r) for r in rows} == set(morning.truth)
    for row in rows:
        truth = morning.truth[key(row)]
        assert row["energy_kwh"] == pytest.approx(truth.energy_kwh, rel=0.02)
        if row["polls"]:
            assert row["phases"] == truth.phases


class AskedVendor:
    """Answers reconciliation with no sessions and records whom it was asked about.

    The passes do real I/O (SQLite in a thread), so the test waits for what they do (the
    calls here), with a generous limit, rather than for a guessed number of milliseconds."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self._asked = asyncio.Event()

    async def charging_sessions(self, cp_id: str, *args: Any, **kwargs: Any) -> list[Any]:
        self.asked.append(cp_id)
        self._asked.set()
        return []

    async def until_asked(self, times: int) -> None:
        async with asyncio.timeout(30):  # a guard against a hang, not a wait
            while len(self.asked) < times:
                self._asked.clear()
                await self._asked.wait()


class WatchedClock(FakeClock):
    """A FakeClock that does not move by itself and tells when someone waits on it: a pass
    is over (its I/O done) once the tracker sleeps until the next one."""

    def __init__(self, start: float) -> None:
        super().__init__(start, auto_advance=False)
        self.sleeping = 0
        self._changed = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeping += 1
        self._changed.set()
        try:
            await super().sleep(seconds)
        finally:
            self.sleeping -= 1

    async def until_waited_on(self) -> None:
        async with asyncio.timeout(30):  # a guard against a hang, not a wait
            while not self.sleeping:
                self._changed.clear()
                await self._changed.wait()


async def test_run_updates_and_reconciles_on_its_schedule_until_stopped(
    sqlite_url: str,
) -> None:
    morning = await collect_morning(sqlite_url, chargers=2, ticks=40, reconcile=False)
    vendor = AskedVendor()
    clock = WatchedClock(morning.start.timestamp())
    engine = create_engine(sqlite_url)
    metrics = Metrics()
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(charging_session))
        tracker = SessionTracker(
            engine, vendor, clock=clock, metrics=metrics, interval=30, reconcile_every=300
        )
        stop = asyncio.Event()
        task = asyncio.create_task(tracker.run(stop))
        await vendor.until_asked(2)  # the first pass: fold in, reconcile every charger
        assert len(vendor.asked) == 2
        assert len(await sessions(sqlite_url)) > 0
        await clock.until_waited_on()
        await clock.advance(290)  # 9 more passes, no reconciliation yet
        assert len(vendor.asked) == 2
        await clock.until_waited_on()  # the pass in flight, if any, is done
        await clock.advance(30)
        await vendor.until_asked(4)
        assert len(vendor.asked) == 4
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    finally:
        await engine.dispose()
    assert b"charged_session_reconciles_total" in metrics.exposition()


async def test_cancelling_run_is_not_swallowed(sqlite_url: str) -> None:
    await collect_morning(sqlite_url, chargers=1, ticks=2, reconcile=False)
    engine = create_engine(sqlite_url)
    try:
        clock = WatchedClock(MORNING.timestamp())
        tracker = SessionTracker(engine, None, clock=clock)
        task = asyncio.create_task(tracker.run(asyncio.Event()))
        await clock.until_waited_on()  # cancelled between passes, the first one done
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await engine.dispose()


async def test_reconciliation_waits_for_the_first_stored_charger(sqlite_url: str) -> None:
    from charged.storage.migrate import upgrade
    from charged.storage.schema import charge_point_status

    await upgrade(sqlite_url)
    vendor = AskedVendor()
    clock = WatchedClock(MORNING.timestamp())
    engine = create_engine(sqlite_url)
    try:
        tracker = SessionTracker(engine, vendor, clock=clock, interval=30, reconcile_every=900)
        stop = asyncio.Event()
        task = asyncio.create_task(tracker.run(stop))
        await clock.until_waited_on()
        await clock.advance(60)  # passes with an empty database: nobody to ask
        assert vendor.asked == []
        async with engine.begin() as conn:
            await conn.execute(charge_point_status.insert(), [{"id": "2301000001A"}])
        await clock.until_waited_on()  # the pass in flight, if any, is done
        await clock.advance(30)  # the next pass asks at once, not 15 minutes later
        await vendor.until_asked(1)
        assert vendor.asked == ["2301000001A"]
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    finally:
        await engine.dispose()
