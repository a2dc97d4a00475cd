"""The single writer task: rows from a bounded queue → grouped bulk inserts, one commit per flush.

Producers ``await queue.put(batch)``; when the database is slow or down the queue fills and
they wait there (backpressure), so nothing is dropped.  The writer takes items, groups their
rows by table and flushes when ``batch_size`` rows are pending or ``flush_interval`` seconds
after the first pending row arrived (:mod:`~charged.storage.accumulator`).  A failed write
keeps the rows in memory and retries with capped exponential backoff and full jitter; the
outage and the recovery are logged once each (:mod:`~charged.storage.sink`).

With a :class:`~charged.storage.spool.Spool`, a flush the database cannot take goes to disk
instead of waiting in memory, so the queue keeps moving and a killed process loses nothing;
the spool is replayed in order before newer rows reach the database
(:mod:`~charged.storage.replayer`).

Rows the database refuses for their values (IntegrityError, DataError) are isolated and kept
aside in :class:`~charged.storage.rejected.RejectedRows`; the writer never stops on bad data.
Any other failure is a bug, not bad data: the writer spools what it holds (it is not
rejected: the rows are fine) and stops, raising, so the daemon stops loudly too.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.clock import Clock, SystemClock
from charged.metrics import Metrics
from charged.storage.accumulator import Accumulator, GroupedRows
from charged.storage.engine import StorageError
from charged.storage.rejected import RejectedRows
from charged.storage.replayer import SpoolReplayer
from charged.storage.sink import SCHEMA_HINT, Backoff, DatabaseSink, write_flush
from charged.storage.spool import Spool
from charged.storage.writes import RowBatch

__all__ = ["DEFAULT_WRITE_TIMEOUT", "SCHEMA_HINT", "BatchWriter", "GroupedRows"]

DEFAULT_WRITE_TIMEOUT = 60.0
FAILED = "writer failed; unwritten rows are in the spool"


class BatchWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        queue: asyncio.Queue[RowBatch],
        *,
        batch_size: int = 5000,
        flush_interval: float = 1.0,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        retry_backoff_max: float = 30.0,
        logger: Any = None,
        rng: random.Random | None = None,
        spool: Spool | None = None,
        rejected: RejectedRows | None = None,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``write_timeout``: seconds one write may take before it counts as failed (a server
        that hangs rather than refuses).  ``prepare``: run before the first write, and again
        before the next attempt until it succeeds (e.g. migrations when the database was
        down at start); its :class:`StorageError` counts as an outage."""
        self._engine = engine
        self._clock = clock or SystemClock()
        self._metrics = metrics or Metrics()
        self._log = logger or structlog.get_logger("charged.storage")
        self._batch = Accumulator(
            queue,
            batch_size=batch_size,
            flush_interval=flush_interval,
            clock=self._clock,
            metrics=self._metrics,
        )
        backoff = Backoff(rng or random.Random(), retry_backoff_max)
        # _write_batch is looked up on self: a test's subclass stands in for the database
        self._sink = DatabaseSink(
            self._write_batch,
            clock=self._clock,
            metrics=self._metrics,
            logger=self._log,
            backoff=backoff,
            rejected=rejected,
            write_timeout=write_timeout,
            prepare=prepare,
        )
        self._replayer = (
            None
            if spool is None
            else SpoolReplayer(
                spool,
                self._sink,
                clock=self._clock,
                metrics=self._metrics,
                logger=self._log,
                backoff=backoff,
            )
        )
        self._progress = asyncio.Condition()
        self._run_task: asyncio.Task[None] | None = None
        self._finished = False
        self._failed = False  # run() ended on a bug (not bad data, not an outage)

    # -- the task ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Write until :meth:`stop`; everything taken from the queue is committed (or spooled)."""
        if self._run_task is not None:
            raise RuntimeError("BatchWriter.run() is already running; start it once")
        self._run_task = asyncio.current_task()
        batch = self._batch
        try:
            while True:
                if self._replayer is not None and self._replayer.due():
                    await self._replayer.replay_one()
                    batch.drain_ready()
                    if batch.pending and batch.should_flush() and not await self._flush():
                        await self._wait_for_replay()
                    continue
                if not batch.pending:
                    if batch.stopping and batch.queue.empty():
                        return
                    item = await batch.next_item(wait_s=self._until_replay())
                    if item is None:
                        continue
                    batch.take_first(item)
                batch.drain_ready()
                if batch.should_flush():
                    if not await self._flush():
                        await self._wait_for_replay()
                    continue
                wait_s = batch.until_deadline()
                until_replay = self._until_replay()
                if until_replay is not None:
                    wait_s = min(wait_s, until_replay)
                item = await batch.next_item(wait_s=wait_s)
                if item is not None:
                    batch.take(item)
        except Exception as exc:
            # a bug (e.g. in rendering the rows): the rows are not at fault, so they are
            # spooled, not rejected, and the writer stops for the daemon to stop loudly
            self._failed = True
            self._log.error(
                "the database writer failed; what it held is kept, and it stops",
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            self._keep_what_is_left(FAILED)
            raise
        finally:
            self._finished = True
            async with self._progress:
                self._progress.notify_all()

    # the timeout runs on the injected clock, which asyncio.timeout() cannot use
    async def stop(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Drain the queue, flush and end :meth:`run`; give up after ``timeout`` seconds.

        Stop the producers first: items put after this call may not be written.  Rows still
        unwritten at the deadline (database down) go to the spool; without one (or when it is
        full) they are counted in ``rows_dropped`` and logged.  ``timeout=0`` spools at once.
        """
        self._batch.stopping = True
        self._batch.wakeup.set()
        task = self._run_task
        if task is None:
            return
        if task.done():
            if self._failed:  # rows queued after the failure are kept as well
                self._keep_what_is_left(FAILED)
            return
        timer = asyncio.ensure_future(self._clock.sleep(timeout)) if timeout is not None else None
        try:
            # asyncio.wait never cancels what it waits for: the writer keeps draining.
            await asyncio.wait({task, *([timer] if timer else [])}, return_when="FIRST_COMPLETED")
        finally:
            if timer is not None:
                timer.cancel()
        if task.done():
            return  # its failure, if any, belongs to whoever awaits the run() task
        task.cancel()
        # wait() neither raises the task's outcome nor swallows a cancellation of our caller
        await asyncio.wait({task})
        # A write cut short by the cancel rolled back (or committed: spooling it again is
        # harmless), so everything still pending or queued is unwritten.
        self._keep_what_is_left(
            "writer stopped at its deadline; unwritten rows are in the spool for the next start",
            timeout_s=timeout,
        )

    async def wait_flushed(self) -> None:
        """Return once everything queued before this call is committed (asks for a flush now)."""
        target = self._batch.request_flush()
        async with self._progress:
            while self._batch.committed < target:
                if self._finished:
                    raise StorageError(
                        "the database writer stopped before these rows were written; "
                        "see the log for why"
                    )
                await self._progress.wait()

    @property
    def rows_written(self) -> dict[str, int]:
        return self._sink.rows_written

    @property
    def rows_duplicate(self) -> dict[str, int]:
        """Rows the database skipped: one with the same key was stored already."""
        return self._sink.rows_duplicate

    @property
    def rows_replayed(self) -> int:
        return 0 if self._replayer is None else self._replayer.rows_replayed

    @property
    def db_down(self) -> bool:
        """True between a failed write and the next successful one."""
        return self._sink.db_down

    @property
    def spool_full(self) -> bool:
        return self._replayer is not None and self._replayer.spool.full

    @property
    def caught_up(self) -> bool:
        """True when the last write succeeded and nothing waits in the spool."""
        return not self.db_down and not self._spooled()

    @property
    def backlog(self) -> bool:
        """True while rows wait for the database: pending, queued or spooled."""
        return self._spooled() or bool(self._batch.pending) or not self._batch.queue.empty()

    def _spooled(self) -> bool:
        return self._replayer is not None and self._replayer.spool.pending()

    def _until_replay(self) -> float | None:
        return None if self._replayer is None else self._replayer.until()

    async def _wait_for_replay(self) -> None:
        assert self._replayer is not None  # only a flush with a spool waits
        await self._replayer.wait(self._batch.wakeup)

    # -- writing ----------------------------------------------------------------------------

    async def _flush(self) -> bool:
        """Write, spool (or drop, counted) what is pending; False: it waits for the replay."""
        grouped = self._batch.pending
        if self._replayer is None:
            await self._sink.write_with_retry(grouped)
        elif not await self._replayer.write_or_spool(grouped, stopping=self._batch.stopping):
            return False
        async with self._progress:
            self._batch.flushed()
            self._progress.notify_all()
        return True

    async def _write_batch(self, grouped: RowBatch) -> dict[str, int]:
        """The one place that touches the database (tests replace it): one transaction."""
        return await write_flush(self._engine, grouped)

    def _keep_what_is_left(self, spooled: str, **log_kw: Any) -> None:
        """Pending and queued rows to the spool (``spooled`` is logged); without a spool
        they are counted in ``rows_dropped`` and logged."""
        left = self._batch.take_all_left()
        if self._replayer is not None:
            self._replayer.spool_what_is_left(left, spooled)
            return
        lost = {table: len(rows) for table, rows in left.items() if rows}
        if not lost:
            return
        for table, rows in lost.items():
            self._metrics.rows_dropped.labels(table).inc(rows)
        self._log.error(
            "writer stopped with rows not written", rows=sum(lost.values()), tables=lost, **log_kw
        )
