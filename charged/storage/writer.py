"""The single writer task: rows from a bounded queue → grouped bulk inserts, one commit per flush.

Producers ``await queue.put(batch)``; when the database is slow or down the queue fills and
they wait there (backpressure), so nothing is dropped.  The writer takes items, groups their
rows by table and flushes when ``batch_size`` rows are pending or ``flush_interval`` seconds
after the first pending row arrived.  A failed write keeps the rows in memory and retries with
capped exponential backoff and full jitter; the outage and the recovery are logged once each.
The write itself is isolated in :meth:`BatchWriter._write_batch`, where a disk spool can plug in.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.clock import Clock, SystemClock
from charged.metrics import Metrics
from charged.storage.engine import StorageError
from charged.storage.writes import RowBatch, ordered_tables, write_rows

GroupedRows = dict[str, list[Mapping[str, Any]]]

RETRY_BACKOFF_BASE = 0.5


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
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval}")
        self._engine = engine
        self._queue = queue
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._clock = clock or SystemClock()
        self._metrics = metrics or Metrics()
        self._backoff_max = retry_backoff_max
        self._log = logger or structlog.get_logger("charged.storage")
        self._rng = rng or random.Random()
        self.rows_written: dict[str, int] = {}
        # pending: rows taken from the queue, not yet committed
        self._pending: GroupedRows = {}
        self._pending_rows = 0
        self._pending_items = 0
        self._deadline = 0.0
        # items taken from the queue / items whose rows are committed, since start
        self._taken = 0
        self._committed = 0
        self._db_down = False
        self._stopping = False
        self._wakeup = asyncio.Event()  # stop() or wait_flushed() wants the loop's attention
        self._flush_requested_upto = 0
        self._progress = asyncio.Condition()
        self._run_task: asyncio.Task[None] | None = None
        self._finished = False

    # -- the task ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Write until :meth:`stop`; everything taken from the queue is committed first."""
        if self._run_task is not None:
            raise RuntimeError("BatchWriter.run() is already running; start it once")
        self._run_task = asyncio.current_task()
        try:
            while True:
                if not self._pending:
                    if self._stopping and self._queue.empty():
                        return
                    item = await self._next_item(wait_s=None)
                    if item is None:
                        continue
                    self._take(item)
                    self._deadline = self._clock.monotonic() + self._flush_interval
                self._drain_ready()
                if self._should_flush():
                    await self._flush()
                    continue
                item = await self._next_item(wait_s=self._deadline - self._clock.monotonic())
                if item is not None:
                    self._take(item)
        finally:
            self._finished = True
            async with self._progress:
                self._progress.notify_all()

    # the timeout runs on the injected clock, which asyncio.timeout() cannot use
    async def stop(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Drain the queue, flush and end :meth:`run`; give up after ``timeout`` seconds.

        Stop the producers first: items put after this call may not be written.  Rows still
        unwritten at the deadline (database down) are counted in ``rows_dropped`` and logged.
        """
        self._stopping = True
        self._wakeup.set()
        task = self._run_task
        if task is None or task.done():
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
        lost = self._count_unwritten()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for table, rows in lost.items():
            self._metrics.rows_dropped.labels(table).inc(rows)
        self._log.error(
            "writer stopped at its deadline with rows not written",
            timeout_s=timeout,
            rows=sum(lost.values()),
            tables=lost,
        )

    async def wait_flushed(self) -> None:
        """Return once everything queued before this call is committed (asks for a flush now)."""
        target = self._taken + self._queue.qsize()
        self._flush_requested_upto = max(self._flush_requested_upto, target)
        self._wakeup.set()
        async with self._progress:
            while self._committed < target:
                if self._finished:
                    raise StorageError(
                        "the database writer stopped before these rows were written; "
                        "see the log for why"
                    )
                await self._progress.wait()

    @property
    def db_down(self) -> bool:
        """True between a failed write and the next successful one."""
        return self._db_down

    # -- taking items -----------------------------------------------------------------------

    async def _next_item(self, wait_s: float | None) -> RowBatch | None:
        """The next queue item, or None when the timeout passed or someone woke us up."""
        try:
            return self._get_nowait()
        except asyncio.QueueEmpty:
            pass
        if self._stopping or self._flush_due_by_request():
            return None
        if wait_s is not None and wait_s <= 0:
            return None
        self._wakeup.clear()
        getter = asyncio.ensure_future(self._get())
        waiters: set[asyncio.Future[Any]] = {getter, asyncio.ensure_future(self._wakeup.wait())}
        if wait_s is not None:
            waiters.add(asyncio.ensure_future(self._clock.sleep(wait_s)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        # A get that completed is kept even if another waiter won: the item left the queue.
        if getter.done() and not getter.cancelled():
            return getter.result()
        return None

    # _taken counts in the same step that removes the item from the queue, so wait_flushed()
    # never misses an item that left the queue but was not yet added to the pending batch.
    def _get_nowait(self) -> RowBatch:
        item = self._queue.get_nowait()
        self._taken += 1
        return item

    async def _get(self) -> RowBatch:
        item = await self._queue.get()
        self._taken += 1
        return item

    def _take(self, item: RowBatch) -> None:
        for table, rows in item.items():
            if rows:
                self._pending.setdefault(table, []).extend(rows)
                self._pending_rows += len(rows)
        self._pending_items += 1
        self._metrics.queue_depth.set(self._queue.qsize())

    def _drain_ready(self) -> None:
        """Take what is already queued, up to the batch size, without waiting."""
        while self._pending_rows < self._batch_size:
            try:
                item = self._get_nowait()
            except asyncio.QueueEmpty:
                return
            self._take(item)

    def _flush_due_by_request(self) -> bool:
        # someone waits in wait_flushed() for items that are pending: flush without waiting
        return bool(self._pending_items) and self._committed < self._flush_requested_upto

    def _should_flush(self) -> bool:
        return (
            self._pending_rows >= self._batch_size
            or self._clock.monotonic() >= self._deadline
            or self._stopping
            or self._flush_due_by_request()
        )

    # -- writing ----------------------------------------------------------------------------

    async def _flush(self) -> None:
        grouped, items = self._pending, self._pending_items
        await self._write_with_retry(grouped)
        self._pending, self._pending_rows, self._pending_items = {}, 0, 0
        for table, rows in grouped.items():
            self.rows_written[table] = self.rows_written.get(table, 0) + len(rows)
            self._metrics.rows_written.labels(table).inc(len(rows))
        async with self._progress:
            self._committed += items
            self._progress.notify_all()

    async def _write_with_retry(self, grouped: GroupedRows) -> None:
        attempt = 0
        while True:
            started = self._clock.monotonic()
            try:
                await self._write_batch(grouped)
            except Exception as exc:
                if not _is_transient(exc):
                    self._log.error(
                        "database refused a batch; the writer stops",
                        error=_short(exc),
                        rows=sum(len(r) for r in grouped.values()),
                    )
                    raise StorageError(
                        f"the database refused a batch ({_short(exc)}); this is a bug or a "
                        "schema mismatch: run `charged db upgrade` and report it if it persists"
                    ) from exc
                self._metrics.db_errors.inc()
                if not self._db_down:
                    self._db_down = True
                    self._log.warning(
                        "database write failed; keeping the rows and retrying",
                        error=_short(exc),
                        rows=sum(len(r) for r in grouped.values()),
                    )
                delay = self._rng.uniform(
                    0.0, min(self._backoff_max, RETRY_BACKOFF_BASE * 2.0**attempt)
                )
                attempt += 1
                await self._clock.sleep(delay)
                continue
            self._metrics.db_write_latency.observe(self._clock.monotonic() - started)
            if self._db_down:
                self._db_down = False
                self._log.info("database writes succeed again", failed_attempts=attempt)
            return

    async def _write_batch(self, grouped: GroupedRows) -> None:
        """Write all tables of one flush in one transaction, charge points first."""
        async with self._engine.begin() as conn:
            for table in ordered_tables(set(grouped)):
                await write_rows(conn, table, grouped[table])

    def _count_unwritten(self) -> dict[str, int]:
        lost = {table: len(rows) for table, rows in self._pending.items()}
        while True:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            for table, rows in item.items():
                lost[table] = lost.get(table, 0) + len(rows)
        return {table: n for table, n in lost.items() if n}


def _is_transient(exc: BaseException) -> bool:
    """Errors a retry can fix: the connection, the server, a lock — not the statement."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OSError | TimeoutError)


def _short(exc: BaseException) -> str:
    inner: BaseException = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0][:200]}" if text else type(inner).__name__
