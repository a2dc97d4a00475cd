"""Deleting old rows in bounded batches, and the loop that runs the rollups' and retention's
passes in ``charged run``.

``delete_before`` deletes a table's rows older than a cutoff, oldest first through an index
that leads with the time, ``batch_rows`` rows per transaction with a pause between them: the
writer's inserts (new rows, at the other end of every index) never wait for more than one
small transaction.  The rollups use it for the raw polls (only rows already folded: see
``storage/rollup.py``); :class:`Retention` for the tables that have no rollup and only grow:
``balancer_decision`` (a row per connector and balancer step), ``poll_gap`` (a row per
charger a tick did not read), ``balancer_fuse`` (a row per fuse and phase and balancer step)
and ``power_window`` (a row per balancer step with a power target), after
``retention.decision_days``, ``gap_days``, ``fuse_days`` and ``power_days``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.clock import Clock, sleep_or_stop
from charged.storage.schema import balancer_decision, balancer_fuse, poll_gap, power_window

# the pause between two transactions of a pass: the writer's turn
PAUSE_S = 0.01

# table -> its time column; each has an index that leads with it (the natural key)
TIMED: dict[str, tuple[Table, str]] = {
    "balancer_decision": (balancer_decision, "tick_time"),
    "poll_gap": (poll_gap, "tick_time"),
    "balancer_fuse": (balancer_fuse, "tick_time"),
    "power_window": (power_window, "tick_time"),
}


async def delete_before(
    engine: AsyncEngine,
    table: Table,
    column: str,
    cutoff: datetime,
    *,
    batch_rows: int,
    pause: float = PAUSE_S,
    max_id: int | None = None,
) -> int:
    """Delete the rows whose ``column`` is before ``cutoff`` (and whose id is at most
    ``max_id``, if given), oldest first, ``batch_rows`` a transaction → rows deleted."""
    moment = table.c[column]
    where = [moment < cutoff]
    if max_id is not None:
        where.append(table.c.id <= max_id)
    oldest = select(table.c.id).where(*where).order_by(moment).limit(batch_rows)
    total = 0
    while True:
        async with engine.begin() as conn:
            ids = list((await conn.execute(oldest)).scalars())
            if ids:
                await conn.execute(delete(table).where(table.c.id.in_(ids)))
        if not ids:
            return total
        total += len(ids)
        await asyncio.sleep(pause)


class Retention:
    """Deletes the rows of the tables without rollups (:data:`TIMED`) older than their days."""

    def __init__(
        self,
        engine: AsyncEngine,
        days: Mapping[str, int],
        *,
        batch_rows: int = 5000,
        pause: float = PAUSE_S,
    ) -> None:
        unknown = sorted(set(days) - set(TIMED))
        if unknown:
            raise ValueError(f"no retention for {', '.join(unknown)}; known: {', '.join(TIMED)}")
        self._engine = engine
        self._days = dict(days)
        self._batch = batch_rows
        self._pause = pause

    async def run_pass(self, now: datetime) -> dict[str, int]:
        """table -> rows deleted by this pass."""
        deleted: dict[str, int] = {}
        for name, days in self._days.items():
            table, column = TIMED[name]
            deleted[name] = await delete_before(
                self._engine,
                table,
                column,
                now - timedelta(days=days),
                batch_rows=self._batch,
                pause=self._pause,
            )
        return deleted


async def run_passes(
    stop: asyncio.Event,
    clock: Clock,
    every: float,
    log: Any,
    one_pass: Callable[[datetime], Awaitable[Mapping[str, int]]],
) -> None:
    """``one_pass(now)`` (→ rows deleted per table) every ``every`` seconds until ``stop``;
    a failing pass is logged when it starts failing and when it recovers, and the loop goes
    on."""
    failing = False
    while not stop.is_set():
        started = clock.monotonic()
        try:
            deleted = await one_pass(clock.utcnow().replace(tzinfo=None))
        except Exception as exc:
            if not failing:
                failing = True
                log.warning(
                    "rollup and retention pass failing; retrying every pass",
                    error=f"{type(exc).__name__}: {str(exc)[:200]}",
                )
        else:
            if failing:
                failing = False
                log.info("rollup and retention pass recovered")
            if any(deleted.values()):
                log.info("retention: old rows deleted", **deleted)
        await sleep_or_stop(clock, every - (clock.monotonic() - started), stop)
