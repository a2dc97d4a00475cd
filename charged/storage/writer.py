"""The single writer task: rows from a bounded queue → grouped bulk inserts, one commit per flush.

Producers ``await queue.put(batch)``; when the database is slow or down the queue fills and
they wait there (backpressure), so nothing is dropped.  The writer takes items, groups their
rows by table and flushes when ``batch_size`` rows are pending or ``flush_interval`` seconds
after the first pending row arrived.  A failed write keeps the rows in memory and retries with
capped exponential backoff and full jitter; the outage and the recovery are logged once each.

With a :class:`~charged.storage.spool.Spool`, a flush the database cannot take goes to disk
instead of waiting in memory, so the queue keeps moving and a killed process loses nothing.
Order is kept by one rule: while anything is spooled, every new flush is spooled behind it.
The spool is replayed record by record (peek, write, ack) with the same capped, jittered
backoff between failed attempts, and it drains before newer rows reach the database.  Rows
written twice (a replay after a crash between commit and ack) are harmless: inserts are
idempotent by natural key.  While the spool is full but the database answers again, new rows
wait in memory (and the queue, then the producers) for the replay to make room, instead of
being dropped behind it.

What a retry can fix (connection, server, lock, a write that hangs past ``write_timeout``, a
statement the schema does not take yet) is retried.  A row the database refuses for its
values (IntegrityError, DataError) would be refused forever: the batch is split, table by
table and then in halves, until the refused rows are isolated; the others are written and the
refused ones go to :class:`~charged.storage.rejected.RejectedRows`.  The writer never stops
on bad data.  Any other failure is a bug, not bad data: the writer spools what it holds (it
is not rejected: the rows are fine) and stops, raising, so the daemon stops loudly too.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.clock import Clock, SystemClock
from charged.metrics import Metrics
from charged.storage.engine import StorageError
from charged.storage.rejected import RejectedRows
from charged.storage.spool import Spool, SpoolNoRoom
from charged.storage.writes import RowBatch, ordered_tables, write_rows

GroupedRows = dict[str, list[Mapping[str, Any]]]

RETRY_BACKOFF_BASE = 0.5
OUTAGE_WITH_SPOOL = "database write failed; spooling rows to disk until it answers"
OUTAGE_WITHOUT_SPOOL = "database write failed; keeping the rows and retrying"
SCHEMA_HINT = (
    "the database does not take the writer's statements (a schema older or newer than this "
    "version?); rows are kept until it does: run `charged db upgrade`"
)
DEFAULT_WRITE_TIMEOUT = 60.0


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
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval}")
        if write_timeout <= 0:
            raise ValueError(f"write_timeout must be positive, got {write_timeout}")
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
        # rows the database skipped: one with the same key was stored already
        self.rows_duplicate: dict[str, int] = {}
        # pending: rows taken from the queue, not yet committed
        self._pending: GroupedRows = {}
        self._pending_rows = 0
        self._pending_items = 0
        self._deadline = 0.0
        # items taken from the queue / items whose rows are committed, since start
        self._taken = 0
        self._committed = 0
        self._db_down = False
        self._metrics.database_writable.set(1)  # not known to be down until a write fails
        self._stopping = False
        self._wakeup = asyncio.Event()  # stop() or wait_flushed() wants the loop's attention
        self._flush_requested_upto = 0
        self._progress = asyncio.Condition()
        self._run_task: asyncio.Task[None] | None = None
        self._finished = False
        self._failed = False  # run() ended on a bug (not bad data, not an outage)
        self._spool = spool
        self._rejected = rejected
        self._write_timeout = write_timeout
        self._prepare = prepare
        self._replay_attempt = 0  # failed replay attempts since the last success
        self._replay_at = 0.0  # monotonic time of the next replay attempt
        self._replay_failures = 0  # failed replay attempts since start
        self._defer_mark: int | None = None  # _replay_failures when a flush began to wait
        self.rows_replayed = 0

    # -- the task ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Write until :meth:`stop`; everything taken from the queue is committed (or spooled)."""
        if self._run_task is not None:
            raise RuntimeError("BatchWriter.run() is already running; start it once")
        self._run_task = asyncio.current_task()
        try:
            while True:
                if self._replay_due():
                    await self._replay_one()
                    self._drain_ready()
                    if self._pending and self._should_flush() and not await self._flush():
                        await self._wait_for_replay()
                    continue
                if not self._pending:
                    if self._stopping and self._queue.empty():
                        return
                    item = await self._next_item(wait_s=self._until_replay())
                    if item is None:
                        continue
                    self._take(item)
                    self._deadline = self._clock.monotonic() + self._flush_interval
                self._drain_ready()
                if self._should_flush():
                    if not await self._flush():
                        await self._wait_for_replay()
                    continue
                wait_s = self._deadline - self._clock.monotonic()
                until_replay = self._until_replay()
                if until_replay is not None:
                    wait_s = min(wait_s, until_replay)
                item = await self._next_item(wait_s=wait_s)
                if item is not None:
                    self._take(item)
        except Exception as exc:
            # a bug (e.g. in rendering the rows): the rows are not at fault, so they are
            # spooled, not rejected, and the writer stops for the daemon to stop loudly
            self._failed = True
            self._log.error(
                "the database writer failed; what it held is kept, and it stops",
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            self._keep_what_is_left("writer failed; unwritten rows are in the spool")
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
        self._stopping = True
        self._wakeup.set()
        task = self._run_task
        if task is None:
            return
        if task.done():
            if self._failed:  # rows queued after the failure are kept as well
                self._keep_what_is_left("writer failed; unwritten rows are in the spool")
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

    def _keep_what_is_left(self, spooled: str, **log_kw: Any) -> None:
        """Pending and queued rows to the spool (``spooled`` is logged); without a spool
        they are counted in ``rows_dropped`` and logged."""
        if self._spool_what_is_left(spooled):
            return
        lost = self._count_unwritten()
        if not lost:
            return
        for table, rows in lost.items():
            self._metrics.rows_dropped.labels(table).inc(rows)
        self._log.error(
            "writer stopped with rows not written", rows=sum(lost.values()), tables=lost, **log_kw
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

    @property
    def spool_full(self) -> bool:
        return self._spool is not None and self._spool.full

    @property
    def caught_up(self) -> bool:
        """True when the last write succeeded and nothing waits in the spool."""
        return not self._db_down and (self._spool is None or not self._spool.pending())

    @property
    def backlog(self) -> bool:
        """True while rows wait for the database: pending, queued or spooled."""
        spooled = self._spool is not None and self._spool.pending()
        return spooled or bool(self._pending) or not self._queue.empty()

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

    async def _flush(self) -> bool:
        """Write, spool (or drop, counted) what is pending; False: it waits for the replay."""
        grouped, items = self._pending, self._pending_items
        if self._spool is None:
            await self._write_with_retry(grouped)
        elif not await self._write_or_spool(grouped):
            return False
        self._pending, self._pending_rows, self._pending_items = {}, 0, 0
        async with self._progress:
            self._committed += items
            self._progress.notify_all()
        return True

    def _waits_for_replay(self) -> bool:
        """The spool has no room for the pending rows: must they wait rather than be dropped?

        While the database answers, yes: the replay is making room, and they are written in
        order after it.  During an outage they wait for the next replay attempt (the
        database may be back already); if that fails too, they are dropped (counted).  At
        shutdown nothing waits.
        """
        if self._stopping:
            return False
        if not self._db_down:
            self._defer_mark = None
            return True
        if self._defer_mark is None:
            self._defer_mark = self._replay_failures
        if self._defer_mark == self._replay_failures:
            return True
        self._defer_mark = None
        return False

    async def _wait_for_replay(self) -> None:
        """Until the next replay attempt is due (at once while the database answers), or
        until someone (stop) wants the loop's attention."""
        wait_s = self._until_replay()
        if not wait_s:
            await asyncio.sleep(0)
            return
        self._wakeup.clear()
        sleeper = asyncio.ensure_future(self._clock.sleep(wait_s))
        waker = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    def _count_written(
        self,
        grouped: GroupedRows,
        refused: Mapping[str, tuple[list[Any], str]],
        duplicates: Mapping[str, int],
    ) -> None:
        for table, rows in grouped.items():
            n = len(rows) - len(refused[table][0]) if table in refused else len(rows)
            # written: what the database took, duplicates it skipped included (a subset)
            skipped = min(n, duplicates.get(table, 0))
            self.rows_written[table] = self.rows_written.get(table, 0) + n
            self._metrics.rows_written.labels(table).inc(n)
            if skipped:
                self.rows_duplicate[table] = self.rows_duplicate.get(table, 0) + skipped
                self._metrics.rows_duplicate.labels(table).inc(skipped)

    async def _write_or_spool(self, grouped: GroupedRows) -> bool:
        """Write ``grouped`` now if nothing is spooled and the database answers; else spool it
        (or drop it, counted, when the spool is full).  False: it must wait for the replay.

        While the spool holds anything, new rows go behind it (order).
        """
        assert self._spool is not None
        if not self._spool.pending():
            try:
                await self._write_once(grouped)
            except _TransientWriteError:
                pass
            else:
                return True
        if self._spool_batch(grouped, drop_when_full=False):
            return True
        if self._waits_for_replay():
            return False
        self._spool_batch(grouped)  # no room: counted as dropped
        return True

    def _spool_batch(self, grouped: GroupedRows, *, drop_when_full: bool = True) -> bool:
        """Append ``grouped`` to the spool.  False only when ``drop_when_full`` is off and the
        spool has no room behind what it holds: nothing is counted then, the caller keeps
        the rows.  True otherwise: stored, or dropped and counted."""
        assert self._spool is not None
        handled = True
        try:
            self._spool.append(grouped, drop_when_full=drop_when_full)
        except SpoolNoRoom:
            handled = False
        except Exception as exc:
            # the spool counts a full or failing disk itself; this is a closed or broken spool
            self._count_dropped(grouped, f"spool unusable ({type(exc).__name__})")
        if self._replay_at < self._clock.monotonic():
            self._schedule_replay()
        return handled

    def _spool_what_is_left(self, message: str) -> bool:
        """At the end: pending and queued rows go to the spool.  False without a spool."""
        if self._spool is None:
            return False
        grouped = dict(self._pending)
        while True:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            for table, rows in item.items():
                if rows:
                    grouped.setdefault(table, []).extend(rows)
        self._pending, self._pending_rows, self._pending_items = {}, 0, 0
        total = sum(len(r) for r in grouped.values())
        if total:
            self._spool_batch(grouped)
            self._log.warning(
                message,
                rows=total,
                spool=str(self._spool.directory),
            )
        return True

    def _count_dropped(self, grouped: GroupedRows, reason: str) -> None:
        for table, rows in grouped.items():
            if rows:
                self._metrics.rows_dropped.labels(table).inc(len(rows))
        self._log.error("rows dropped", reason=reason, rows=sum(len(r) for r in grouped.values()))

    # -- replaying the spool ----------------------------------------------------------------

    def _replay_due(self) -> bool:
        return (
            self._spool is not None
            and self._spool.pending()
            and self._clock.monotonic() >= self._replay_at
        )

    def _until_replay(self) -> float | None:
        """Seconds until the next replay attempt; None when nothing is spooled."""
        if self._spool is None or not self._spool.pending():
            return None
        return max(0.0, self._replay_at - self._clock.monotonic())

    def _schedule_replay(self) -> None:
        self._replay_at = self._clock.monotonic() + self._backoff(self._replay_attempt)
        self._replay_attempt += 1

    async def _replay_one(self) -> None:
        """Write the oldest spooled record; on a transient failure wait (backoff) and retry."""
        assert self._spool is not None
        record = self._spool.peek()
        if record is None:
            return  # only corrupt records were left; peek() skipped them with a warning
        record_id, batch = record
        grouped: GroupedRows = {table: list(rows) for table, rows in batch.items()}
        try:
            await self._write_once(grouped)
        except _TransientWriteError:
            self._replay_failures += 1
            self._schedule_replay()
            return
        self._spool.ack(record_id)
        self._replay_attempt = 0
        self._replay_at = 0.0
        self.rows_replayed += sum(len(r) for r in grouped.values())
        if not self._spool.pending():
            self._log.info("spool replayed into the database", rows=self.rows_replayed)

    async def _write_once(self, grouped: GroupedRows, outage: str = OUTAGE_WITH_SPOOL) -> None:
        """One attempt: when it returns, ``grouped`` is written (refused rows set aside).

        What a retry can fix raises :class:`_TransientWriteError` (``outage`` is logged once
        per outage); rows refused for their values are isolated and kept aside instead.
        """
        started = self._clock.monotonic()
        try:
            await self._ensure_prepared()
            duplicates: dict[str, int] = {}
            refused = await self._write_isolating(grouped, duplicates)
        except Exception as exc:
            if not _is_transient(exc):
                raise
            self._metrics.db_errors.inc()
            if not self._db_down:
                self._db_down = True
                self._metrics.database_writable.set(0)
                total = sum(len(r) for r in grouped.values())
                if isinstance(exc, ProgrammingError):
                    self._log.error(SCHEMA_HINT, error=_short(exc), rows=total)
                else:
                    self._log.warning(outage, error=_short(exc), rows=total)
            raise _TransientWriteError from exc
        self._metrics.db_write_latency.observe(self._clock.monotonic() - started)
        if self._db_down:
            self._db_down = False
            self._metrics.database_writable.set(1)
            self._log.info("database writes succeed again")
        for table, (rows, reason) in refused.items():
            self._set_aside(table, rows, reason)
        self._count_written(grouped, refused, duplicates)

    async def _ensure_prepared(self) -> None:
        if self._prepare is None:
            return
        try:
            await self._prepare()
        except StorageError as exc:
            raise _NotPrepared(str(exc)) from exc
        self._prepare = None

    async def _write_isolating(
        self, grouped: GroupedRows, duplicates: dict[str, int]
    ) -> dict[str, tuple[list[Any], str]]:
        """Write ``grouped`` in one transaction; if the database refuses rows for their
        values, write table by table, halving a refused part until each refused row stands
        alone.  ``duplicates`` gets, per table, the rows committed as duplicates.

        Returns the refused rows per table with the first reason.  A transient failure on
        the way raises: the whole flush is then retried or spooled (what was committed
        already is not stored twice: inserts are idempotent).
        """
        try:
            _add(duplicates, await self._write_limited(grouped))
            return {}
        except Exception as exc:
            if not _is_refused_for_values(exc):
                raise
        refused: dict[str, tuple[list[Any], str]] = {}
        for table in ordered_tables(set(grouped)):
            await self._bisect(table, grouped[table], refused, duplicates)
        return refused

    async def _bisect(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        refused: dict[str, tuple[list[Any], str]],
        duplicates: dict[str, int],
    ) -> None:
        if not rows:
            return
        try:
            _add(duplicates, await self._write_limited({table: rows}))
            return
        except Exception as exc:
            if not _is_refused_for_values(exc):
                raise
            if len(rows) == 1:
                kept, _ = refused.setdefault(table, ([], _short(exc)))
                kept.append(rows[0])
                return
        middle = len(rows) // 2
        await self._bisect(table, rows[:middle], refused, duplicates)
        await self._bisect(table, rows[middle:], refused, duplicates)

    def _set_aside(self, table: str, rows: list[Any], reason: str) -> None:
        if self._rejected is not None:
            self._rejected.add(table, rows, reason)
            return
        self._metrics.rows_rejected.labels(table).inc(len(rows))
        self._metrics.rows_dropped.labels(table).inc(len(rows))
        self._log.error(
            "the database refused rows and there is nowhere to keep them; dropped",
            table=table,
            rows=len(rows),
            reason=reason,
        )

    async def _write_with_retry(self, grouped: GroupedRows) -> None:
        """Without a spool: keep ``grouped`` in memory and retry until it is written."""
        attempt = 0
        while True:
            try:
                await self._write_once(grouped, OUTAGE_WITHOUT_SPOOL)
            except _TransientWriteError:
                await self._clock.sleep(self._backoff(attempt))
                attempt += 1
                continue
            return

    def _backoff(self, attempt: int) -> float:
        """Full jitter over a doubling window, capped at ``retry_backoff_max``."""
        return self._rng.uniform(0.0, min(self._backoff_max, RETRY_BACKOFF_BASE * 2.0**attempt))

    async def _write_limited(self, grouped: RowBatch) -> dict[str, int]:
        """:meth:`_write_batch` within ``write_timeout`` (then TimeoutError: transient).

        The limit runs on the event loop's clock, not the injected one: it guards against a
        real server that hangs, and a fake clock jumps ahead while real I/O is pending.
        Cancelling the write closes its connection; the pool opens a new one.
        """
        async with asyncio.timeout(self._write_timeout):
            return await self._write_batch(grouped)

    async def _write_batch(self, grouped: RowBatch) -> dict[str, int]:
        """Write all tables of one flush in one transaction, charge points first; → the
        rows per table the database skipped as duplicates (counted once committed)."""
        duplicates: dict[str, int] = {}
        async with self._engine.begin() as conn:
            for table in ordered_tables(set(grouped)):
                duplicates[table] = await write_rows(conn, table, grouped[table])
        return duplicates

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


def _add(total: dict[str, int], more: Mapping[str, int]) -> None:
    for table, n in more.items():
        total[table] = total.get(table, 0) + n


class _TransientWriteError(Exception):
    """A write failed in a way a retry can fix (already counted and logged)."""


class _NotPrepared(Exception):
    """The ``prepare`` step (e.g. migrations) could not run yet."""


def _is_transient(exc: BaseException) -> bool:
    """Errors a retry can fix: the connection, the server, a lock, a timeout, a schema that
    does not match yet (ProgrammingError: a migration fixes it, other values would not)."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | _NotPrepared):
        return True
    if isinstance(exc, ProgrammingError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OSError | TimeoutError)


def _is_refused_for_values(exc: BaseException) -> bool:
    """The database refused rows for their values (a constraint, a value its column cannot
    hold): a retry would be refused too, other rows are taken.  Anything else that is not
    transient is a bug in the writer or the rows' rendering, not a reason to set rows aside."""
    return isinstance(exc, IntegrityError | DataError) and not _is_transient(exc)


def _short(exc: BaseException) -> str:
    inner: BaseException = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0][:200]}" if text else type(inner).__name__
