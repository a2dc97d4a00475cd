"""The client's CPU per request, next to a bare aiohttp loop doing the same requests.

``python -m bench.client_overhead [--chargers 200] [--rounds 10] [--repeats 5]``

The simulator runs in a process of its own on 127.0.0.1 and answers at once (no latency),
so what is measured is this process's CPU (``time.process_time``) per status request:

- **bare aiohttp**: one ``ClientSession`` (the pool as wide as the concurrency), a semaphore,
  ``session.get`` with the bearer header, ``read()`` and ``json.loads``; nothing else.
- **client request**: ``ChargeAmpsClient``'s request path (rate-limiter slot, token, timeout,
  metrics, error mapping, JSON) without the status model: what the client adds to the loop.
- **client status()**: the same plus the status model (what the collector calls per charger).

Each round asks every charger once, ``--concurrency`` requests in flight.  Runs alternate
(bare, client request, client status, bare, …); the median of ``--repeats`` counts, and the
ratio is the median of each repeat's ratio to the bare loop measured just before it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp

from bench.simproc import simulator_process
from charged.chargeamps.client import ChargeAmpsClient
from charged.chargeamps.endpoints import STATUS
from charged.clock import SystemClock
from charged.simulator.config import Account

Run = Callable[[list[str]], Awaitable[None]]


async def measure(run: Run, ids: list[str], rounds: int) -> float:
    """CPU µs per request over ``rounds`` rounds of every charger."""
    began = time.process_time()
    for _ in range(rounds):
        await run(ids)
    return (time.process_time() - began) / (rounds * len(ids)) * 1e6


async def main(args: argparse.Namespace) -> None:
    account = Account()
    async with simulator_process(args.chargers, 0.0) as sim:
        connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            client = ChargeAmpsClient(
                http,
                base_url=sim.base_url,
                email=account.email,
                password=account.password,
                api_key=account.api_key,
                clock=SystemClock(),
                max_concurrency=args.concurrency,
                max_requests_per_second=None,
            )
            await client.login()
            ids = [cp.id for cp in await client.owned_chargepoints()]
            token = await client.tokens.token()
            root = f"{sim.base_url.rstrip('/')}/api/v5"
            headers = {"Accept": "application/json", "Authorization": f"Bearer {token}"}
            timeout = aiohttp.ClientTimeout(total=10)
            gate = asyncio.Semaphore(args.concurrency)

            async def bare_one(cp: str) -> None:
                async with gate:
                    url = root + STATUS.format(id=cp)
                    async with http.get(url, headers=headers, timeout=timeout) as response:
                        json.loads(await response.read())

            async def bare(ids: list[str]) -> None:
                await asyncio.gather(*(bare_one(cp) for cp in ids))

            async def requests(ids: list[str]) -> None:
                await asyncio.gather(*(client._fetch(STATUS, {"id": cp}, cp_id=cp) for cp in ids))

            async def statuses(ids: list[str]) -> None:
                await asyncio.gather(*(client.status(cp) for cp in ids))

            runs: dict[str, Run] = {
                "bare aiohttp": bare,
                "client request": requests,
                "client status()": statuses,
            }
            for run in runs.values():  # warm up: connections, caches
                await measure(run, ids, 1)
            results: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(args.repeats):
                for name, run in runs.items():
                    results[name].append(await measure(run, ids, args.rounds))
    print(
        f"{args.chargers} chargers × {args.rounds} rounds, concurrency {args.concurrency}, "
        f"median of {args.repeats} (CPU µs per request, this process only)"
    )
    bare = results["bare aiohttp"]
    for name, values in results.items():
        median = statistics.median(values)
        # each repeat's ratio to the bare loop measured just before it: steadier than the
        # absolute figures when other work shares the machine
        ratio = statistics.median(v / b for v, b in zip(values, bare, strict=True))
        runs_text = ", ".join(f"{v:.0f}" for v in values)
        print(f"  {name:16s} {median:6.0f} µs  {ratio:.2f}× the bare loop  (runs: {runs_text})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.client_overhead", description=__doc__)
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=50)
    return parser


if __name__ == "__main__":
    asyncio.run(main(_parser().parse_args()))
