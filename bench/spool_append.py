"""``python -m bench.spool_append``: one tick of 10,000 chargers appended to the spool.

What a database outage costs the tick loop at the largest fleet: the tick's rows (60,000
measurements, 20,000 connector statuses) go to the spool file instead of the database.  Timed
here, not in the test suite (a unit test with a time limit fails on a loaded machine and
proves nothing on a fast one); tests/unit/test_spool.py checks the same tick for size and
round trip.  Median and worst of ``--repeat`` appends, each to a fresh spool.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from charged.metrics import Metrics
from charged.storage.spool import Spool


def tick(chargers: int) -> dict[str, list[dict[str, Any]]]:
    when = datetime(2026, 1, 1)
    return {
        "measurement": [
            {
                "phase": f"L{p}",
                "current": 6.0 + i % 10,
                "voltage": 229.5,
                "connector_id": c,
                "charge_point_id": f"CP{i:06d}",
                "comment": None,
                "session_id": 100_000 + i,
                "date_created": when,
            }
            for i in range(chargers)
            for c in (1, 2)
            for p in (1, 2, 3)
        ],
        "connector_status": [
            {
                "charge_point_id": f"CP{i:06d}",
                "connector_id": c,
                "status": "Charging",
                "end_time": None,
                "date_created": when,
            }
            for i in range(chargers)
            for c in (1, 2)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spool_append", description=__doc__)
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    ns = parser.parse_args(argv)
    rows = tick(ns.chargers)
    seconds: list[float] = []
    size = 0
    for _ in range(ns.repeat):
        with tempfile.TemporaryDirectory(prefix="charged-bench-spool-") as directory:
            spool = Spool(Path(directory), metrics=Metrics())
            spool.open()
            started = time.perf_counter()
            spool.append(rows)
            seconds.append(time.perf_counter() - started)
            size = spool.bytes
            spool.close()
    count = sum(len(v) for v in rows.values())
    print(
        f"{ns.chargers} chargers, {count} rows: append median {statistics.median(seconds):.3f} s, "
        f"worst {max(seconds):.3f} s, {size / 1024**2:.2f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
