"""Ending background tasks without losing a cancellation.

The usual idiom ::

    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

swallows two different cancellations alike: the task's own (wanted) and the caller's (if the
caller is cancelled while it waits, the CancelledError it receives is suppressed too, and the
caller goes on as if nobody had asked it to stop).  :func:`cancel_and_wait` tells them apart
with :meth:`asyncio.Task.cancelling`, comparing it with its value on entry as
``asyncio.timeout()`` does.  :func:`run_to_completion` is the other way round: work that must
not be cut (a migration) finishes, and the caller's cancellation is raised after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it has finished.

    The task's own cancellation ends here; an exception it raised instead propagates (as
    ``await task`` would raise it).  If the *calling* task is cancelled while it waits (a
    cancellation requested after this call began), CancelledError is raised once the task has
    finished, even when the task swallowed its cancellation or returned normally.  A caller
    that was already being cancelled when it called (cleanup in a ``finally``) is not made to
    raise again for that earlier request.
    """
    current = asyncio.current_task()
    cancelling_before = current.cancelling() if current is not None else 0

    def caller_cancelled() -> bool:
        return current is not None and current.cancelling() > cancelling_before

    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if caller_cancelled():
            raise
        return
    except BaseException:
        if caller_cancelled():
            raise asyncio.CancelledError from None
        raise
    if caller_cancelled():
        raise asyncio.CancelledError


async def run_to_completion(
    aw: Awaitable[T], *, on_cancel: Callable[[], object] | None = None
) -> T:
    """Await ``aw`` to its end even if the caller is cancelled meanwhile, then raise that
    cancellation (it is delayed, never lost).  For work that must not be cut halfway, such as
    a schema migration on a database whose DDL is not transactional (MySQL).

    ``on_cancel`` is called once, when the first cancellation arrives (to log that the stop
    waits for this work).  If ``aw`` fails after the caller was cancelled, CancelledError is
    raised with the failure as its cause.
    """
    task = asyncio.ensure_future(aw)
    cancelled = False
    while not task.done():
        try:
            # wait() does not pass a cancellation of its caller on to the task
            await asyncio.wait({task})
        except asyncio.CancelledError:
            if not cancelled and on_cancel is not None:
                on_cancel()
            cancelled = True
    if cancelled:
        failure = None if task.cancelled() else task.exception()
        raise asyncio.CancelledError from failure
    return task.result()
