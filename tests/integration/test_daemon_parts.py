"""The daemon's ways in for another part: tick consumers and tasks beside the tick."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from charged.collector.supervisor import TickResult
from charged.daemon.latest_tick import LatestTick
from charged.daemon.service import Daemon
from charged.simulator import Simulator
from tests.integration.test_collector_e2e import settings_for


async def test_tick_consumers_get_every_tick_in_order_with_the_answering_statuses(
    simulator: Simulator, sqlite_url: str
) -> None:
    broken = simulator.charge_point_ids()[0]
    simulator.faults.malformed.add(broken)
    seen: list[tuple[str, TickResult]] = []

    async def second(result: TickResult) -> None:
        seen.append(("second", result))

    async with Daemon(
        settings_for(simulator, sqlite_url), on_tick=lambda r: seen.append(("first", r))
    ) as daemon:
        daemon.add_tick_consumer(second)
        assert daemon.supervisor is not None
        tick = await daemon.supervisor.tick()
    assert [name for name, _ in seen] == ["first", "second"]
    assert all(result is tick for _, result in seen)
    answered = set(simulator.charge_point_ids()) - {broken}
    assert set(tick.statuses) == answered and tick.failures.keys() == {broken}
    for cp_id, status in tick.statuses.items():
        assert status.id == cp_id and len(status.connector_statuses) == 2


async def test_a_task_runs_beside_the_tick_until_close_and_a_failed_one_stops_run(
    simulator: Simulator, sqlite_url: str
) -> None:
    events: list[str] = []

    async def patient(stop: asyncio.Event) -> None:
        events.append("started")
        try:
            await stop.wait()
        finally:
            events.append("ended" if stop.is_set() else "ended before the close")

    async def broken(stop: asyncio.Event) -> None:
        raise ZeroDivisionError("a bug in a daemon task")

    daemon = Daemon(settings_for(simulator, sqlite_url))
    daemon.add_task("patient", patient)
    try:
        await daemon.start()
        await asyncio.sleep(0)  # the task's first step
        assert events == ["started"]
        daemon.add_task("broken", broken)  # added after the start: starts at once
        with pytest.raises(ZeroDivisionError, match="a bug in a daemon task"):
            await asyncio.wait_for(daemon.run(asyncio.Event()), timeout=20)
    finally:
        await daemon.close()
    assert events == ["started", "ended"]


def tick(second: int) -> TickResult:
    return TickResult(datetime(2026, 1, 1, 8, 0, second), 1, 1, 0, 5, 0.1, 0, 0, 0.0)


async def test_latest_tick_hands_the_newest_result_to_a_slower_loop() -> None:
    latest = LatestTick()
    latest.put(tick(0))
    latest.put(tick(30 % 60))
    assert (await latest.get()).tick_time.second == 30
    assert latest.skipped == 1
    waiting = asyncio.ensure_future(latest.get())
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing newer than what it got
    latest.put(tick(59))
    assert (await waiting).tick_time.second == 59


async def test_the_connection_pool_is_as_wide_as_the_concurrency(
    simulator: Simulator, sqlite_url: str
) -> None:
    # aiohttp's default pool holds 100 connections: a max_concurrency above it did nothing
    settings = settings_for(simulator, sqlite_url)
    settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"max_concurrency": 250})}
    )
    async with Daemon(settings) as daemon:
        session = daemon._session
        assert session is not None and session.connector is not None
        assert session.connector.limit == 250
        assert session.connector.limit_per_host == 0  # every request goes to one host


@pytest.mark.parametrize(
    ("rollups", "gap_days", "runs"), [(True, None, True), (False, None, False), (False, 30, True)]
)
async def test_the_rollups_run_beside_the_tick_unless_turned_off(
    simulator: Simulator, sqlite_url: str, rollups: bool, gap_days: int | None, runs: bool
) -> None:
    settings = settings_for(simulator, sqlite_url)
    retention = settings.retention.model_copy(update={"rollups": rollups, "gap_days": gap_days})
    settings = settings.model_copy(update={"retention": retention})
    async with Daemon(settings) as daemon:
        names = [task.get_name() for task in daemon._tasks]
        assert ("charged-rollups" in names) is runs
