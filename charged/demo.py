"""`charged demo`: the simulator, the collector and an SQLite file, in one process.

No config file and no vendor account: the simulator runs in-process on a free 127.0.0.1 port
with its fleet clock ahead of real time, and the collector polls it exactly as it would poll
the vendor cloud.  One line per tick tells what happened; the end tells where the data is.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from charged.collector.service import Collector
from charged.collector.supervisor import TickResult
from charged.config import settings_from_mapping
from charged.simulator import Account, Simulator, SimulatorConfig
from charged.simulator.fleet_clock import FleetClock


@dataclass(frozen=True)
class DemoOptions:
    db: Path = Path("charged-demo.db")
    chargers: int = 30
    interval: float = 5.0
    duration: float | None = None  # seconds; None: until Ctrl-C
    speed: float = 60.0  # fleet seconds per real second: one real minute is a fleet hour
    seed: int = 1
    start_hour: float = 7.0  # fleet clock starts at this UTC hour today: the morning rush


@dataclass
class DemoSummary:
    ticks: int = 0
    chargers_ok_every_tick: bool = True
    rows_stored: int = 0


async def run_demo(
    options: DemoOptions,
    *,
    out: TextIO | None = None,
    stop: asyncio.Event | None = None,
) -> DemoSummary:
    stream = out if out is not None else sys.stdout
    stop = stop or asyncio.Event()
    summary = DemoSummary()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    account = Account()
    start_time = today.timestamp() + options.start_hour * 3600
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
        },
        source="demo",
    )
    print(
        f"charged demo: simulator with {options.chargers} chargers at {simulator.base_url} "
        f"(fleet clock ×{options.speed:g}), polling every {options.interval:g} s, "
        f"storing in {db_path}",
        file=stream,
        flush=True,
    )
    print(
        "Ctrl-C stops."
        if options.duration is None
        else f"Stops after {options.duration:g} s (Ctrl-C stops earlier).",
        file=stream,
        flush=True,
    )

    collector: Collector

    async def on_tick(result: TickResult) -> None:
        # Wait for this tick's rows to be committed, so "stored" is true when printed.
        assert collector.writer is not None
        await collector.writer.wait_flushed()
        stored = sum(collector.writer.rows_written.values())
        summary.ticks += 1
        summary.rows_stored = stored
        if result.ok != options.chargers:
            summary.chargers_ok_every_tick = False
        fleet_time = datetime.fromtimestamp(simulator.fleet.now(), UTC).strftime("%H:%M")
        print(
            f"{result.tick_time:%H:%M:%S}  fleet {fleet_time}  "
            f"chargers {result.ok}/{result.asked} ok"
            + (f" ({result.failed} failed)" if result.failed else "")
            + f"  charging {result.charging:2d} connectors  {result.power_kw:6.1f} kW  "
            f"rows this tick {result.rows:4d}  stored {stored}",
            file=stream,
            flush=True,
        )

    collector = Collector(settings, on_tick=on_tick, clock=clock)
    timer: asyncio.TimerHandle | None = None
    try:
        await collector.start()
        if options.duration is not None:
            timer = asyncio.get_running_loop().call_later(options.duration, stop.set)
        await collector.run(stop)
    finally:
        if timer is not None:
            timer.cancel()
        await collector.close()
        if collector.writer is not None:
            summary.rows_stored = sum(collector.writer.rows_written.values())
        await simulator.stop()
        shutil.rmtree(spool_dir, ignore_errors=True)
    _print_epilogue(stream, db_path, summary)
    return summary


def _print_epilogue(stream: TextIO, db_path: Path, summary: DemoSummary) -> None:
    print(
        f"\nDone: {summary.ticks} ticks, {summary.rows_stored} rows stored in {db_path}\n"
        "Look at it, e.g.:\n"
        f'  sqlite3 {db_path} "SELECT charge_point_id, connector_id, status, '
        "total_consumption_kwh, date_created FROM connector_status "
        'ORDER BY date_created DESC LIMIT 10"\n'
        f'  sqlite3 {db_path} "SELECT * FROM poll_cycle ORDER BY tick_time"\n'
        '(no sqlite3 command? python3 -c "import sqlite3; '
        f"print(sqlite3.connect('{db_path}').execute('SELECT count(*) FROM measurement')"
        '.fetchone())")',
        file=stream,
        flush=True,
    )
