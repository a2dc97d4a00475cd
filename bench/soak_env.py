"""The soak test's surroundings in a process of their own: the simulated vendor cloud and the
gate in front of the database.  The measured process then holds the collector alone, so its
memory and file descriptors are the collector's, not the simulator's fleet history.

``python -m bench.soak_env --chargers N --speed X [--db-host H --db-port P]`` prints one JSON
line ``{"base_url", "db_port", "charge_points"}`` when ready, then takes one JSON command per
line on stdin and answers each with one line:

* ``{"faults": {...}}`` — set the simulator's faults (fields of :class:`Faults`; ``malformed``
  and ``offline`` as lists of charge point ids);
* ``{"age_tokens": S}`` — move the simulator's wall clock S seconds on: the access token the
  collector holds dies now, long before the expiry it announced;
* ``{"db": "down"}`` / ``{"db": "up"}`` — shut / open the database gate.

End of input stops it; the last line holds its request count, CPU seconds and memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.measure import rss_mb
from bench.tcp_gate import TcpGate
from charged.clock import SystemClock
from charged.simulator import Simulator, SimulatorConfig

FAULT_FIELDS = (
    "latency",
    "latency_jitter",
    "error_rate",
    "rate_limit_rate",
    "retry_after",
    "timeout_rate",
    "no_measurements",
    "token_lifetime",
    "token_exp_claim",
)


class AgeableClock(SystemClock):
    """Real time plus an offset the driver can grow.  The fleet reads only the monotonic
    clock once it runs, so moving the wall time on ages tokens and nothing else."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return super().time() + self.offset


def apply_faults(sim: Simulator, wanted: dict[str, Any]) -> None:
    faults = sim.faults
    for name in FAULT_FIELDS:
        if name in wanted:
            setattr(faults, name, wanted[name])
    if "malformed" in wanted:
        faults.malformed = set(wanted["malformed"])
    if "offline" in wanted:
        faults.offline = set(wanted["offline"])
    faults.validate()


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def serve(args: argparse.Namespace) -> None:
    clock = AgeableClock()
    start = datetime.now(UTC).replace(hour=args.start_hour, minute=0, second=0, microsecond=0)
    sim = Simulator(
        SimulatorConfig(
            chargers=args.chargers,
            seed=args.seed,
            speed=args.speed,
            start_time=start.timestamp(),
            record_served=False,  # a long run must not keep every body
        ),
        clock=clock,
    )
    await sim.start("127.0.0.1", 0)
    gate: TcpGate | None = None
    if args.db_port:
        gate = TcpGate(args.db_host, args.db_port)
        await gate.open()
    print(
        json.dumps(
            {
                "base_url": sim.base_url,
                "db_port": gate.port if gate else None,
                "charge_points": sim.charge_point_ids(),
            }
        ),
        flush=True,
    )
    commands = await _stdin_lines()
    try:
        while line := await commands.readline():
            command = json.loads(line)
            if "faults" in command:
                apply_faults(sim, command["faults"])
            if "age_tokens" in command:
                clock.offset += float(command["age_tokens"])
            if "db" in command and gate is not None:
                await (gate.open() if command["db"] == "up" else gate.shut())
            print(json.dumps({"ok": True, "requests": sim.requests}), flush=True)
    finally:
        if gate is not None:
            await gate.shut()
        await sim.stop()
    print(
        json.dumps(
            {
                "requests": sim.requests,
                "logins": sim.login_attempts,
                "cpu_s": round(time.process_time(), 1),
                "rss_mb": round(rss_mb(), 1),
                "db_connections": gate.connections if gate else 0,
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_env")
    parser.add_argument("--chargers", type=int, required=True)
    parser.add_argument("--speed", type=float, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start-hour", type=int, default=8)
    parser.add_argument("--db-host", default="127.0.0.1")
    parser.add_argument("--db-port", type=int, default=0, help="0: no database gate (SQLite)")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
