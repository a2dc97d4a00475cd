"""cancel_and_wait and run_to_completion: a cancellation of the caller is never lost."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from charged.tasks import cancel_and_wait, run_to_completion


class SlowToStop:
    """A task that, once cancelled, finishes only when ``release`` is set; it either ends
    cancelled or swallows every cancellation (that one, and one passed on by a waiter)."""

    def __init__(self, *, swallow: bool = False) -> None:
        self.swallow = swallow
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = False

    async def run(self) -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            if not self.swallow:
                raise
        while not self.release.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # as some libraries do
                await self.release.wait()
        self.finished = True
        return "swallowed"


async def test_the_tasks_own_cancellation_ends_there() -> None:
    task = asyncio.create_task(SlowToStop().run())
    await asyncio.sleep(0)
    await cancel_and_wait(task)  # no CancelledError: it was the task's
    assert task.cancelled()


async def test_a_done_task_and_its_failure() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(fails())
    await asyncio.wait({task})
    with pytest.raises(ValueError, match="boom"):
        await cancel_and_wait(task)
    ok = asyncio.create_task(asyncio.sleep(0))
    await ok
    await cancel_and_wait(ok)


@pytest.mark.parametrize("swallow", [False, True])
async def test_cancelling_the_caller_while_it_waits_propagates(swallow: bool) -> None:
    """The old idiom (cancel, then suppress CancelledError around ``await task``) returned
    normally here: the caller's cancellation was lost in both cases."""
    inner = SlowToStop(swallow=swallow)
    task = asyncio.create_task(inner.run())
    caller = asyncio.create_task(cancel_and_wait(task))
    await inner.cancelled.wait()
    caller.cancel()  # the caller is cancelled while it waits for the task
    if swallow:
        await asyncio.sleep(0)
        assert not caller.done()  # it still waits for the task to finish ...
        inner.release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller  # ... and then raises, even though the task swallowed its own
    assert caller.cancelled() and task.done()
    assert inner.finished is swallow


async def test_cleanup_after_an_earlier_cancellation_is_not_cut() -> None:
    """A caller already cancelled (cleanup in a finally) may still end its tasks."""
    inner = SlowToStop(swallow=True)
    ended: list[str] = []

    async def owner() -> None:
        task = asyncio.create_task(inner.run())
        try:
            await asyncio.Event().wait()
        finally:
            inner.release.set()
            await cancel_and_wait(task)  # returns: the cancellation was delivered already
            ended.append("cleaned up")

    running = asyncio.create_task(owner())
    await asyncio.sleep(0)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert ended == ["cleaned up"] and inner.finished


async def test_run_to_completion_finishes_the_work_then_raises_the_cancellation() -> None:
    step = asyncio.Event()
    done: list[str] = []
    told: list[str] = []

    async def migrate() -> str:
        await step.wait()
        done.append("migrated")
        return "head"

    caller = asyncio.create_task(run_to_completion(migrate(), on_cancel=lambda: told.append("x")))
    await asyncio.sleep(0)
    caller.cancel()
    await asyncio.sleep(0)
    caller.cancel()  # a second signal: still one notice, still not cut
    await asyncio.sleep(0)
    assert not caller.done() and not done
    step.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert done == ["migrated"] and told == ["x"]


async def test_run_to_completion_uncancelled_returns_and_raises_as_the_work() -> None:
    async def answer() -> int:
        return 42

    async def fails() -> int:
        raise ValueError("schema")

    assert await run_to_completion(answer()) == 42
    with pytest.raises(ValueError, match="schema"):
        await run_to_completion(fails())
