"""The building's rises learned again at start, from the readings ``meter_reading`` holds.

A restart must not forget that the building stepped by 9 A this morning: with nothing learned
the headroom would be the floor (``headroom_a``) until the building showed the rise again, and
that first rise would go over the fuse.  Every reading is stored already (one per meter and
second), so the start reads back the last ``headroom_learn_h`` hours of each meter and the
book learns them before the readings received since (:meth:`MeterBook.recall
<charged.meters.book.MeterBook.recall>`).  A database that cannot be read costs the recall,
not the meters nor the daemon: the headroom is then the floor, as before the first reading,
and it is logged.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.clock import Clock
from charged.meters.book import MeterBook
from charged.meters.payload import PhaseCurrents

# readings read back per meter at most, the newest (a meter read every second: 28 hours)
MAX_RECALLED = 100_000


async def stored_readings(
    engine: AsyncEngine, fuse: str, since: float, *, limit: int = MAX_RECALLED
) -> list[tuple[float, PhaseCurrents]]:
    """``fuse``'s readings stored at or after ``since`` (epoch seconds), oldest first."""
    from charged.storage.schema import meter_reading as m

    start = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
    query = (
        select(m.c.read_at, m.c.l1_a, m.c.l2_a, m.c.l3_a)
        .where(m.c.fuse == fuse, m.c.read_at >= start)
        .order_by(m.c.read_at.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        (r.read_at.replace(tzinfo=UTC).timestamp(), (float(r.l1_a), float(r.l2_a), float(r.l3_a)))
        for r in reversed(rows)
    ]


async def recall_headroom(
    engine: AsyncEngine, book: MeterBook, clock: Clock, *, logger: Any = None
) -> dict[str, int]:
    """Feed ``book`` every meter's stored readings of its learning window; → readings taken
    per fuse (none for a meter that learns nothing)."""
    log = logger or structlog.get_logger("charged.meters")
    now = clock.time()
    taken: dict[str, int] = {}
    try:
        for fuse, spec in book.specs.items():
            if spec.learn_window_s <= 0:
                continue
            past = await stored_readings(engine, fuse, now - spec.learn_window_s)
            taken[fuse] = book.recall(fuse, past)
    except Exception as exc:  # a recall that fails must not stop the daemon
        # (SQLAlchemyError and OSError are the expected ones: a database gone or refusing)
        log.warning(
            "site meters: stored readings not read back; the headroom starts at headroom_a",
            error=type(exc).__name__,
            expected=isinstance(exc, SQLAlchemyError | OSError),
        )
    finally:
        book.recalled()
    if taken:
        log.info(
            "site meters: rises learned again from stored readings",
            readings=taken,
            headroom_a={f: list(book.headroom(f, now)) for f in taken},
        )
    return taken


async def run_recall(
    engine: AsyncEngine | None, book: MeterBook, clock: Clock, stop: asyncio.Event
) -> None:
    """The daemon task: one recall at start, then nothing (``stop`` is not waited for)."""
    if engine is None:
        book.recalled()
        return
    await recall_headroom(engine, book, clock)
