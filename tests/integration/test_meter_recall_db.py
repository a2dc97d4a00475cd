"""A restart learns the building's rises again from meter_reading (SQLite and MariaDB)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from charged.clock import FakeClock
from charged.config import settings_from_mapping
from charged.meters.book import MeterBook, MeterSpec
from charged.meters.configured import install_meters
from charged.meters.recall import recall_headroom
from charged.metrics import Metrics
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.writes import write_rows

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
DAY = 86400.0
SPEC = MeterSpec(
    "main",
    "mqtt",
    max_age_s=60.0,
    fallback=(25.0, 25.0, 25.0),
    headroom=2.0,
    learn_window_s=DAY,
    reaction_s=90.0,
)


def _row(time: float, l1: float, fuse: str = "main") -> dict[str, Any]:
    read_at = datetime.fromtimestamp(time, UTC).replace(tzinfo=None)
    return {"read_at": read_at, "fuse": fuse, "source": "mqtt", "l1_a": l1} | {
        "l2_a": 3.0,
        "l3_a": 3.0,
    }


class Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def info(self, event: str, **kw: Any) -> None:
        self.events.append(event)

    def warning(self, event: str, **kw: Any) -> None:
        self.events.append(event)


async def test_the_days_largest_rise_is_learned_again_before_the_live_readings(
    db_url: str,
) -> None:
    await upgrade(db_url)
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await write_rows(
                conn,
                "meter_reading",
                [
                    _row(T0 - DAY - 3600, 0.0),
                    _row(T0 - DAY - 3570, 40.0),  # +40 A, but longer ago than the window
                    _row(T0 - 3600, 10.0),
                    _row(T0 - 3570, 19.0),  # +9 A within the reaction time: learned again
                    _row(T0 - 3000, 11.0),
                    _row(T0 - 3570, 30.0, fuse="row-a"),  # another meter's
                ],
            )
        book = MeterBook([SPEC], recalling=True)
        book.record("main", T0 - 10.0, (12.0, 3.0, 3.0))  # live, before the recall is done
        log = Log()
        taken = await recall_headroom(engine, book, FakeClock(T0), logger=log)
        assert taken == {"main": 3}
        assert book.headroom("main", T0) == (9.0, 2.0, 2.0)
        assert book.loads(T0) == {"main": (21.0, 5.0, 5.0)}  # 12 A read, 9 A headroom
        assert log.events == ["site meters: rises learned again from stored readings"]
        book.record("main", T0 + 30.0, (30.0, 3.0, 3.0))  # after the recall: learned at once
        assert book.headroom("main", T0 + 30.0) == (18.0, 2.0, 2.0)

        fresh = MeterBook([SPEC])  # without the recall: the floor until a rise is seen
        fresh.record("main", T0 - 10.0, (12.0, 3.0, 3.0))
        assert fresh.headroom("main", T0) == (2.0, 2.0, 2.0)
    finally:
        await engine.dispose()


async def test_a_database_that_cannot_be_read_leaves_the_floor_and_says_so(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/charged.db")
    try:
        book = MeterBook([SPEC], recalling=True)
        log = Log()
        assert await recall_headroom(engine, book, FakeClock(T0), logger=log) == {}
        assert log.events == [
            "site meters: stored readings not read back; the headroom starts at headroom_a"
        ]
        book.record("main", T0, (10.0, 3.0, 3.0))
        book.record("main", T0 + 30.0, (15.0, 3.0, 3.0))
        assert book.headroom("main", T0 + 30.0) == (5.0, 2.0, 2.0)
    finally:
        await engine.dispose()


class Daemon:
    """What install_meters needs of the daemon; the tasks are kept, not started."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.metrics = Metrics()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.engine: AsyncEngine | None = None  # the daemon sets it when it starts
        self.tasks: dict[str, Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = {}

    def add_task(
        self, name: str, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
    ) -> None:
        self.tasks[name] = run


async def test_the_daemon_recalls_once_it_has_its_database(sqlite_url: str) -> None:
    settings = settings_from_mapping(
        {
            "site": {
                "fuse": {"name": "main", "limit": 40, "chargers": ["CP1"]},
                "meters": {
                    "main": {"http_url": "http://127.0.0.1:9/state", "fields": ["a", "b", "c"]}
                },
            },
        },
        require_secrets=False,
    )
    await upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    try:
        async with engine.begin() as conn:
            await write_rows(conn, "meter_reading", [_row(T0 - 600, 10.0), _row(T0 - 570, 16.0)])
        daemon = Daemon(FakeClock(T0))
        book = install_meters(daemon, settings.site, settings.mqtt, reaction_s=90.0)
        assert book is not None
        assert sorted(daemon.tasks) == ["charged-meter-main", "charged-meters-recall"]
        assert book.specs["main"].learn_window_s == DAY  # headroom_learn_h: 24 by default
        daemon.engine = engine
        await daemon.tasks["charged-meters-recall"](asyncio.Event())
        assert book.headroom("main", T0) == (6.0, 2.0, 2.0)
    finally:
        await engine.dispose()


async def test_an_unexpected_failure_of_the_recall_does_not_stop_the_daemon() -> None:
    class Broken:
        def connect(self) -> Any:
            raise RuntimeError("a driver bug")

    book = MeterBook([SPEC], recalling=True)
    log = Log()
    taken = await recall_headroom(Broken(), book, FakeClock(T0), logger=log)  # type: ignore[arg-type]
    assert taken == {}
    assert log.events == [
        "site meters: stored readings not read back; the headroom starts at headroom_a"
    ]
    book.record("main", T0, (10.0, 3.0, 3.0))  # and the book learns from the live readings
    book.record("main", T0 + 30.0, (14.0, 3.0, 3.0))
    assert book.headroom("main", T0 + 30.0) == (4.0, 2.0, 2.0)
