"""Rows/s of the BatchWriter writing measurement rows, next to the driver's own limit.

The limit is a plain asyncmy ``executemany`` of the same rows (already as tuples), into the
same table, on a connection with the same settings, in chunks of the writer's batch size with
one commit per chunk.  Both start on an empty table; runs alternate so neither gets a warmer
server; the median of the repeats is reported.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bench.database import Server
from charged.storage.engine import create_engine
from charged.storage.writer import BatchWriter
from charged.storage.writes import RowBatch

COLUMNS = (
    "phase",
    "current",
    "voltage",
    "connector_id",
    "charge_point_id",
    "comment",
    "session_id",
    "date_created",
)
PLAIN_INSERT = (
    f"INSERT INTO measurement ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
    "ON DUPLICATE KEY UPDATE charge_point_id = charge_point_id"
)


def measurement_items(rows: int, stamp: datetime) -> list[RowBatch]:
    """Queue items as the supervisor makes them: one charger's phases per item (6 rows)."""
    items: list[RowBatch] = []
    made = 0
    cp = 0
    while made < rows:
        cp_id = f"{2300000000 + cp:010d}A"
        batch: list[Mapping[str, Any]] = []
        for connector in (1, 2):
            for phase, current in (("L1", 15.9), ("L2", 15.7), ("L3", 0.001)):
                batch.append(
                    {
                        "phase": phase,
                        "current": current,
                        "voltage": 229.6,
                        "connector_id": connector,
                        "charge_point_id": cp_id,
                        "comment": None,
                        "session_id": 7_000_000 + cp * 2 + connector,
                        "date_created": stamp,
                    }
                )
        take = batch[: rows - made]
        items.append({"measurement": take})
        made += len(take)
        cp += 1
    return items


async def _truncate(server: Server, database: str) -> None:
    conn = await server.connect(database)
    try:
        async with conn.cursor() as cur:
            await cur.execute("TRUNCATE TABLE measurement")
        await conn.commit()
    finally:
        conn.close()


async def batch_writer_rate(db_url: str, items: list[RowBatch], batch_size: int) -> float:
    engine = create_engine(db_url)
    try:
        queue: asyncio.Queue[RowBatch] = asyncio.Queue(maxsize=20000)
        writer = BatchWriter(engine, queue, batch_size=batch_size, flush_interval=1.0)
        task = asyncio.create_task(writer.run())
        # connect before the clock starts, as the plain run does
        async with engine.connect():
            pass
        started = time.perf_counter()
        for item in items:
            await queue.put(item)
        await writer.wait_flushed()
        elapsed = time.perf_counter() - started
        await writer.stop(timeout=10)
        await task
    finally:
        await engine.dispose()
    rows = sum(len(r) for item in items for r in item.values())
    return rows / elapsed


async def plain_executemany_rate(
    server: Server, database: str, items: list[RowBatch], batch_size: int
) -> float:
    tuples = [tuple(row[c] for c in COLUMNS) for item in items for row in item["measurement"]]
    conn = await server.connect(database)
    try:
        started = time.perf_counter()
        async with conn.cursor() as cur:
            for at in range(0, len(tuples), batch_size):
                await cur.executemany(PLAIN_INSERT, tuples[at : at + batch_size])
                await conn.commit()
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return len(tuples) / elapsed


async def run_writer_bench(
    server: Server, database: str, *, rows: int, repeats: int, batch_size: int = 5000
) -> dict[str, Any]:
    db_url = server.url(database)
    writer_rates: list[float] = []
    plain_rates: list[float] = []
    base = datetime(2026, 1, 1, 12, 0, 0)
    for n in range(repeats):
        items = measurement_items(rows, base + timedelta(minutes=n))
        for which in ("plain", "writer") if n % 2 == 0 else ("writer", "plain"):
            await _truncate(server, database)
            if which == "plain":
                plain_rates.append(
                    await plain_executemany_rate(server, database, items, batch_size)
                )
            else:
                writer_rates.append(await batch_writer_rate(db_url, items, batch_size))
    writer = statistics.median(writer_rates)
    plain = statistics.median(plain_rates)
    return {
        "rows": rows,
        "repeats": repeats,
        "batch_size": batch_size,
        "writer_rows_s": writer,
        "plain_rows_s": plain,
        "ratio": writer / plain,
        "writer_runs": writer_rates,
        "plain_runs": plain_rates,
    }
