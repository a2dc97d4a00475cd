"""The writer's intake: items taken from the queue, grouped by table, and when to flush them.

Producers ``await queue.put(batch)``; the accumulator takes items and groups their rows by
table until ``batch_size`` rows are pending, ``flush_interval`` seconds passed since the first
pending row arrived, the writer stops, or someone waits in ``wait_flushed`` for pending items.
It counts items as they leave the queue (``taken``) and once their rows are safe
(``committed``), so a waiter knows when everything queued before it is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from charged.clock import Clock
from charged.metrics import Metrics
from charged.storage.writes import RowBatch

GroupedRows = dict[str, list[Mapping[str, Any]]]


class Accumulator:
    def __init__(
        self,
        queue: asyncio.Queue[RowBatch],
        *,
        batch_size: int,
        flush_interval: float,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval}")
        self.queue = queue
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._clock = clock
        self._metrics = metrics
        # rows taken from the queue, not yet committed (or spooled)
        self.pending: GroupedRows = {}
        self._pending_rows = 0
        self._pending_items = 0
        self._deadline = 0.0
        # items taken from the queue / items whose rows are committed, since start
        self.taken = 0
        self.committed = 0
        self._flush_requested_upto = 0
        self.stopping = False  # take what is queued, wait for nothing more
        self.wakeup = asyncio.Event()  # stop() or wait_flushed() wants the loop's attention

    # -- taking items -----------------------------------------------------------------------

    async def next_item(self, wait_s: float | None) -> RowBatch | None:
        """The next queue item, or None when the timeout passed or someone woke us up."""
        try:
            return self._get_nowait()
        except asyncio.QueueEmpty:
            pass
        if self.stopping or self._flush_due_by_request():
            return None
        if wait_s is not None and wait_s <= 0:
            return None
        self.wakeup.clear()
        getter = asyncio.ensure_future(self._get())
        waiters: set[asyncio.Future[Any]] = {getter, asyncio.ensure_future(self.wakeup.wait())}
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

    # taken counts in the same step that removes the item from the queue, so wait_flushed()
    # never misses an item that left the queue but was not yet added to the pending batch.
    def _get_nowait(self) -> RowBatch:
        item = self.queue.get_nowait()
        self.taken += 1
        return item

    async def _get(self) -> RowBatch:
        item = await self.queue.get()
        self.taken += 1
        return item

    def take(self, item: RowBatch) -> None:
        for table, rows in item.items():
            if rows:
                self.pending.setdefault(table, []).extend(rows)
                self._pending_rows += len(rows)
        self._pending_items += 1
        self._metrics.queue_depth.set(self.queue.qsize())

    def take_first(self, item: RowBatch) -> None:
        """Take ``item`` into an empty batch: the flush interval starts now."""
        self.take(item)
        self._deadline = self._clock.monotonic() + self._flush_interval

    def drain_ready(self) -> None:
        """Take what is already queued, up to the batch size, without waiting."""
        while self._pending_rows < self._batch_size:
            try:
                item = self._get_nowait()
            except asyncio.QueueEmpty:
                return
            self.take(item)

    def take_all_left(self) -> GroupedRows:
        """At the end: the pending rows and everything still queued, emptied out."""
        grouped = dict(self.pending)
        while True:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            for table, rows in item.items():
                if rows:
                    grouped[table] = [*grouped.get(table, []), *rows]
        self.pending, self._pending_rows, self._pending_items = {}, 0, 0
        return grouped

    # -- when to flush ----------------------------------------------------------------------

    def request_flush(self) -> int:
        """Flush what is queued now, without waiting for the interval; → the ``committed``
        count that means all of it is written."""
        target = self.taken + self.queue.qsize()
        self._flush_requested_upto = max(self._flush_requested_upto, target)
        self.wakeup.set()
        return target

    def _flush_due_by_request(self) -> bool:
        # someone waits in wait_flushed() for items that are pending: flush without waiting
        return bool(self._pending_items) and self.committed < self._flush_requested_upto

    def should_flush(self) -> bool:
        return (
            self._pending_rows >= self._batch_size
            or self._clock.monotonic() >= self._deadline
            or self.stopping
            or self._flush_due_by_request()
        )

    def until_deadline(self) -> float:
        return self._deadline - self._clock.monotonic()

    def flushed(self) -> int:
        """The pending rows are written (or spooled): empty the batch; → its items."""
        items = self._pending_items
        self.pending, self._pending_rows, self._pending_items = {}, 0, 0
        self.committed += items
        return items
