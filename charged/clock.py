"""Injectable time.

Every component that waits or reads the time takes a :class:`Clock`, so tests drive time
with :class:`FakeClock` instead of sleeping.  ``time()`` is wall-clock epoch seconds (UTC),
``monotonic()`` is for measuring durations and deadlines.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time as _time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (UTC)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock (returns at once for ``seconds <= 0``)."""

    def utcnow(self) -> datetime:
        """``time()`` as an aware UTC datetime."""


class SystemClock:
    """The real clock: wall time from the OS, monotonic time from the event loop."""

    def time(self) -> float:
        return _time.time()

    def monotonic(self) -> float:
        return _time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)


class FakeClock:
    """A clock that only moves when told to.

    With ``auto_advance=True`` (the default) a ``sleep`` that nobody else wakes moves the
    clock forward to the earliest pending deadline as soon as the event loop has nothing
    else to run, so code that sleeps for hours finishes in milliseconds while keeping the
    order of wake-ups.  With ``auto_advance=False`` only :meth:`advance` moves time.
    """

    def __init__(self, start: float = 1_767_225_600.0, *, auto_advance: bool = True) -> None:
        # default start: 2026-01-01T00:00:00Z
        self._now = float(start)
        self._mono = 1_000.0
        self._auto = auto_advance
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self._now, UTC)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), fut))
        if self._auto and (self._driver is None or self._driver.done()):
            self._driver = asyncio.get_running_loop().create_task(self._drive())
        await fut

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking sleepers in deadline order."""
        target = self._mono + seconds
        await _settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline = self._sleepers[0][0]
            self._set(deadline)
            self._wake_due()
            await _settle()
        self._set(target)

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock (``time``, ``utcnow``) by ``seconds``, back when negative, as
        NTP or a person setting the date does; the monotonic clock and sleepers stay."""
        self._now += seconds

    def _set(self, mono: float) -> None:
        if mono > self._mono:
            self._now += mono - self._mono
            self._mono = mono

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def _drive(self) -> None:
        # Runs while anyone sleeps: once the loop is idle, jump to the next deadline.
        while self._sleepers:
            await _settle()
            self._sleepers = [s for s in self._sleepers if not s[2].done()]
            heapq.heapify(self._sleepers)
            if not self._sleepers:
                break
            self._set(self._sleepers[0][0])
            self._wake_due()


async def _settle(rounds: int = 20) -> None:
    """Let every ready task run until the loop has (nearly) nothing left to do."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def sleep_or_stop(clock: Clock, seconds: float, stop: asyncio.Event) -> None:
    """Sleep ``seconds`` on ``clock``, or less if ``stop`` is set meanwhile."""
    if seconds <= 0 or stop.is_set():
        return
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, stopper):
            task.cancel()
        # let the cancelled waiters finish here rather than leak past the caller
        await asyncio.gather(sleeper, stopper, return_exceptions=True)
