"""One collector run, measured tick by tick: the real :class:`Daemon` (client, supervisor,
queue, BatchWriter) against a running simulator and the benchmark database.

Like ``charged demo``, the tick callback asks the writer to flush now (``wait_flushed``) and
waits for it, so "committed" is measured, not guessed: a tick's commit time runs from the
start of the tick to the moment its last row (the ``poll_cycle`` row) is committed.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client import Counter

from bench.measure import cpu_seconds, peak_rss_mb, rss_mb
from charged.chargeamps.endpoints import CONNECTOR_SESSIONS, SESSIONS
from charged.clock import Clock
from charged.collector.supervisor import TickResult
from charged.config import settings_from_mapping
from charged.daemon.service import Daemon
from charged.simulator import Account


@dataclass
class TickFigures:
    tick: int
    fetch_s: float  # tick start → every status fetched, parsed and queued
    commit_s: float  # tick start → last row of the tick committed
    requests: int  # the tick's own: the owned list, statuses, auth
    session_requests: int  # the session tracker's chargingsessions reads in the same window
    rows: int
    cpu_s: float  # CPU of this process since the previous tick was committed
    rss_mb: float
    ok: int
    failed: int


def counter_total(counter: Counter, keep: Callable[[dict[str, str]], bool] | None = None) -> float:
    """The sum of a counter's samples, or of those whose labels ``keep`` accepts."""
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and (keep is None or keep(sample.labels))
    )


def is_session_read(labels: dict[str, str]) -> bool:
    # The SessionTracker runs beside the ticks on its own schedule; its reads land in
    # whichever tick's window they happen to fall, so they are counted apart.
    return labels.get("endpoint") in (SESSIONS, CONNECTOR_SESSIONS)


def api_requests(collector: Daemon) -> tuple[float, float]:
    """(requests of the ticks, chargingsessions reads of the tracker) so far."""
    counter = collector.metrics.api_requests
    sessions = counter_total(counter, is_session_read)
    return counter_total(counter) - sessions, sessions


async def run_collector(
    *,
    base_url: str,
    db_url: str,
    ticks: int,
    interval: float,
    concurrency: int,
    batch_size: int = 5000,
    flush_interval: float = 1.0,
    clock: Clock | None = None,
) -> dict[str, Any]:
    account = Account()
    spool_dir = tempfile.mkdtemp(prefix="charged-bench-spool-")
    settings = settings_from_mapping(
        {
            "api": {
                "base_url": base_url,
                "email": account.email,
                "password": account.password,
                "api_key": account.api_key,
                "max_concurrency": concurrency,
                "max_requests_per_second": None,
            },
            "collector": {"interval": interval},
            "database": {"url": db_url, "migrate_on_start": False},
            "writer": {"batch_size": batch_size, "flush_interval": flush_interval},
            "spool": {"directory": spool_dir},
            "ops": {"enabled": False},
        },
        source="<bench>",
        environ={},  # nothing from this shell (CHARGED_DATABASE_URL…) changes the run
    )
    stop = asyncio.Event()
    figures: list[TickFigures] = []
    last = {"cpu": cpu_seconds(), "requests": 0.0, "session_requests": 0.0, "rows": 0}
    collector: Daemon

    async def on_tick(result: TickResult) -> None:
        queued_at = time.monotonic()
        assert collector.writer is not None
        await collector.writer.wait_flushed()
        committed_at = time.monotonic()
        started = queued_at - result.duration
        requests, session_requests = api_requests(collector)
        rows = sum(collector.writer.rows_written.values())
        cpu = cpu_seconds()
        figures.append(
            TickFigures(
                tick=len(figures) + 1,
                fetch_s=result.duration,
                commit_s=committed_at - started,
                requests=int(requests - last["requests"]),
                session_requests=int(session_requests - last["session_requests"]),
                rows=rows - int(last["rows"]),
                cpu_s=cpu - last["cpu"],
                rss_mb=rss_mb(),
                ok=result.ok,
                failed=result.failed,
            )
        )
        last.update(cpu=cpu, requests=requests, session_requests=session_requests, rows=rows)
        if len(figures) >= ticks:
            stop.set()

    collector = Daemon(settings, clock=clock, on_tick=on_tick)
    try:
        await collector.start()
        requests, session_requests = api_requests(collector)
        last.update(cpu=cpu_seconds(), requests=requests, session_requests=session_requests)
        await collector.run(stop)
    finally:
        await collector.close()
        shutil.rmtree(spool_dir, ignore_errors=True)
    return {
        "ticks": [asdict(f) for f in figures],
        "peak_rss_mb": peak_rss_mb(),
        "interval": interval,
        "concurrency": concurrency,
    }
