"""The collector's CPU per charger, next to a bare aiohttp loop doing the same requests.

``python -m bench.collector_cpu [--chargers 1000] [--ticks 8] [--interval 5] [--repeats 2]``

Both run in a process of their own against one simulator process (``--latency`` per
request, 100 ms by default) and the same number of requests in flight:

- **collector**: the real ``Daemon`` as ``python -m bench collector`` runs it (client,
  supervisor, queue, BatchWriter into MariaDB, session tracker, rollups); per tick the CPU of
  its process since the previous tick was committed (the whole interval, idle included).
- **bare loop**: one ``aiohttp.ClientSession`` (pool as wide as the concurrency), a
  semaphore, per tick ``get`` of every charger's status with the bearer header, ``read()``
  and ``json.loads``: the requests and nothing else (no model, no rows, no database); per
  tick the CPU of its process since the previous tick ended.  It logs in and lists the
  chargers once before the first tick, outside the measurement.

The first tick of each is left out (the collector lists the chargers then).  Runs alternate
(collector, bare, collector, bare …); each figure is the median CPU per charger and tick over
a run's ticks, and the ratio is each collector run's to the bare run of its alternation.

``--before DIR``: a source tree of another commit (``git archive COMMIT | tar -x -C DIR``);
each alternation then runs that tree's collector too, first (before, this tree's, bare), so
the two commits are compared in one run against the same bare loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import aiohttp

from bench.database import DEFAULT_SERVER, Server
from bench.machine import describe, mariadb_version
from bench.measure import cpu_seconds
from bench.simproc import simulator_process

TARGET = 1.3  # issue 18: the collector at most 1.3× the bare loop's CPU per charger


async def run_bare(
    *, base_url: str, ticks: int, interval: float, concurrency: int
) -> dict[str, Any]:
    """The bare loop, in this (fresh) process → CPU seconds per tick."""
    from charged.chargeamps.client import ChargeAmpsClient
    from charged.chargeamps.endpoints import STATUS
    from charged.clock import SystemClock
    from charged.simulator.config import Account

    account = Account()
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        client = ChargeAmpsClient(
            http,
            base_url=base_url,
            email=account.email,
            password=account.password,
            api_key=account.api_key,
            clock=SystemClock(),
            max_concurrency=concurrency,
            max_requests_per_second=None,
        )
        await client.login()
        ids = [cp.id for cp in await client.owned_chargepoints()]
        token = await client.tokens.token()
        root = f"{base_url.rstrip('/')}/api/v5"
        headers = {"Accept": "application/json", "Authorization": f"Bearer {token}"}
        timeout = aiohttp.ClientTimeout(total=10)
        gate = asyncio.Semaphore(concurrency)

        async def one(cp: str) -> None:
            async with gate:
                url = root + STATUS.format(id=cp)
                async with http.get(url, headers=headers, timeout=timeout) as response:
                    json.loads(await response.read())

        cpu: list[float] = []
        fetch: list[float] = []
        last = cpu_seconds()
        began = time.monotonic()
        for k in range(ticks):
            tick_start = time.monotonic()
            await asyncio.gather(*(one(cp) for cp in ids))
            now = cpu_seconds()
            fetch.append(time.monotonic() - tick_start)
            cpu.append(now - last)
            last = now
            await asyncio.sleep(max(0.0, began + (k + 1) * interval - time.monotonic()))
    return {"chargers": len(ids), "cpu_s": cpu, "fetch_s": fetch}


def per_charger_ms(cpu_s: list[float], chargers: int) -> float:
    """Median CPU per charger and tick, the first tick left out."""
    return statistics.median(cpu_s[1:]) / chargers * 1000


async def main(args: argparse.Namespace) -> None:
    from bench.__main__ import _in_worker

    server = Server.from_url(args.mysql_url)
    version = await mariadb_version(server.host, server.port, server.user, server.password)
    for line in describe(version):
        print(line)
    print(
        f"{args.chargers} chargers, {args.latency * 1000:.0f} ms per request, concurrency "
        f"{args.concurrency}, {args.ticks} ticks of {args.interval:g} s (first left out), "
        f"{args.repeats} alternations",
        flush=True,
    )
    before = args.before
    if before is not None:
        print(f"before: the collector of {before} (then this tree's, then the bare loop)")
    rows: list[tuple[float | None, float, float]] = []  # (before, collector, bare) ms
    try:
        async with simulator_process(args.chargers, args.latency) as sim:

            async def collector_ms(cwd: str | None) -> float:
                db_url = await server.fresh_database()
                collector = await _in_worker(
                    {
                        "kind": "collector",
                        "base_url": sim.base_url,
                        "db_url": db_url,
                        "ticks": args.ticks,
                        "interval": args.interval,
                        "concurrency": args.concurrency,
                        "profile": None,
                    },
                    cwd=cwd,
                )
                return per_charger_ms([t["cpu_s"] for t in collector["ticks"]], args.chargers)

            for n in range(args.repeats):
                before_ms = None if before is None else await collector_ms(before)
                c_ms = await collector_ms(None)
                bare = await _in_worker(
                    {
                        "kind": "bare",
                        "base_url": sim.base_url,
                        "ticks": args.ticks,
                        "interval": args.interval,
                        "concurrency": args.concurrency,
                    }
                )
                b_ms = per_charger_ms(bare["cpu_s"], bare["chargers"])
                rows.append((before_ms, c_ms, b_ms))
                then = (
                    ""
                    if before_ms is None
                    else f"before {before_ms:.3f} ms ({before_ms / b_ms:.2f}×), "
                )
                print(
                    f"  alternation {n + 1}: {then}collector {c_ms:.3f} ms, bare loop "
                    f"{b_ms:.3f} ms CPU per charger and tick: {c_ms / b_ms:.2f}×",
                    flush=True,
                )
    finally:
        await server.drop_database()
    ratios = [c / b for _, c, b in rows]
    median = statistics.median(ratios)
    verdict = "PASS" if median <= TARGET else "MISS"
    if before is not None:
        earlier = [p / b for p, _, b in rows if p is not None]
        print(
            f"before: {statistics.median(p for p, _, _ in rows if p is not None):.3f} ms per "
            f"charger and tick; median ratio {statistics.median(earlier):.2f}× (runs: "
            f"{', '.join(f'{r:.2f}' for r in earlier)})"
        )
    print(
        f"collector {statistics.median(c for _, c, _ in rows):.3f} ms, bare loop "
        f"{statistics.median(b for _, _, b in rows):.3f} ms per charger and tick; median ratio "
        f"{median:.2f}× (runs: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(f"  {verdict}  collector ≤ {TARGET}× the bare loop's CPU per charger: {median:.2f}×")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.collector_cpu", description=__doc__)
    parser.add_argument("--mysql-url", default=DEFAULT_SERVER)
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=8)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds per tick")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2, help="alternations")
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="another commit's source tree: its collector is measured in each alternation too",
    )
    return parser


if __name__ == "__main__":
    asyncio.run(main(_parser().parse_args()))
