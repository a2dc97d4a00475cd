"""A check's time limit on the injected clock (shared by :mod:`charged.check` and the checks
in modules of their own, e.g. :mod:`charged.check_meters`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from charged.clock import Clock

T = TypeVar("T")


class CheckTimeout(Exception):
    """A check did not finish within its time limit."""


async def within(clock: Clock, seconds: float, work: Awaitable[T]) -> T:
    """``work``'s result, or :class:`CheckTimeout` once ``seconds`` pass on ``clock``."""
    task = asyncio.ensure_future(work)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # we are being cancelled: take the work down with us
        task.cancel()
        timer.cancel()
        raise
    timer.cancel()
    if task.done():
        return task.result()
    task.cancel()
    # asyncio.wait never raises the task's CancelledError, so our own cancellation still works
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: it is replaced by the timeout
    raise CheckTimeout
