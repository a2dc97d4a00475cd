"""``python -m bench.allocation``: one balancer tick (allocate + plan) at 10,000 connectors.

The site is a 3-level tree: a main fuse, ``--feeders`` sub-distributions under it, ``--rows``
rows under each, chargers (two connectors each, all six rotations in turn) under the rows.
The fuses are sized so that every level binds somewhere: the floor pauses cars, water-filling
meets bottlenecks at all three levels, and the guarantee holds increases for room.  The
states are drawn once from a seeded generator (cars on 1 or 3 phases, some slow cars, some
idle, offline, pinned connectors, limits in force between 0 and 32 A) and the same tick is
timed ``--repeat`` times; the figure is the median (and the worst) of the wall time of one
``allocate()`` and one ``plan()``, which is what the daemon runs per 30-s tick.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter

from charged.balancer.allocate import allocate
from charged.balancer.model import (
    BalancerMemory,
    ChargerSpec,
    ConnectorState,
    Fuse,
    Site,
    all_rotations,
)
from charged.balancer.plan import plan

TARGET_MS = 50.0  # issue #14: one allocation for 10,000 connectors


def build(connectors: int, feeders: int, rows: int, seed: int) -> tuple[Site, list[ConnectorState]]:
    rng = random.Random(seed)
    chargers_total = connectors // 2
    per_row = max(1, chargers_total // (feeders * rows))
    rotations = all_rotations()
    specs: list[ChargerSpec] = []
    feeder_fuses = []
    n = 0
    for f in range(feeders):
        row_fuses = []
        for r in range(rows):
            ids = []
            for _ in range(per_row):
                spec = ChargerSpec(
                    f"CP{n:05d}",
                    rotation=rotations[n % len(rotations)],
                    installation_current=rng.choice((16.0, 32.0, 32.0, 32.0)),
                )
                specs.append(spec)
                ids.append(spec.id)
                n += 1
            # rows from 6 to 14 A per charger and phase: the small ones bind on their own
            row_limit = float(round(per_row * rng.uniform(6.0, 14.0)))
            row_fuses.append(Fuse(f"F{f}-R{r}", (row_limit,) * 3, chargers=tuple(ids)))
        feeder_limit = float(round(per_row * rows * rng.uniform(6.5, 10.0)))
        feeder_fuses.append(Fuse(f"F{f}", (feeder_limit,) * 3, children=tuple(row_fuses)))
    main_limit = float(8 * per_row * rows * feeders)
    site = Site(Fuse("main", (main_limit,) * 3, children=tuple(feeder_fuses)), tuple(specs), 2.0)
    states: list[ConnectorState] = []
    for spec in specs:
        for key in spec.connector_keys():
            kind = rng.choices(
                ("car", "idle", "offline", "pinned", "full"), weights=(60, 25, 2, 3, 10)
            )[0]
            limit = rng.choice((0.0, 6.0, 10.0, 16.0, 32.0))
            terminals = rng.choice((frozenset({0}), frozenset({0, 1, 2}), None))
            states.append(
                ConnectorState(
                    key,
                    online=kind != "offline",
                    plugged=kind in ("car", "pinned", "full"),
                    wants_current=kind in ("car", "pinned"),
                    terminals=terminals if kind != "idle" else None,
                    measured=(min(limit, 16.0), 0.0, 0.0),
                    measured_at=1_000.0,
                    car_max=rng.choice((None, None, None, 10.0)),
                    limit=min(limit, spec.connector_max),
                    pinned=10.0 if kind == "pinned" else None,
                )
            )
    return site, states


def run(connectors: int, feeders: int, rows: int, repeat: int, seed: int) -> dict[str, object]:
    site, states = build(connectors, feeders, rows, seed)
    now = 10_000.0
    memory = BalancerMemory()
    alloc_ms: list[float] = []
    plan_ms: list[float] = []
    cpu_ms: list[float] = []
    result = plan_result = None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        result = allocate(site, states, now, memory=memory)
        c1, t1 = time.process_time(), time.perf_counter()
        plan_result = plan(site, states, result.targets, now)
        t2 = time.perf_counter()
        cpu_ms.append((c1 - c0) * 1000)
        alloc_ms.append((t1 - t0) * 1000)
        plan_ms.append((t2 - t1) * 1000)
    assert result is not None and plan_result is not None
    reasons = Counter(d.reason.value for d in result.decisions.values())
    levels = Counter(
        _level(d.bottleneck[0]) for d in result.decisions.values() if d.bottleneck is not None
    )
    total = [a + p for a, p in zip(alloc_ms, plan_ms, strict=True)]
    return {
        "connectors": len(states),
        "fuses": len(site.fuses()),
        "repeat": repeat,
        "allocate_ms_median": round(statistics.median(alloc_ms), 1),
        "allocate_ms_min": round(min(alloc_ms), 1),
        "allocate_ms_max": round(max(alloc_ms), 1),
        "allocate_cpu_ms_median": round(statistics.median(cpu_ms), 1),
        "plan_ms_median": round(statistics.median(plan_ms), 1),
        "tick_ms_median": round(statistics.median(total), 1),
        "tick_ms_max": round(max(total), 1),
        "target_ms": TARGET_MS,
        "met": statistics.median(alloc_ms) <= TARGET_MS,
        "reasons": dict(sorted(reasons.items())),
        # how many fair shares stopped at the main fuse, a feeder, a row
        "bottleneck_levels": {name: levels.get(name, 0) for name in ("main", "feeder", "row")},
        "writes": len(plan_result.writes),
        "deferred": len(plan_result.deferred),
    }


def _level(fuse: str) -> str:
    """The level of a fuse of :func:`build`'s tree, from its name."""
    return "main" if fuse == "main" else ("row" if "-R" in fuse else "feeder")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.allocation", description=__doc__)
    parser.add_argument("--connectors", type=int, default=10_000)
    parser.add_argument("--feeders", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args(argv)
    figures = run(ns.connectors, ns.feeders, ns.rows, ns.repeat, ns.seed)
    if ns.json:
        print(json.dumps(figures, indent=2))
    else:
        for name, value in figures.items():
            print(f"{name:>20}: {value}")
    return 0 if figures["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
