"""The poll loop on a fake clock: schedule, fan-out, gaps, rediscovery, backpressure."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from charged.chargeamps.errors import ApiUnavailable, AuthenticationError, PayloadError
from charged.chargeamps.models import (
    ChargePoint,
    ChargePointStatus,
    ConnectorStatus,
    Measurement,
)
from charged.clock import FakeClock
from charged.collector.rows import charge_point_rows
from charged.collector.supervisor import NoChargersError, Supervisor
from charged.metrics import Metrics
from charged.storage.writes import RowBatch


def charge_point(cp_id: str) -> ChargePoint:
    return ChargePoint(
        id=cp_id,
        name=f"Garage {cp_id}",
        password="1234",
        type="AURA",
        is_loadbalanced=False,
        firmware_version="1.2.3",
        hardware_version="A",
        owner_read_only=False,
        ocpp_version=None,
        connectors=(),
        settings=None,
    )


def charging_status(cp_id: str) -> ChargePointStatus:
    started = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)
    return ChargePointStatus(
        id=cp_id,
        status="Online",
        connector_statuses=(
            ConnectorStatus(
                charge_point_id=cp_id,
                connector_id=1,
                total_consumption_kwh=2.5,
                charging_power_kw=10.35,
                session_type="ThreePhase",
                status="Charging",
                measurements=tuple(Measurement(p, 15.0, 230.0) for p in ("L1", "L2", "L3")),
                start_time=started,
                end_time=None,
                session_id=42,
            ),
            ConnectorStatus(
                charge_point_id=cp_id,
                connector_id=2,
                total_consumption_kwh=0.0,
                charging_power_kw=0.0,
                session_type=None,
                status="Available",
                measurements=(),
                start_time=None,
                end_time=None,
                session_id=None,
            ),
        ),
    )


class FakeSource:
    """Answers like the vendor client; each status call takes ``work`` clock seconds."""

    def __init__(self, clock: FakeClock, ids: list[str], work: float = 0.5) -> None:
        self.clock = clock
        self.ids = ids
        self.work = work
        self.failures: dict[str, Exception] = {}
        self.owned_calls = 0
        self.status_calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.tick_overlap = False

    async def owned_chargepoints(self, *, deadline: float | None = None) -> list[ChargePoint]:
        self.owned_calls += 1
        return [charge_point(i) for i in self.ids]

    async def status(self, cp_id: str, *, deadline: float | None = None) -> ChargePointStatus:
        self.status_calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.clock.sleep(self.work)
            if cp_id in self.failures:
                raise self.failures[cp_id]
            return charging_status(cp_id)
        finally:
            self.in_flight -= 1


def drain(queue: asyncio.Queue[RowBatch]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    while not queue.empty():
        for table, rows in queue.get_nowait().items():
            out.setdefault(table, []).extend(rows)
    return out


async def test_one_tick_rows_share_one_poll_time_and_gaps_are_recorded(
    fake_clock: FakeClock,
) -> None:
    source = FakeSource(fake_clock, ["CP1", "CP2", "CP3", "CP4"])
    source.failures = {
        "CP2": ApiUnavailable("gave up after 4 attempts: HTTP 503"),
        "CP3": PayloadError("status is not JSON", charge_point_id="CP3", endpoint="status"),
    }
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    metrics = Metrics()
    sup = Supervisor(source, queue, clock=fake_clock, metrics=metrics)
    result = await sup.tick()

    assert (result.asked, result.ok, result.failed) == (4, 2, 2)
    assert set(result.failures) == {"CP2", "CP3"}
    assert result.failures["CP3"] == "malformed payload"
    # the four chargers were asked at once, not one after another
    assert source.max_in_flight == 4
    rows = drain(queue)
    stamps = {r["date_created"] for t in ("connector_status", "measurement") for r in rows[t]}
    assert stamps == {result.tick_time}
    assert result.tick_time.tzinfo is None and result.tick_time.microsecond == 0
    assert len(rows["connector_status"]) == 4  # 2 chargers ok × 2 connectors
    assert len(rows["measurement"]) == 6  # 2 chargers × 3 phases on the charging connector
    assert result.rows == 2 * (1 + 2 + 3)
    assert result.charging == 2 and result.power_kw == pytest.approx(20.7)
    statuses = [r for r in rows["charge_point_status"] if "status" in r]
    assert {r["id"] for r in statuses} == {"CP1", "CP4"}
    named = [r for r in rows["charge_point_status"] if "name" in r]
    assert {r["id"] for r in named} == {"CP1", "CP2", "CP3", "CP4"}
    (cycle,) = rows["poll_cycle"]
    assert cycle["tick_time"] == result.tick_time
    assert (cycle["chargers_asked"], cycle["chargers_ok"], cycle["chargers_failed"]) == (4, 2, 2)
    assert cycle["rows"] == 12
    gaps = {g["charge_point_id"]: g["reason"] for g in rows["poll_gap"]}
    assert set(gaps) == {"CP2", "CP3"}
    assert gaps["CP2"].startswith("ApiUnavailable")
    assert metrics.chargers_polled.labels("malformed")._value.get() == 1


async def test_ticks_stay_on_the_grid_without_drift(fake_clock: FakeClock) -> None:
    source = FakeSource(fake_clock, ["CP1", "CP2"], work=3.7)
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    stop = asyncio.Event()
    times: list[datetime] = []

    def on_tick(result: Any) -> None:
        times.append(result.tick_time)
        if len(times) == 20:
            stop.set()

    sup = Supervisor(source, queue, interval=30, clock=fake_clock, on_tick=on_tick)
    await sup.run(stop)
    gaps = {b - a for a, b in itertools.pairwise(times)}
    assert gaps == {timedelta(seconds=30)}  # 3.7 s of work each tick never shifts the grid
    assert times[-1] - times[0] == timedelta(seconds=30 * 19)


async def test_overrun_skips_ticks_and_never_overlaps(fake_clock: FakeClock) -> None:
    source = FakeSource(fake_clock, ["CP1"], work=70.0)  # each tick takes 70 s of a 30 s grid
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    stop = asyncio.Event()
    results: list[Any] = []

    def on_tick(result: Any) -> None:
        results.append(result)
        if len(results) == 3:
            stop.set()

    metrics = Metrics()
    sup = Supervisor(source, queue, interval=30, clock=fake_clock, metrics=metrics, on_tick=on_tick)
    await sup.run(stop)
    assert source.max_in_flight == 1
    starts = [r.tick_time for r in results]
    # ticks at 0, 90, 180: the grid points 30 and 60 (and 120, 150) were skipped
    assert [int((s - starts[0]).total_seconds()) for s in starts] == [0, 90, 180]
    assert [r.skipped_before for r in results] == [0, 2, 2]
    assert metrics.ticks_skipped._value.get() == 6  # the third tick overran too
    cycles = [row for b in drain(queue).get("poll_cycle", []) for row in [b]]
    assert [c["skipped_ticks"] for c in cycles] == [0, 2, 2]


async def test_owned_list_is_reread_every_n_ticks(fake_clock: FakeClock) -> None:
    source = FakeSource(fake_clock, ["CP1"], work=0.1)
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    sup = Supervisor(source, queue, rediscover_every=4, clock=fake_clock)
    for _ in range(10):
        await sup.tick()
    assert source.owned_calls == 3  # ticks 1, 5, 9
    assert source.status_calls == 10
    source.ids = ["CP1", "CP9"]  # a charger added: seen at the next rediscovery
    for _ in range(3):
        await sup.tick()
    assert sup.charge_points == ["CP1", "CP9"]


async def test_allow_list_limits_polling(fake_clock: FakeClock) -> None:
    source = FakeSource(fake_clock, ["CP1", "CP2", "CP3"])
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    sup = Supervisor(source, queue, allow_list=["CP2", "CP7"], clock=fake_clock)
    result = await sup.tick()
    assert result.asked == 1 and sup.charge_points == ["CP2"]


async def test_allow_list_matching_nothing_is_a_clear_error(fake_clock: FakeClock) -> None:
    source = FakeSource(fake_clock, ["CP1"])
    sup = Supervisor(source, asyncio.Queue(), allow_list=["CP7"], clock=fake_clock)
    with pytest.raises(NoChargersError, match=r"collector\.charge_points"):
        await sup.tick()


async def test_refused_login_stops_the_loop(fake_clock: FakeClock) -> None:
    source = FakeSource(fake_clock, ["CP1"])
    source.failures["CP1"] = AuthenticationError("login refused")
    sup = Supervisor(source, asyncio.Queue(), clock=fake_clock)
    with pytest.raises(AuthenticationError):
        await sup.run(asyncio.Event())


class SlowSiblingSource(FakeSource):
    """CP1's login is refused at once; the other chargers answer ``work`` seconds later."""

    async def status(self, cp_id: str, *, deadline: float | None = None) -> ChargePointStatus:
        if cp_id == "CP1":
            raise AuthenticationError("login refused")
        return await super().status(cp_id, deadline=deadline)


async def test_a_refused_login_ends_the_sibling_polls_with_the_tick() -> None:
    clock = FakeClock(auto_advance=False)
    source = SlowSiblingSource(clock, ["CP1", "CP2", "CP3"], work=10.0)
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    sup = Supervisor(source, queue, clock=clock)
    with pytest.raises(AuthenticationError):
        await asyncio.wait_for(sup.tick(), timeout=5)
    assert source.in_flight == 0  # CP2 and CP3 were cancelled, not left running
    await clock.advance(60.0)
    # only the discovery's rows: no charger's status arrived after the tick ended
    discovered = charge_point_rows([charge_point(cp) for cp in ("CP1", "CP2", "CP3")])
    assert drain(queue) == discovered


async def test_full_queue_makes_the_tick_wait_and_drops_nothing(fake_clock: FakeClock) -> None:
    source = FakeSource(fake_clock, [f"CP{i}" for i in range(5)], work=0.0)
    queue: asyncio.Queue[RowBatch] = asyncio.Queue(maxsize=1)
    sup = Supervisor(source, queue, clock=fake_clock)
    tick = asyncio.create_task(sup.tick())
    taken: list[RowBatch] = []
    for _ in range(50):
        await asyncio.sleep(0)
    assert not tick.done()  # blocked on the full queue, not dropping
    while not tick.done() or not queue.empty():
        taken.append(await queue.get())
    result = await tick
    per_tick = ("poll_cycle", "charge_point_availability")  # the tick's own rows
    rows = sum(len(r) for b in taken for t, r in b.items() if t not in per_tick)
    # every row of the tick arrived: owned list (5) + per charger 1 + 2 + 3
    assert rows == 5 + result.rows


async def test_stop_ends_the_wait_between_ticks() -> None:
    # a clock that moves only when told: the hour's wait can end only by the stop
    clock = FakeClock(auto_advance=False)
    source = FakeSource(clock, ["CP1"], work=0)
    stop = asyncio.Event()
    sup = Supervisor(source, asyncio.Queue(), interval=3600, clock=clock)
    task = asyncio.create_task(sup.run(stop))
    for _ in range(50):
        await asyncio.sleep(0)
    assert sup.ticks_run == 1
    assert not task.done()  # waiting for the next tick, an hour away
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert sup.ticks_run == 1
    assert clock.monotonic() == 1_000.0  # no time passed: the stop ended the wait


async def test_cancellation_is_not_swallowed(fake_clock: FakeClock) -> None:
    clock = FakeClock(auto_advance=False)
    source = FakeSource(clock, ["CP1"], work=10)
    sup = Supervisor(source, asyncio.Queue(), clock=clock)
    task = asyncio.create_task(sup.run(asyncio.Event()))
    for _ in range(10):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
