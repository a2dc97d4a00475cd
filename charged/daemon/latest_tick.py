"""The newest tick result, for a loop of its own that works on ticks (a tick consumer)."""

from __future__ import annotations

import asyncio

from charged.collector.supervisor import TickResult


class LatestTick:
    """The newest tick result, for a loop of its own that works on ticks: :meth:`put` is a
    tick consumer that never waits; :meth:`get` waits for a tick newer than the last one got.
    A loop slower than the ticks skips the ones it missed (counted in :attr:`skipped`) rather
    than falling behind."""

    def __init__(self) -> None:
        self._result: TickResult | None = None
        self._fresh = asyncio.Event()
        self.skipped = 0

    def put(self, result: TickResult) -> None:
        if self._fresh.is_set():
            self.skipped += 1
        self._result = result
        self._fresh.set()

    async def get(self) -> TickResult:
        await self._fresh.wait()
        self._fresh.clear()
        assert self._result is not None
        return self._result
