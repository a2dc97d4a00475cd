"""`charged demo`: the simulator, the collector and an SQLite file, in one process.

No config file and no vendor account: the simulator runs in-process on a free 127.0.0.1 port
with its fleet clock ahead of real time, and the collector polls it exactly as it would poll
the vendor cloud.  One line per tick tells what happened; the end tells where the data is.

The session tracker keeps the demo's pace, not the service's: `charged run` folds new polls
into charging_session every 5 minutes, which in a demo that compresses an hour into a minute
would be once at the start, before any row exists.  Here it folds them in every few ticks,
reconciles with the simulated vendor's chargingsessions a little less often, and does both
once more after the last tick, so the database has its sessions when the demo ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shlex
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.collector.supervisor import TickResult
from charged.config import settings_from_mapping
from charged.daemon.service import Daemon
from charged.sessions.tracker import SessionTracker
from charged.simulator import Account, Simulator, SimulatorConfig
from charged.simulator.fleet_clock import FleetClock
from charged.storage.schema import charging_session
from charged.tasks import cancel_and_wait

# The session tracker folds new polls in every this many ticks, and reconciles with the
# vendor's chargingsessions every this many (one request per charger each time).
SESSION_UPDATE_TICKS = 3
SESSION_RECONCILE_TICKS = 12

# what SQLite keeps beside a database file (WAL mode, or a rollback journal)
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

AfterTick = Callable[[TickResult, Daemon], Awaitable[None]]


@dataclass(frozen=True)
class DemoOptions:
    db: Path = Path("charged-demo.db")
    chargers: int = 30
    interval: float = 5.0
    duration: float | None = None  # seconds; None: until Ctrl-C
    speed: float = 60.0  # fleet seconds per real second: one real minute is a fleet hour
    seed: int = 1
    start_hour: float = 7.0  # fleet clock starts at this UTC hour: the morning rush
    day: date | None = None  # the fleet's day (UTC); None: today
    # how the reader runs charged, for the commands printed at the end: `charged` when it is
    # on PATH, `python3 dev.py` from the quick start (dev.py says so in CHARGED_COMMAND)
    command: str = "charged"


@dataclass
class DemoSummary:
    ticks: int = 0
    chargers_ok_every_tick: bool = True
    rows_stored: int = 0
    sessions: int = 0  # charging_session rows when the demo ended
    reconciled: int = 0  # … of which the vendor's chargingsessions confirmed
    day: date | None = None  # the fleet's day


async def run_demo(
    options: DemoOptions,
    *,
    out: TextIO | None = None,
    stop: asyncio.Event | None = None,
    after_tick: AfterTick | None = None,
) -> DemoSummary:
    """Run the demo until ``stop`` or ``options.duration``.  ``after_tick`` is awaited after
    each tick's line (its rows are committed), with the collector: e.g. to change a setting
    through the control operations at a chosen fleet time."""
    stream = out if out is not None else sys.stdout
    stop = stop or asyncio.Event()
    day = options.day or datetime.now(UTC).date()
    summary = DemoSummary(day=day)
    account = Account()
    start_time = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    start_time += options.start_hour * 3600
    # one time line for the fleet and the rows: poll times are fleet times (see FleetClock)
    clock = FleetClock(start_time, options.speed)
    simulator = Simulator(
        SimulatorConfig(
            chargers=options.chargers,
            seed=options.seed,
            speed=options.speed,
            account=account,
            start_time=start_time,
        ),
        clock=clock,
    )
    await simulator.start("127.0.0.1", 0)
    db_path = options.db.resolve()
    spool_dir = tempfile.mkdtemp(prefix="charged-demo-spool-")
    settings = settings_from_mapping(
        {
            "api": {
                "base_url": simulator.base_url,
                "email": account.email,
                "password": account.password,
                "api_key": account.api_key,
                "max_concurrency": 50,
                "max_requests_per_second": None,
            },
            "collector": {"interval": options.interval},
            "database": {"url": f"sqlite+aiosqlite:///{db_path}"},
            "writer": {"flush_interval": 0.5},
            # the demo's spool lives and dies with the run; no ops server to collide on a port
            "spool": {"directory": spool_dir},
            "ops": {"enabled": False},
            # the demo runs its own tracker, at the demo's pace (see the module's docstring)
            "sessions": {"enabled": False},
        },
        source="demo",
    )
    print(
        f"charged demo: simulator with {options.chargers} chargers at {simulator.base_url} "
        f"(fleet clock ×{options.speed:g} from {day:%Y-%m-%d} "
        f"{_clock_time(options.start_hour)} UTC), polling every {options.interval:g} s, "
        f"storing in {db_path}",
        file=stream,
        flush=True,
    )
    earlier = _set_aside_earlier_demo(db_path)
    if earlier:
        print(earlier, file=stream, flush=True)
    print(
        "Ctrl-C stops."
        if options.duration is None
        else f"Stops after {options.duration:g} s (Ctrl-C stops earlier).",
        file=stream,
        flush=True,
    )
    print(
        "Each line: the tick's time on the fleet's clock (UTC, what the rows carry), chargers "
        "that answered, connectors charging and their power, rows the tick stored (and all "
        "the demo stored), charging sessions in the database.",
        file=stream,
        flush=True,
    )

    collector: Daemon

    async def on_tick(result: TickResult) -> None:
        # Wait for this tick's rows to be committed, so "stored" is true when printed.
        assert collector.writer is not None and collector.engine is not None
        await collector.writer.wait_flushed()
        stored = sum(collector.writer.rows_written.values())
        # every row the tick wrote: its connector and phase rows, the charger rows and the
        # poll_cycle row (the supervisor's result.rows counts only the first two)
        written = stored - summary.rows_stored
        summary.ticks += 1
        summary.rows_stored = stored
        if result.ok != options.chargers:
            summary.chargers_ok_every_tick = False
        sessions, reconciled = await session_counts(collector.engine)
        print(
            f"{result.tick_time:%H:%M:%S} fleet time  "
            f"chargers {result.ok}/{result.asked} ok"
            + (f" ({result.failed} failed)" if result.failed else "")
            + f"  charging {result.charging:2d} connectors  {result.power_kw:6.1f} kW  "
            f"rows {written:4d} (total {stored})  "
            f"sessions {sessions} ({reconciled} reconciled)",
            file=stream,
            flush=True,
        )
        if after_tick is not None:
            await after_tick(result, collector)

    collector = Daemon(settings, on_tick=on_tick, clock=clock)
    timer: asyncio.TimerHandle | None = None
    tracker: SessionTracker | None = None
    tracker_stop = asyncio.Event()
    tracker_task: asyncio.Task[None] | None = None
    try:
        await collector.start()
        assert collector.engine is not None and collector.client is not None
        tracker = SessionTracker(
            collector.engine,
            collector.client,
            clock=clock,
            metrics=collector.metrics,
            # rows carry fleet time: polls are interval × speed fleet seconds apart
            interval=options.interval * options.speed,
            update_every=SESSION_UPDATE_TICKS * options.interval,
            reconcile_every=SESSION_RECONCILE_TICKS * options.interval,
        )
        tracker_task = asyncio.create_task(tracker.run(tracker_stop), name="demo-sessions")
        if options.duration is not None:
            timer = asyncio.get_running_loop().call_later(options.duration, stop.set)
        await collector.run(stop)
        tracker_stop.set()
        await tracker_task  # the pass in flight finishes
        await _last_session_pass(collector, tracker, stream)
    finally:
        if timer is not None:
            timer.cancel()
        if tracker_task is not None and not tracker_task.done():
            await cancel_and_wait(tracker_task)  # left early (an error, a second Ctrl-C)
        if collector.engine is not None:
            with contextlib.suppress(Exception):  # what is stored, if the database answers
                summary.sessions, summary.reconciled = await session_counts(collector.engine)
        await collector.close()
        if collector.writer is not None:
            summary.rows_stored = sum(collector.writer.rows_written.values())
        await simulator.stop()
        shutil.rmtree(spool_dir, ignore_errors=True)
    _print_epilogue(stream, options, summary)
    return summary


def _set_aside_earlier_demo(db_path: Path) -> str | None:
    """Move a file that holds an earlier demo's rows aside; a line saying where, or None.

    A demo does not add to an earlier one: the simulator numbers its sessions from 1 on
    every start, so a second demo's sessions share the natural keys of the first's, and a
    replay of the same day (same seed) reconciles the earlier demo's finished sessions with
    the vendor's state of the morning, taking their energy back.  The earlier file is kept,
    renamed, never deleted: it may be something the reader wants."""
    if not db_path.exists() or db_path.stat().st_size == 0:
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
            first, last, ticks = db.execute(
                "SELECT min(tick_time), max(tick_time), count(*) FROM poll_cycle"
            ).fetchone()
    except sqlite3.Error:
        return None  # no demo's database (yet): the collector says what is wrong with it
    if not ticks:
        return None
    aside = _free_name(db_path)
    db_path.rename(aside)
    for suffix in SQLITE_SIDE_FILES:  # a WAL the earlier demo left goes with its database
        side = db_path.with_name(db_path.name + suffix)
        if side.exists():
            side.rename(aside.with_name(aside.name + suffix))
    return (
        f"note: {db_path.name} held {ticks} ticks of an earlier demo "
        f"({str(first)[:16]} to {str(last)[:16]} UTC); moved to {aside.name}, and this demo "
        "starts a fresh file (a demo does not add to an earlier one: their sessions would mix)."
    )


def _free_name(db_path: Path) -> Path:
    """charged-demo.previous.db, or …previous-2.db and so on when that is taken."""
    for n in itertools.count(1):
        label = "previous" if n == 1 else f"previous-{n}"
        candidate = db_path.with_name(f"{db_path.stem}.{label}{db_path.suffix}")
        if not candidate.exists():
            return candidate
    raise AssertionError("unreachable")


async def session_counts(engine: AsyncEngine) -> tuple[int, int]:
    """charging_session rows, and how many of them the vendor's sessions confirmed."""
    cs = charging_session
    async with engine.connect() as conn:
        row = (await conn.execute(select(func.count(), func.count(cs.c.reconciled_at)))).one()
    return int(row[0]), int(row[1])


async def _last_session_pass(collector: Daemon, tracker: SessionTracker, out: TextIO) -> None:
    """After the last tick: fold in its rows and ask the vendor once more."""
    assert collector.writer is not None
    await collector.writer.wait_flushed()
    try:
        await tracker.update()
        await tracker.reconcile()
    except Exception as exc:  # the rows are stored; `charged sessions` can fold them in later
        print(
            f"sessions not brought up to date at the end ({type(exc).__name__}: "
            f"{str(exc)[:200]}); `charged sessions --db …` folds the polls in",
            file=out,
            flush=True,
        )


def _clock_time(hour: float) -> str:
    minutes = round(hour * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _print_epilogue(stream: TextIO, options: DemoOptions, summary: DemoSummary) -> None:
    """What was stored, and commands that work as printed from where the demo was run."""
    db_path = options.db.resolve()
    # the path as given when it is relative to here (the default charged-demo.db), else whole
    shown = options.db if not options.db.is_absolute() else db_path
    db = shlex.quote(str(shown))
    charged = options.command
    print(
        f"\nDone: {summary.ticks} ticks, {summary.rows_stored} rows stored in {db_path}, "
        f"{summary.sessions} charging sessions ({summary.reconciled} reconciled with the "
        "vendor's)\n"
        "Look at it, e.g.:\n"
        f"  {charged} sessions --db {db}\n"
        f"  {charged} sessions --db {db} --by tag --month {_month(summary)}\n"
        f"  {charged} export connector_status --db {db} -o connector_status.csv\n"
        f'  sqlite3 {db} "SELECT * FROM poll_cycle ORDER BY tick_time DESC LIMIT 10"\n'
        '(no sqlite3 command? python3 -c "import sqlite3; '
        f"print(sqlite3.connect({str(shown)!r}).execute('SELECT count(*) FROM measurement')"
        '.fetchone())")',
        file=stream,
        flush=True,
    )


def _month(summary: DemoSummary) -> str:
    return f"{summary.day:%Y-%m}" if summary.day is not None else "YYYY-MM"
