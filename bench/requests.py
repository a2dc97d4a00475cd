"""Requests per tick: one status request per charger vs one organisation call.

``python -m bench.requests [--chargers 30 1000 10000] [--ticks 5] [--latency 0.1]``

For each fleet size, the same simulated fleet (one process, 127.0.0.1) is polled by the real
collector twice: once without ``api.organisation_id`` (a status request per charger) and once
with it (``GET /organisations/{id}/chargepoints/statuses``).  Per tick it records the
requests the collector sent (its own ``charged_api_requests_total``, auth excluded), what
the simulator answered by kind, how long the tick took to fetch, and how many chargers were
stored ok.  The first tick also reads the owned list (discovery): it is shown on its own.
Rows go to a throw-away SQLite file; the session tracker is off (its reads are not polls).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from charged.config import settings_from_mapping
from charged.daemon.service import Daemon
from charged.log import configure_logging
from charged.simulator import Faults, Simulator, SimulatorConfig


@dataclass(frozen=True)
class Run:
    chargers: int
    mode: str  # "per charger" | "organisation"
    first_tick_requests: int
    requests_per_tick: float  # median over the ticks after the first
    status_calls: float  # median: what the simulator answered, one charger each
    organisation_calls: float
    fetch_s: float  # median time to fetch a tick's statuses
    ok: float  # median chargers stored ok


def _polls(collector: Daemon) -> int:
    total = 0
    for metric in collector.metrics.api_requests.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and "/auth/" not in sample.labels["endpoint"]:
                total += int(sample.value)
    return total


async def measure(chargers: int, *, organisation: bool, ticks: int, latency: float) -> Run:
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    sim = Simulator(
        SimulatorConfig(
            chargers=chargers, seed=1, faults=Faults(latency=latency), start_time=noon.timestamp()
        )
    )
    await sim.start("127.0.0.1", 0)
    work = Path(tempfile.mkdtemp(prefix="charged-bench-requests-"))
    api: dict[str, object] = {
        "base_url": sim.base_url,
        "email": sim.account.email,
        "password": sim.account.password,
        "api_key": sim.account.api_key,
        "max_concurrency": 100,
        "max_requests_per_second": None,
    }
    if organisation:
        api["organisation_id"] = sim.config.organisation_id
    settings = settings_from_mapping(
        {
            "api": api,
            "collector": {"interval": 30},
            "database": {"url": f"sqlite+aiosqlite:///{work / 'bench.db'}"},
            "spool": {"directory": str(work / "spool")},
            "ops": {"enabled": False},
            "sessions": {"enabled": False},
        },
        source="<bench>",
        environ={},
    )
    per_tick: list[tuple[int, int, int, float, int]] = []
    try:
        async with Daemon(settings) as collector:
            assert collector.supervisor is not None and collector.writer is not None
            for _ in range(ticks):
                sent, answered = _polls(collector), dict(sim.request_counts)
                result = await collector.supervisor.tick()
                await collector.writer.wait_flushed()
                per_tick.append(
                    (
                        _polls(collector) - sent,
                        sim.request_counts["status"] - answered.get("status", 0),
                        sim.request_counts["organisation"] - answered.get("organisation", 0),
                        result.duration,
                        result.ok,
                    )
                )
    finally:
        await sim.stop()
        shutil.rmtree(work, ignore_errors=True)
    steady = per_tick[1:] or per_tick
    return Run(
        chargers=chargers,
        mode="organisation" if organisation else "per charger",
        first_tick_requests=per_tick[0][0],
        requests_per_tick=statistics.median(t[0] for t in steady),
        status_calls=statistics.median(t[1] for t in steady),
        organisation_calls=statistics.median(t[2] for t in steady),
        fetch_s=statistics.median(t[3] for t in steady),
        ok=statistics.median(t[4] for t in steady),
    )


def table(runs: list[Run]) -> str:
    lines = [
        "| chargers | polled | requests, first tick | requests per tick | status calls | "
        "organisation calls | fetch per tick | chargers ok |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        lines.append(
            f"| {r.chargers:,} | {r.mode} | {r.first_tick_requests:,} | "
            f"{r.requests_per_tick:,.0f} | {r.status_calls:,.0f} | {r.organisation_calls:,.0f} | "
            f"{r.fetch_s:.2f} s | {r.ok:,.0f} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[Run]:
    runs: list[Run] = []
    for n in args.chargers:
        for organisation in (False, True):
            runs.append(
                await measure(n, organisation=organisation, ticks=args.ticks, latency=args.latency)
            )
            print(table(runs[-1:]).splitlines()[-1], flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.requests", description=__doc__)
    parser.add_argument("--chargers", type=int, nargs="+", default=[30, 1000, 10000])
    parser.add_argument("--ticks", type=int, default=5, help="ticks per run (default: 5)")
    parser.add_argument(
        "--latency", type=float, default=0.1, help="seconds per request (default: 0.1)"
    )
    args = parser.parse_args()
    if any(n < 1 for n in args.chargers) or args.ticks < 2 or args.latency < 0:
        parser.error("give chargers ≥ 1, ticks ≥ 2 and a latency ≥ 0")
    configure_logging(level="warning", fmt="console")
    runs = asyncio.run(main_async(args))
    print()
    print(table(runs))


if __name__ == "__main__":
    main()
