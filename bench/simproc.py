"""The simulated vendor cloud in a process of its own, so its CPU is not the collector's.

``python -m bench.simproc --chargers N --latency S`` serves on 127.0.0.1 (a free port),
prints one JSON line ``{"base_url": …}`` when ready, and on SIGTERM/SIGINT prints
``{"requests": …, "cpu_s": …}`` and exits.  :func:`simulator_process` runs it from the harness.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from charged.simulator import Faults, Simulator, SimulatorConfig


@dataclass
class RunningSimulator:
    base_url: str
    stats: dict[str, Any] = field(default_factory=dict)  # filled when it has stopped


@contextlib.asynccontextmanager
async def simulator_process(
    chargers: int, latency: float, seed: int = 1
) -> AsyncIterator[RunningSimulator]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.simproc",
        "--chargers",
        str(chargers),
        "--latency",
        repr(latency),
        "--seed",
        str(seed),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=120)
        if not line:
            raise RuntimeError("the simulator process exited before it was ready")
        running = RunningSimulator(base_url=json.loads(line)["base_url"])
        yield running
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stdout.read(), timeout=30)
        await proc.wait()
    with contextlib.suppress(ValueError, IndexError):
        running.stats = json.loads(rest.decode().strip().splitlines()[-1])


async def _serve(chargers: int, latency: float, seed: int) -> None:
    # Fleet clock from noon UTC today: many cars plugged in, so measurements are realistic.
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    simulator = Simulator(
        SimulatorConfig(
            chargers=chargers,
            seed=seed,
            faults=Faults(latency=latency),
            start_time=noon.timestamp(),
        )
    )
    await simulator.start("127.0.0.1", 0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"base_url": simulator.base_url}), flush=True)
    try:
        await stop.wait()
    finally:
        await simulator.stop()
    print(json.dumps({"requests": simulator.requests, "cpu_s": time.process_time()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.simproc")
    parser.add_argument("--chargers", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(_serve(args.chargers, args.latency, args.seed))


if __name__ == "__main__":
    main()
