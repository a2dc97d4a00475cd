"""The daemon's stop: drain the writer, spool the rest, end its tasks, release everything.

:meth:`Shutdown.close` drains what is queued to the database for up to
``shutdown.drain_timeout`` seconds and spools the rest; :meth:`Shutdown.abort` (a second
signal) spools at once.  Mixed into :class:`~charged.daemon.service.Daemon`, which holds
the state.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.config import Settings
from charged.ops.sdnotify import SystemdNotifier, TickNotifier
from charged.ops.server import OpsServer
from charged.storage.collector_lock import CollectorLock
from charged.storage.spool import Spool
from charged.storage.writer import BatchWriter
from charged.tasks import cancel_and_wait


class Shutdown:
    """The Daemon's close and abort (see the module's docstring)."""

    # the Daemon's state these methods use (set in Daemon.__init__ and Daemon.start)
    settings: Settings
    engine: AsyncEngine | None
    writer: BatchWriter | None
    spool: Spool | None
    ops: OpsServer | None
    _log: Any
    _closed: bool
    _ticks: TickNotifier
    _notifier: SystemdNotifier
    _lock: CollectorLock | None
    _session: aiohttp.ClientSession | None
    _fsync_task: asyncio.Task[None] | None
    _stored_tasks: set[asyncio.Task[None]]
    _tasks: list[asyncio.Task[None]]
    _tasks_stop: asyncio.Event
    _writer_task: asyncio.Task[None] | None
    _abort: asyncio.Event

    def abort(self) -> None:
        """Stop now: cut the tick short, spool what is not written (a second signal)."""
        if not self._abort.is_set():
            self._log.warning("stopping now: what is not written goes to the spool")
        self._abort.set()

    async def close(self, drain_timeout: float | None = None) -> None:
        """Drain what is queued to the database (up to ``drain_timeout``, default from the
        config), spool the rest, then release everything.  Safe to call more than once.

        Cancelled while it drains, it spools the rest at once (as :meth:`abort`), releases
        everything all the same, and then raises CancelledError."""
        if self._closed:
            return
        self._closed = True
        if drain_timeout is None:
            drain_timeout = self.settings.shutdown.drain_timeout
        self._ticks.stopping()
        if self.writer is not None:
            self._log.info("stopping: writing what is queued", drain_timeout_s=drain_timeout)
        # each step runs even if one before it failed or was cancelled; last in, first out
        async with contextlib.AsyncExitStack() as cleanup:
            cleanup.callback(self._notifier.close)
            if self.engine is not None:
                cleanup.push_async_callback(self.engine.dispose)
            if self._lock is not None:
                # after the writer's last commit, before the engine goes
                cleanup.push_async_callback(self._lock.release)
            if self._session is not None:
                cleanup.push_async_callback(self._session.close)
            if self.ops is not None:
                cleanup.push_async_callback(self.ops.stop)
            if self.spool is not None:
                cleanup.callback(self.spool.close)
            if self._fsync_task is not None:
                # it fsyncs once more on its way out
                cleanup.push_async_callback(cancel_and_wait, self._fsync_task)
            cleanup.push_async_callback(self.stop_tasks)
            cleanup.callback(self._cancel_stored_tasks)
            await self._stop_writer(drain_timeout)

    def _cancel_stored_tasks(self) -> None:
        for task in list(self._stored_tasks):
            task.cancel()

    async def stop_tasks(self) -> None:
        """End the daemon's tasks beside the tick (at close, or for a caller that wants to run
        e.g. the tracker's update/reconcile itself without a second pass racing it).  Each is
        told to stop, then cancelled; a failure of one is logged, not raised: the rows are
        what the close must save."""
        tasks, self._tasks = self._tasks, []
        self._tasks_stop.set()
        for task in tasks:
            task.cancel()  # all at once: a cancellation of our caller leaves none running
        for task in tasks:
            try:
                # a tracker pass cut short is redone at the next start
                await cancel_and_wait(task)
            except Exception as exc:
                self._log.error("daemon task failed", task=task.get_name(), error=repr(exc))

    async def _stop_writer(self, drain_timeout: float) -> None:
        task, writer = self._writer_task, self.writer
        if writer is None or task is None:
            return
        if task.done():
            await writer.stop(timeout=0)  # a writer that failed keeps what was queued since
            return
        draining = asyncio.ensure_future(writer.stop(timeout=drain_timeout))
        aborted = asyncio.ensure_future(self._abort.wait())
        try:
            await asyncio.wait({draining, aborted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            aborted.cancel()
            if not draining.done():
                # a second signal (or our caller cancelled) while draining: spool it now
                await writer.stop(timeout=0)
            await draining
        # a failure of the writer was raised by run() already; here only the end matters
        with contextlib.suppress(Exception):
            await cancel_and_wait(task)
