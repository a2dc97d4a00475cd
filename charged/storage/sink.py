"""The writer's database side: one flush in one transaction, and what a failure means.

What a retry can fix (connection, server, lock, a write that hangs past ``write_timeout``, a
statement the schema does not take yet) raises :class:`TransientWriteError`, logged once per
outage.  A row the database refuses for its values (IntegrityError, DataError) would be
refused forever: the batch is split, table by table and then in halves, until the refused rows
are isolated; the others are written and the refused ones go to
:class:`~charged.storage.rejected.RejectedRows`.  Any other failure is a bug, not bad data,
and is raised as it is.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

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

from charged.clock import Clock
from charged.metrics import Metrics
from charged.storage.accumulator import GroupedRows
from charged.storage.engine import StorageError
from charged.storage.rejected import RejectedRows
from charged.storage.writes import RowBatch, ordered_tables, write_rows

RETRY_BACKOFF_BASE = 0.5
OUTAGE_WITH_SPOOL = "database write failed; spooling rows to disk until it answers"
OUTAGE_WITHOUT_SPOOL = "database write failed; keeping the rows and retrying"
SCHEMA_HINT = (
    "the database does not take the writer's statements (a schema older or newer than this "
    "version?); rows are kept until it does: run `charged db upgrade`"
)

WriteBatch = Callable[[RowBatch], Awaitable[dict[str, int]]]
Refused = dict[str, tuple[list[Any], str]]  # table -> (refused rows, the first reason)


class Backoff:
    """Full jitter over a doubling window, capped at ``cap`` seconds."""

    def __init__(self, rng: random.Random, cap: float) -> None:
        self._rng = rng
        self._cap = cap

    def __call__(self, attempt: int) -> float:
        return self._rng.uniform(0.0, min(self._cap, RETRY_BACKOFF_BASE * 2.0**attempt))


async def write_flush(engine: AsyncEngine, grouped: RowBatch) -> dict[str, int]:
    """Write all tables of one flush in one transaction, charge points first; → the rows per
    table the database skipped as duplicates (counted once committed)."""
    duplicates: dict[str, int] = {}
    async with engine.begin() as conn:
        for table in ordered_tables(set(grouped)):
            duplicates[table] = await write_rows(conn, table, grouped[table])
    return duplicates


class DatabaseSink:
    def __init__(
        self,
        write_batch: WriteBatch,
        *,
        clock: Clock,
        metrics: Metrics,
        logger: Any,
        backoff: Backoff,
        rejected: RejectedRows | None,
        write_timeout: float,
        prepare: Callable[[], Awaitable[None]] | None,
    ) -> None:
        """``write_batch``: one transaction (:func:`write_flush`, or a test's stand-in)."""
        if write_timeout <= 0:
            raise ValueError(f"write_timeout must be positive, got {write_timeout}")
        self._write_batch = write_batch
        self._clock = clock
        self._metrics = metrics
        self._log = logger
        self._backoff = backoff
        self._rejected = rejected
        self._write_timeout = write_timeout
        self._prepare = prepare
        self.db_down = False  # between a failed write and the next successful one
        self._metrics.database_writable.set(1)  # not known to be down until a write fails
        self.rows_written: dict[str, int] = {}
        # rows the database skipped: one with the same key was stored already
        self.rows_duplicate: dict[str, int] = {}

    async def write_once(self, grouped: GroupedRows, outage: str = OUTAGE_WITH_SPOOL) -> None:
        """One attempt: when it returns, ``grouped`` is written (refused rows set aside).

        What a retry can fix raises :class:`TransientWriteError` (``outage`` is logged once
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
            if not self.db_down:
                self.db_down = True
                self._metrics.database_writable.set(0)
                total = sum(len(r) for r in grouped.values())
                if isinstance(exc, ProgrammingError):
                    self._log.error(SCHEMA_HINT, error=short_error(exc), rows=total)
                else:
                    self._log.warning(outage, error=short_error(exc), rows=total)
            raise TransientWriteError from exc
        self._metrics.db_write_latency.observe(self._clock.monotonic() - started)
        if self.db_down:
            self.db_down = False
            self._metrics.database_writable.set(1)
            self._log.info("database writes succeed again")
        for table, (rows, reason) in refused.items():
            self._set_aside(table, rows, reason)
        self._count_written(grouped, refused, duplicates)

    async def write_with_retry(self, grouped: GroupedRows) -> None:
        """Without a spool: keep ``grouped`` in memory and retry until it is written."""
        attempt = 0
        while True:
            try:
                await self.write_once(grouped, OUTAGE_WITHOUT_SPOOL)
            except TransientWriteError:
                await self._clock.sleep(self._backoff(attempt))
                attempt += 1
                continue
            return

    async def _ensure_prepared(self) -> None:
        if self._prepare is None:
            return
        try:
            await self._prepare()
        except StorageError as exc:
            raise _NotPrepared(str(exc)) from exc
        self._prepare = None

    async def _write_isolating(self, grouped: GroupedRows, duplicates: dict[str, int]) -> Refused:
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
        refused: Refused = {}
        for table in ordered_tables(set(grouped)):
            await self._bisect(table, grouped[table], refused, duplicates)
        return refused

    async def _bisect(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        refused: Refused,
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
                kept, _ = refused.setdefault(table, ([], short_error(exc)))
                kept.append(rows[0])
                return
        middle = len(rows) // 2
        await self._bisect(table, rows[:middle], refused, duplicates)
        await self._bisect(table, rows[middle:], refused, duplicates)

    async def _write_limited(self, grouped: RowBatch) -> dict[str, int]:
        """``write_batch`` within ``write_timeout`` (then TimeoutError: transient).

        The limit runs on the event loop's clock, not the injected one: it guards against a
        real server that hangs, and a fake clock jumps ahead while real I/O is pending.
        Cancelling the write closes its connection; the pool opens a new one.
        """
        async with asyncio.timeout(self._write_timeout):
            return await self._write_batch(grouped)

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

    def _count_written(
        self, grouped: GroupedRows, refused: Refused, duplicates: Mapping[str, int]
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


def _add(total: dict[str, int], more: Mapping[str, int]) -> None:
    for table, n in more.items():
        total[table] = total.get(table, 0) + n


class TransientWriteError(Exception):
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


def short_error(exc: BaseException) -> str:
    inner: BaseException = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0][:200]}" if text else type(inner).__name__
