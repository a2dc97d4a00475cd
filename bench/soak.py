"""``python -m bench.soak``: a long collector run under random faults; are RSS and fds flat?

The real :class:`Daemon` (client, supervisor, queue, BatchWriter, spool) polls a simulated
fleet for hours of fleet time while the simulator's faults change every few ticks (5xx,
latency past the request timeout, 429 storms, Offline and malformed chargers, tokens dying
early) and the database goes away now and then (a gate in front of MariaDB is shut, then
opened).  The simulator and the gate live in another process (:mod:`bench.soak_env`), so this
process holds the collector alone.  Every tick samples this process's resident memory and
open file descriptors; the end prints a table, a verdict, and whether every queued row
reached the database.  Not part of CI; results are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sqlalchemy import func, select

from bench.database import DEFAULT_SERVER, Server
from bench.measure import rss_mb
from bench.soak_env_process import SoakEnvProcess
from bench.soak_faults import CALM, Episode, draw
from charged.collector.supervisor import TickResult
from charged.config import Settings, settings_from_mapping
from charged.daemon.service import Daemon
from charged.log import configure_logging
from charged.metrics import Metrics
from charged.simulator import Account
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.schema import metadata

SOAK_DATABASE = "charged_soak"
FLAT_TOLERANCE = 0.10  # last quarter's mean within 10 % of the second quarter's
KEYED_TABLES = ("connector_status", "measurement", "poll_cycle", "poll_gap")
CATCH_UP_TIMEOUT = 300.0


@dataclass(frozen=True)
class Sample:
    tick: int
    fleet_min: float  # fleet minutes since the start
    episode: str
    db_up: bool
    ok: int
    failed: int
    rows: int
    duration: float
    rss_mb: float
    fds: int
    queue: int
    spool_kb: float


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def metric(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def metric_sum(metrics: Metrics, name: str) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    )


def settings_for(args: argparse.Namespace, base_url: str, db_url: str, spool: str) -> Settings:
    account = Account()
    return settings_from_mapping(
        {
            "api": {
                "base_url": base_url,
                "email": account.email,
                "password": account.password,
                "api_key": account.api_key,
                "request_timeout": args.request_timeout,
                "max_attempts": 3,
                "max_concurrency": args.concurrency,
                "max_requests_per_second": None,
            },
            "collector": {"interval": args.interval},
            "database": {"url": db_url, "migrate_on_start": args.db == "sqlite"},
            "writer": {"flush_interval": 0.5, "retry_backoff_max": 4.0},
            "spool": {"directory": spool},
            "ops": {"enabled": False},
        },
        source="<soak>",
        environ={},  # nothing from this shell (CHARGED_DATABASE_URL…) changes the run
    )


class Weather:
    """Draws a new fault episode every few ticks and shuts the database gate on schedule."""

    def __init__(self, args: argparse.Namespace, env: SoakEnvProcess, ticks: int) -> None:
        self._env = env
        self._rng = random.Random(args.seed)
        self._every = args.fault_every
        self._timeout = args.request_timeout
        self._charge_points: list[str] = list(env.ready["charge_points"])
        outages = args.outages if env.ready.get("db_port") else 0
        self._down_at = {round(ticks * (k + 1) / (outages + 1)) for k in range(outages)}
        self._outage_ticks = args.outage_ticks
        self._up_at: int | None = None
        self.episode = Episode((), dict(CALM))
        self.db_up = True
        self.episodes: dict[str, int] = {}
        self.outages = 0

    async def after_tick(self, tick: int) -> None:
        """Set what the next tick meets."""
        if tick in self._down_at:
            await self._env.send({"db": "down"})
            self.db_up, self._up_at = False, tick + self._outage_ticks
            self.outages += 1
        elif tick == self._up_at:
            await self._env.send({"db": "up"})
            self.db_up, self._up_at = True, None
        if tick % self._every == 0:
            self.episode = draw(self._rng, self._charge_points, self._timeout)
            self.episodes[self.episode.label] = self.episodes.get(self.episode.label, 0) + 1
            await self._env.send(self.episode.command())

    async def calm(self) -> None:
        await self._env.send({"faults": CALM, **({} if self.db_up else {"db": "up"})})
        self.db_up = True


async def wait_caught_up(collector: Daemon) -> float:
    """Seconds until every queued row is in the database and the spool is empty."""
    assert collector.writer is not None
    started = time.monotonic()
    while not (collector.writer.caught_up and collector.queue.empty()):
        if time.monotonic() - started > CATCH_UP_TIMEOUT:
            raise TimeoutError(f"the writer did not catch up within {CATCH_UP_TIMEOUT:g} s")
        await asyncio.sleep(0.2)
    await collector.writer.wait_flushed()
    return time.monotonic() - started


async def count_rows(db_url: str) -> dict[str, int]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return {
                table: int(
                    (
                        await conn.execute(select(func.count()).select_from(metadata.tables[table]))
                    ).scalar_one()
                )
                for table in KEYED_TABLES
            }
    finally:
        await engine.dispose()


async def soak(args: argparse.Namespace, log_stream: TextIO) -> int:
    ticks = math.ceil(args.hours * 3600 / (args.interval * args.speed))
    configure_logging("warning", "json", stream=log_stream)
    work = tempfile.mkdtemp(prefix="charged-soak-")
    server: Server | None = None
    if args.db == "mysql":
        server = Server.from_url(args.mysql_url)
        await server.admin(f"DROP DATABASE IF EXISTS `{SOAK_DATABASE}`")
        await server.admin(f"CREATE DATABASE `{SOAK_DATABASE}`")
        direct_url = server.url(SOAK_DATABASE)
        await upgrade(direct_url)
    else:
        direct_url = f"sqlite+aiosqlite:///{work}/soak.db"
    env = SoakEnvProcess()
    print(
        f"soak: {args.chargers} chargers, {args.hours:g} h of fleet time in {ticks} ticks of "
        f"{args.interval:g} s (fleet speed {args.speed:g}x, {args.interval * args.speed:g} fleet "
        f"s per tick), {args.db}, faults every {args.fault_every} ticks, log {log_stream.name}",
        flush=True,
    )
    try:
        ready = await env.start(
            chargers=args.chargers,
            speed=args.speed,
            seed=args.seed,
            db_host=server.host if server else "127.0.0.1",
            db_port=server.port if server else 0,
        )
        db_url = direct_url
        if server is not None:
            db_url = direct_url.replace(f":{server.port}/", f":{ready['db_port']}/")
        settings = settings_for(args, ready["base_url"], db_url, f"{work}/spool")
        return await run_collector(args, settings, env, ticks, direct_url)
    finally:
        final = await env.stop()
        if final:
            print(
                f"environment process: {final['requests']} API requests served, "
                f"{final['logins']} logins, {final['db_connections']} database connections "
                f"through the gate, CPU {final['cpu_s']} s, RSS {final['rss_mb']} MiB"
            )
        if server is not None and not args.keep:
            await server.admin(f"DROP DATABASE IF EXISTS `{SOAK_DATABASE}`")
        shutil.rmtree(work, ignore_errors=True)


async def run_collector(
    args: argparse.Namespace,
    settings: Settings,
    env: SoakEnvProcess,
    ticks: int,
    direct_url: str,
) -> int:
    weather = Weather(args, env, ticks)
    samples: list[Sample] = []
    snapshots: list[tracemalloc.Snapshot] = []
    stop = asyncio.Event()
    began = time.monotonic()
    if args.tracemalloc:
        tracemalloc.start(8)
    collector: Daemon

    async def on_tick(result: TickResult) -> None:
        n = len(samples) + 1
        samples.append(
            Sample(
                tick=n,
                fleet_min=(time.monotonic() - began) * args.speed / 60,
                episode=weather.episode.label,
                db_up=weather.db_up,
                ok=result.ok,
                failed=result.failed,
                rows=result.rows,
                duration=result.duration,
                rss_mb=rss_mb(),
                fds=open_fds(),
                queue=collector.queue.qsize(),
                spool_kb=metric(collector.metrics, "charged_spool_bytes") / 1024,
            )
        )
        if n % max(1, ticks // 24) == 0 or n == 1:
            print(row(samples[-1]), flush=True)
        if args.tracemalloc and n in (ticks // 4, ticks):
            snapshots.append(tracemalloc.take_snapshot())
        if n >= ticks:
            stop.set()
            return
        await weather.after_tick(n)

    collector = Daemon(settings, on_tick=on_tick)
    print(header(), flush=True)
    try:
        await collector.start()
        await collector.run(stop)
        await weather.calm()
        catch_up = await wait_caught_up(collector)
    finally:
        await collector.close()
    wall = time.monotonic() - began
    stored = await count_rows(direct_url)
    if len(snapshots) == 2:
        print_growth(*snapshots)
    return report(args, samples, collector.metrics, weather, catch_up, wall, stored)


def print_growth(first: tracemalloc.Snapshot, last: tracemalloc.Snapshot) -> None:
    """Where Python memory grew between the end of Q1 and the last tick (--tracemalloc)."""
    print("\ntracemalloc: largest growth from the end of Q1 to the last tick")
    for stat in last.compare_to(first, "traceback")[:8]:
        frames = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback[:4])
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {frames}")


def header() -> str:
    return (
        f"{'tick':>5} {'fleet':>6} {'faults':<18} {'db':<4} {'ok':>5} {'fail':>5} {'rows':>6} "
        f"{'tick s':>6} {'RSS MiB':>8} {'fds':>5} {'queue':>5} {'spool KiB':>9}"
    )


def row(s: Sample) -> str:
    fleet = f"{int(s.fleet_min // 60)}:{int(s.fleet_min % 60):02d}"
    return (
        f"{s.tick:>5} {fleet:>6} {s.episode[:18]:<18} {'up' if s.db_up else 'DOWN':<4} "
        f"{s.ok:>5} {s.failed:>5} {s.rows:>6} {s.duration:>6.2f} {s.rss_mb:>8.1f} {s.fds:>5} "
        f"{s.queue:>5} {s.spool_kb:>9.0f}"
    )


def quarters(samples: list[Sample]) -> list[list[Sample]]:
    size = len(samples) / 4
    return [samples[round(q * size) : round((q + 1) * size)] for q in range(4)]


def report(
    args: argparse.Namespace,
    samples: list[Sample],
    metrics: Metrics,
    weather: Weather,
    catch_up: float,
    wall: float,
    stored: dict[str, int],
) -> int:
    print()
    print(
        f"{'quarter':<8} {'ticks':>5} {'RSS mean':>8} {'RSS max':>8} {'fds mean':>8} "
        f"{'fds max':>7} {'ok %':>6} {'gaps':>6} {'tick s mean':>11}"
    )
    parts = quarters(samples)
    for q, part in enumerate(parts, start=1):
        asked = sum(s.ok + s.failed for s in part) or 1
        print(
            f"Q{q:<7} {len(part):>5} {statistics.fmean(s.rss_mb for s in part):>8.1f} "
            f"{max(s.rss_mb for s in part):>8.1f} {statistics.fmean(s.fds for s in part):>8.1f} "
            f"{max(s.fds for s in part):>7} {100 * sum(s.ok for s in part) / asked:>6.1f} "
            f"{sum(s.failed for s in part):>6} "
            f"{statistics.fmean(s.duration for s in part):>11.2f}"
        )
    rss2 = statistics.fmean(s.rss_mb for s in parts[1])
    rss4 = statistics.fmean(s.rss_mb for s in parts[3])
    fds2 = statistics.fmean(s.fds for s in parts[1])
    fds4 = statistics.fmean(s.fds for s in parts[3])
    rss_flat = rss4 <= rss2 * (1 + FLAT_TOLERANCE)
    fds_flat = fds4 <= fds2 * (1 + FLAT_TOLERANCE) and max(s.fds for s in parts[3]) <= max(
        s.fds for s in samples[: len(samples) // 2]
    ) * (1 + FLAT_TOLERANCE)

    queued = {t: int(metric(metrics, "charged_rows_queued_total", table=t)) for t in KEYED_TABLES}
    # every tick's rows have their own natural key: each queued row is one stored row
    nothing_lost = stored == queued
    print()
    print(
        f"wall time {wall / 60:.1f} min, episodes {dict(sorted(weather.episodes.items()))}, "
        f"database outages {weather.outages} x {args.outage_ticks} ticks"
    )
    print(
        f"API requests {metric_sum(metrics, 'charged_api_requests_total'):.0f} "
        f"(401: {metric_sum_status(metrics, '401'):.0f}, "
        f"429: {metric_sum_status(metrics, '429'):.0f}, "
        f"5xx: {sum(metric_sum_status(metrics, s) for s in ('500', '502', '503')):.0f}, "
        f"timeouts: {metric_sum_status(metrics, 'timeout'):.0f}), "
        f"retries {metric_sum(metrics, 'charged_api_retries_total'):.0f}, "
        f"token refreshes ok {metric(metrics, 'charged_token_refreshes_total', result='ok'):.0f}, "
        f"logins {metric(metrics, 'charged_token_logins_total'):.0f}, "
        f"payload errors {metric_sum(metrics, 'charged_payload_errors_total'):.0f}"
    )
    print(
        f"rows written {metric_sum(metrics, 'charged_rows_written_total'):.0f}, "
        f"spooled {metric_sum(metrics, 'charged_rows_spooled_total'):.0f}, "
        f"dropped {metric_sum(metrics, 'charged_rows_dropped_total'):.0f}, "
        f"failed DB writes {metric(metrics, 'charged_db_errors_total'):.0f}; "
        f"caught up {catch_up:.1f} s after the last tick"
    )
    print(f"rows queued by table {queued}")
    print(f"rows in the database {stored} -> {'nothing lost' if nothing_lost else 'MISMATCH'}")
    print(
        f"RSS: Q2 mean {rss2:.1f} MiB, Q4 mean {rss4:.1f} MiB ({100 * (rss4 / rss2 - 1):+.1f} %) "
        f"-> {'flat' if rss_flat else 'GROWING'}"
    )
    print(
        f"fds: Q2 mean {fds2:.1f}, Q4 mean {fds4:.1f} ({100 * (fds4 / fds2 - 1):+.1f} %) "
        f"-> {'flat' if fds_flat else 'GROWING'}"
    )
    return 0 if rss_flat and fds_flat and nothing_lost else 1


def metric_sum_status(metrics: Metrics, status: str) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "charged_api_requests_total" and sample.labels.get("status") == status
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--chargers", type=int, default=1000)
    p.add_argument("--hours", type=float, default=2.0, help="fleet hours to run (default 2)")
    p.add_argument("--interval", type=float, default=3.0, help="collector.interval, real s")
    p.add_argument("--speed", type=float, default=10.0, help="fleet seconds per real second")
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--request-timeout", type=float, default=1.0)
    p.add_argument("--fault-every", type=int, default=5, help="ticks per fault episode")
    p.add_argument("--outages", type=int, default=2, help="database outages (MariaDB only)")
    p.add_argument("--outage-ticks", type=int, default=8)
    p.add_argument("--db", choices=("mysql", "sqlite"), default="mysql")
    p.add_argument("--mysql-url", default=DEFAULT_SERVER)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log", help="collector log (JSON lines, warnings up; default: a temp file)")
    p.add_argument(
        "--tracemalloc", action="store_true", help="show where Python memory grew (slower)"
    )
    p.add_argument("--keep", action="store_true", help=f"keep the `{SOAK_DATABASE}` database")
    return p


def main() -> None:
    args = _parser().parse_args()
    log_path = Path(args.log or Path(tempfile.gettempdir()) / f"charged-soak-{os.getpid()}.log")
    with log_path.open("a", encoding="utf-8") as log_stream:
        code = asyncio.run(soak(args, log_stream))
    sys.exit(code)


if __name__ == "__main__":
    main()
