"""The writer's disk side: flushes the database cannot take go to the spool, and come back.

Order is kept by one rule: while anything is spooled, every new flush is spooled behind it.
The spool is replayed record by record (peek, write, ack) with capped, jittered backoff
between failed attempts, and it drains before newer rows reach the database.  Rows written
twice (a replay after a crash between commit and ack) are harmless: inserts are idempotent by
natural key.  While the spool is full but the database answers again, new rows wait in memory
(and the queue, then the producers) for the replay to make room, instead of being dropped
behind it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from charged.clock import Clock
from charged.metrics import Metrics
from charged.storage.accumulator import GroupedRows
from charged.storage.sink import Backoff, DatabaseSink, TransientWriteError
from charged.storage.spool import Spool, SpoolNoRoom


class SpoolReplayer:
    def __init__(
        self,
        spool: Spool,
        sink: DatabaseSink,
        *,
        clock: Clock,
        metrics: Metrics,
        logger: Any,
        backoff: Backoff,
    ) -> None:
        self.spool = spool
        self._sink = sink
        self._clock = clock
        self._metrics = metrics
        self._log = logger
        self._backoff = backoff
        self._attempt = 0  # failed replay attempts since the last success
        self._at = 0.0  # monotonic time of the next replay attempt
        self._failures = 0  # failed replay attempts since start
        self._defer_mark: int | None = None  # _failures when a flush began to wait
        self.rows_replayed = 0

    # -- new rows ---------------------------------------------------------------------------

    async def write_or_spool(self, grouped: GroupedRows, *, stopping: bool) -> bool:
        """Write ``grouped`` now if nothing is spooled and the database answers; else spool it
        (or drop it, counted, when the spool is full).  False: it must wait for the replay.

        While the spool holds anything, new rows go behind it (order).
        """
        if not self.spool.pending():
            try:
                await self._sink.write_once(grouped)
            except TransientWriteError:
                pass
            else:
                return True
        if self.spool_batch(grouped, drop_when_full=False):
            return True
        if self._waits_for_replay(stopping):
            return False
        self.spool_batch(grouped)  # no room: counted as dropped
        return True

    def _waits_for_replay(self, stopping: bool) -> bool:
        """The spool has no room for the pending rows: must they wait rather than be dropped?

        While the database answers, yes: the replay is making room, and they are written in
        order after it.  During an outage they wait for the next replay attempt (the
        database may be back already); if that fails too, they are dropped (counted).  At
        shutdown nothing waits.
        """
        if stopping:
            return False
        if not self._sink.db_down:
            self._defer_mark = None
            return True
        if self._defer_mark is None:
            self._defer_mark = self._failures
        if self._defer_mark == self._failures:
            return True
        self._defer_mark = None
        return False

    async def wait(self, wakeup: asyncio.Event) -> None:
        """Until the next replay attempt is due (at once while the database answers), or
        until someone (stop) sets ``wakeup``."""
        wait_s = self.until()
        if not wait_s:
            await asyncio.sleep(0)
            return
        wakeup.clear()
        sleeper = asyncio.ensure_future(self._clock.sleep(wait_s))
        waker = asyncio.ensure_future(wakeup.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    def spool_batch(self, grouped: GroupedRows, *, drop_when_full: bool = True) -> bool:
        """Append ``grouped`` to the spool.  False only when ``drop_when_full`` is off and the
        spool has no room behind what it holds: nothing is counted then, the caller keeps
        the rows.  True otherwise: stored, or dropped and counted."""
        handled = True
        try:
            self.spool.append(grouped, drop_when_full=drop_when_full)
        except SpoolNoRoom:
            handled = False
        except Exception as exc:
            # the spool counts a full or failing disk itself; this is a closed or broken spool
            self._count_dropped(grouped, f"spool unusable ({type(exc).__name__})")
        if self._at < self._clock.monotonic():
            self._schedule()
        return handled

    def spool_what_is_left(self, grouped: GroupedRows, message: str) -> None:
        """At the end: the rows not written go to the spool for the next start."""
        total = sum(len(r) for r in grouped.values())
        if total:
            self.spool_batch(grouped)
            self._log.warning(message, rows=total, spool=str(self.spool.directory))

    def _count_dropped(self, grouped: GroupedRows, reason: str) -> None:
        for table, rows in grouped.items():
            if rows:
                self._metrics.rows_dropped.labels(table).inc(len(rows))
        self._log.error("rows dropped", reason=reason, rows=sum(len(r) for r in grouped.values()))

    # -- replaying --------------------------------------------------------------------------

    def due(self) -> bool:
        return self.spool.pending() and self._clock.monotonic() >= self._at

    def until(self) -> float | None:
        """Seconds until the next replay attempt; None when nothing is spooled."""
        if not self.spool.pending():
            return None
        return max(0.0, self._at - self._clock.monotonic())

    def _schedule(self) -> None:
        self._at = self._clock.monotonic() + self._backoff(self._attempt)
        self._attempt += 1

    async def replay_one(self) -> None:
        """Write the oldest spooled record; on a transient failure wait (backoff) and retry."""
        record = self.spool.peek()
        if record is None:
            return  # only corrupt records were left; peek() skipped them with a warning
        record_id, batch = record
        grouped: GroupedRows = {table: list(rows) for table, rows in batch.items()}
        try:
            await self._sink.write_once(grouped)
        except TransientWriteError:
            self._failures += 1
            self._schedule()
            return
        self.spool.ack(record_id)
        self._attempt = 0
        self._at = 0.0
        self.rows_replayed += sum(len(r) for r in grouped.values())
        if not self.spool.pending():
            self._log.info("spool replayed into the database", rows=self.rows_replayed)
