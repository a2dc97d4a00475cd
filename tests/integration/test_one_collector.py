"""Issue 12 item 5: one collector per database, on SQLite and MariaDB.

A second collector on a database is refused at its start with one line; the lock dies with
the process holding it (a killed collector leaves nothing to clean up); a MySQL lock whose
connection is lost is taken again, or, when another collector took it meanwhile, this one is
told to stop.  And a wall clock stepped back is said (a warning, a counter) and the rows the
database skips as duplicates are counted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
from sqlalchemy import text

from charged.clock import FakeClock
from charged.config import Settings, settings_from_mapping
from charged.daemon.service import Daemon
from charged.exits import EXIT_UNAVAILABLE, translate_errors
from charged.metrics import Metrics
from charged.simulator import Simulator, SimulatorConfig
from charged.storage.collector_lock import (
    CollectorAlreadyRunning,
    MysqlCollectorLock,
    collector_lock,
)
from charged.storage.engine import create_engine

REAL_WAIT = 10.0  # real seconds a server or a child process may take to do its part


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimulatorConfig(chargers=2, seed=12, speed=1.0))
    await simulator.start("127.0.0.1", 0)
    try:
        yield simulator
    finally:
        await simulator.stop()


def settings_for(sim: Simulator, db_url: str, spool: Path) -> Settings:
    return settings_from_mapping(
        {
            "api": {
                "base_url": sim.base_url,
                "email": sim.account.email,
                "password": sim.account.password,
                "api_key": sim.account.api_key,
                "max_requests_per_second": None,
            },
            "collector": {"interval": 30},
            "database": {"url": db_url},
            "writer": {"flush_interval": 0.1},
            "spool": {"directory": str(spool)},
            "ops": {"enabled": False},
            "sessions": {"enabled": False},
        },
        source="test",
    )


async def test_a_second_collector_on_the_database_is_refused_with_one_line(
    sim: Simulator, db_url: str, tmp_path: Path
) -> None:
    first = Daemon(settings_for(sim, db_url, tmp_path / "spool-1"), metrics=Metrics())
    second = Daemon(settings_for(sim, db_url, tmp_path / "spool-2"), metrics=Metrics())
    try:
        await first.start()
        logins = sim.request_counts.get("login", 0)
        with pytest.raises(CollectorAlreadyRunning) as refused:
            await second.start()
        message = str(refused.value)
        assert "\n" not in message
        assert message.startswith("another collector is running on this database (")
        assert message.endswith("stop it first, or give this one a database of its own")
        if db_url.startswith("sqlite"):
            assert f"locked by process {os.getpid()}" in message
        else:
            assert "it holds the lock charged.collector.charged_t_" in message
        # refused before it logged in (no token of the ten taken) or opened its spool
        assert sim.request_counts.get("login", 0) == logins
        assert not (tmp_path / "spool-2").exists()
        fatal = translate_errors(refused.value)
        assert fatal is not None and fatal.code == EXIT_UNAVAILABLE
        # the first one goes on as before
        assert first.supervisor is not None
        assert (await first.supervisor.tick()).ok == 2
    finally:
        await second.close()
        await first.close()
    # released at the first's close: a collector may start again
    third = Daemon(settings_for(sim, db_url, tmp_path / "spool-3"), metrics=Metrics())
    try:
        await third.start()
    finally:
        await third.close()


HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from charged.storage.collector_lock import collector_lock
    from charged.storage.engine import create_engine

    async def main():
        lock = collector_lock(create_engine(sys.argv[1]))
        await lock.acquire()
        print("held", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
    """
)


async def test_the_lock_dies_with_the_process_holding_it(db_url: str) -> None:
    """A collector killed with SIGKILL runs no cleanup; the next one starts all the same."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        db_url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    engine = create_engine(db_url)
    lock = collector_lock(engine)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), REAL_WAIT)
        assert line == b"held\n"
        with pytest.raises(CollectorAlreadyRunning):
            await lock.acquire()
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), REAL_WAIT)
        # the server ends a dead client's session as soon as it reads the closed socket
        loop = asyncio.get_running_loop()
        give_up = loop.time() + REAL_WAIT
        while True:
            try:
                await lock.acquire()
                break
            except CollectorAlreadyRunning:
                assert loop.time() < give_up, "the dead holder's lock was never released"
                await asyncio.sleep(0.05)  # polling the server's view, not a time we test
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await lock.release()
        await engine.dispose()


async def _connection_id(lock: MysqlCollectorLock) -> int:
    conn = lock._conn
    assert conn is not None
    return int((await conn.execute(text("SELECT CONNECTION_ID()"))).scalar_one())


async def _kill(engine_url: str, connection_id: int) -> None:
    engine = create_engine(engine_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"KILL {connection_id}"))
    finally:
        await engine.dispose()


async def test_a_mysql_lock_whose_connection_dies_is_taken_again_or_given_up(
    mysql_url: str,
) -> None:
    """The server ended the lock's session (a restart, a KILL, wait_timeout): with nobody
    else there the next check takes the lock again; if another collector took it
    meanwhile, this one hears that it must stop."""
    clock = FakeClock(auto_advance=False)
    lost: list[CollectorAlreadyRunning] = []
    heard = asyncio.Event()

    def on_lost(exc: CollectorAlreadyRunning) -> None:
        lost.append(exc)
        heard.set()

    engine, other_engine = create_engine(mysql_url), create_engine(mysql_url)
    lock = MysqlCollectorLock(engine, clock=clock, on_lost=on_lost, check_interval=60)
    other = MysqlCollectorLock(other_engine, clock=FakeClock(auto_advance=False))
    try:
        await lock.acquire()
        first_id = await _connection_id(lock)
        await _kill(mysql_url, first_id)
        await clock.advance(60)  # the check finds the session gone and takes the lock again
        loop = asyncio.get_running_loop()
        give_up = loop.time() + REAL_WAIT
        while lock._conn is None or await _connection_id(lock) == first_id:
            assert loop.time() < give_up, "the lock was not taken again"
            await asyncio.sleep(0.05)  # the keeper's real I/O to the server
        with pytest.raises(CollectorAlreadyRunning):
            await other.acquire()

        await _kill(mysql_url, await _connection_id(lock))
        await other.acquire()  # another collector starts while this one's lock is gone
        await clock.advance(60)
        await asyncio.wait_for(heard.wait(), REAL_WAIT)
        assert len(lost) == 1 and "another collector is running" in str(lost[0])
        assert not lock.held
    finally:
        await lock.release()
        await other.release()
        await engine.dispose()
        await other_engine.dispose()


async def test_a_wall_clock_stepped_back_is_said_and_duplicates_are_counted(
    sim: Simulator, db_url: str, tmp_path: Path
) -> None:
    """Ticks at a time already stored: one warning, each such tick counted, and every row
    the database skipped counted as a duplicate (before, they vanished without a trace).
    The latest tick stored is read at the start, so a restart after the step sees it too."""
    clock = FakeClock(auto_advance=False)
    settings = settings_for(sim, db_url, tmp_path / "spool")
    metrics = Metrics()

    def sample(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    async with Daemon(settings, clock=clock, metrics=metrics) as collector:
        assert collector.supervisor is not None and collector.writer is not None
        for _ in range(2):
            await collector.supervisor.tick()
            clock.step_wall(30)
        await collector.writer.wait_flushed()
    assert sample("charged_rows_duplicate_total", table="connector_status") == 0

    clock.step_wall(-60)  # back to the first tick's second
    metrics = Metrics()
    with structlog.testing.capture_logs() as logs:
        async with Daemon(settings, clock=clock, metrics=metrics) as collector:
            assert collector.supervisor is not None and collector.writer is not None
            for _ in range(3):  # the first two land on stored seconds, the third is new
                await collector.supervisor.tick()
                clock.step_wall(30)
            await collector.writer.wait_flushed()
    warnings = [e for e in logs if e["event"].startswith("tick time is not after")]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert "wall clock stepped back" in warnings[0]["event"]
    assert [e["event"] for e in logs].count("tick times are after the latest stored again") == 1
    assert sample("charged_ticks_out_of_order_total") == 2
    # 2 chargers x 2 connectors, twice: the connector rows of the two repeated seconds
    assert sample("charged_rows_duplicate_total", table="connector_status") == 2 * 2 * 2
    assert sample("charged_rows_duplicate_total", table="poll_cycle") == 2
