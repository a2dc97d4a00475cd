"""The daemon: vendor client, the tick (supervisor), queue, batch writer, disk spool, ops
server with the control API, the daemon's tasks beside the tick (the session tracker) and
systemd notifications, started and stopped in the right order.  ``charged run`` and
``charged demo`` both use it.

Beside the tick, two ways in for another part (e.g. a balancer):

- a *tick consumer* (:meth:`Daemon.add_tick_consumer`) is called with every tick's
  :class:`~charged.collector.supervisor.TickResult` (counts, and the statuses of the chargers
  that answered), in the order added, after the tick's rows are queued.  It is awaited before
  the next tick is scheduled, so one that takes long should hand the result to a task of its
  own (:class:`~charged.daemon.latest_tick.LatestTick` keeps the newest);
- a *daemon task* (:meth:`Daemon.add_task`) is a loop ``run(stop)`` started once the daemon
  is up (database, spool, writer, login) and ended at :meth:`Daemon.close` before the writer
  drains: ``stop`` is set and the task cancelled at once (what it was doing must be safe to
  cut short and redo at the next start, as the tracker's passes are).

Shutdown (:meth:`Daemon.close`): STOPPING=1, the supervisor has finished its tick, the daemon
tasks end, the writer drains the queue to the database for up to ``shutdown.drain_timeout``
seconds and spools the rest, the spool is fsynced and closed, then the HTTP sessions and the
engine.  :meth:`Daemon.abort` (a second signal) cuts the tick short and spools at once.

This module builds the parts and runs the tick; the database at the start, each tick's
handling and the stop are the Daemon's bases in database_start.py, tick_safety.py and
shutdown.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime
from types import TracebackType
from typing import Any

import aiohttp
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.chargeamps.client import ChargeAmpsClient
from charged.clock import Clock, SystemClock
from charged.collector.supervisor import Supervisor, TickCallback
from charged.config import Settings
from charged.control.api import ControllerUnavailable, control_routes
from charged.control.audit import SqlAuditSink
from charged.control.operations import Controller
from charged.daemon.database_start import DatabaseStart
from charged.daemon.gc_policy import ticking_gc
from charged.daemon.shutdown import Shutdown
from charged.daemon.tick_safety import TickSafety
from charged.daemon.vendor import vendor_client, vendor_session
from charged.metrics import Metrics
from charged.ops.health import ReadinessState
from charged.ops.sdnotify import SystemdNotifier, TickNotifier
from charged.ops.server import OpsServer
from charged.sessions.tracker import SessionTracker
from charged.storage.collector_lock import CollectorAlreadyRunning, CollectorLock
from charged.storage.engine import create_engine
from charged.storage.rejected import RejectedRows
from charged.storage.retention import run_passes
from charged.storage.rollup import storage_pass
from charged.storage.spool import Spool
from charged.storage.writer import BatchWriter
from charged.storage.writes import RowBatch
from charged.tasks import cancel_and_wait

# who the audit table names for changes made through the control API
CONTROL_API_ACTOR = "control-api"

# a loop beside the tick: runs until the event is set (see the module's docstring)
DaemonTask = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class Daemon(DatabaseStart, TickSafety, Shutdown):
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        on_tick: TickCallback | None = None,
        notifier: SystemdNotifier | None = None,
        logger: Any = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self._tick_consumers: list[TickCallback] = [] if on_tick is None else [on_tick]
        self._task_factories: list[tuple[str, DaemonTask]] = []
        self._log = logger or structlog.get_logger("charged")
        self._session: aiohttp.ClientSession | None = None
        self.engine: AsyncEngine | None = None
        self.client: ChargeAmpsClient | None = None
        self.writer: BatchWriter | None = None
        self.supervisor: Supervisor | None = None
        self.spool: Spool | None = None
        self.ops: OpsServer | None = None
        self.readiness = ReadinessState(interval=settings.collector.interval)
        self._notifier = notifier if notifier is not None else SystemdNotifier()
        self._ticks = TickNotifier(self._notifier)
        self._controller: Controller | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self.sessions: SessionTracker | None = None
        self._tasks_stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._task_failed = asyncio.Event()
        self._fsync_task: asyncio.Task[None] | None = None
        self._stored_tasks: set[asyncio.Task[None]] = set()
        self._last_safe_tick: float | None = None  # monotonic time the last tick was safe
        self._abort = asyncio.Event()
        self._closed = False
        self._lock: CollectorLock | None = None  # one collector per database
        self._lock_lost: CollectorAlreadyRunning | None = None
        self._lock_lost_event = asyncio.Event()
        self._latest_stored_tick: datetime | None = None  # the database's, at prepare
        self.queue: asyncio.Queue[RowBatch] = asyncio.Queue(maxsize=settings.writer.queue_size)

    def add_tick_consumer(self, consumer: TickCallback) -> None:
        """Call ``consumer`` with every tick's result, after those added before it."""
        self._tick_consumers.append(consumer)

    def add_task(self, name: str, run: DaemonTask) -> None:
        """Run ``run(stop)`` beside the tick from the end of :meth:`start` to :meth:`close`.
        Added after the start, it starts at once."""
        self._task_factories.append((name, run))
        if self.supervisor is not None and not self._closed:
            self._start_task(name, run)

    def _start_task(self, name: str, run: DaemonTask) -> None:
        task = asyncio.create_task(run(self._tasks_stop), name=name)
        task.add_done_callback(self._task_ended)
        self._tasks.append(task)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._task_failed.set()

    async def __aenter__(self) -> Daemon:
        try:
            await self.start()
        except BaseException:
            await self.close()  # e.g. the collector lock: held no longer than the start
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Database first (migrate, check), then the spool, then log in: a bad URL, a refused
        database login, a spool in use or a wrong password fails fast.  A database server
        that does not answer does not: ticks are spooled and the writer migrates and
        replays once it answers.  The ops server answers from here on."""
        s = self.settings
        self.engine = create_engine(s.database.url)
        prepared = await self._database_at_start()
        self.spool = Spool(
            s.spool.directory,
            max_bytes=s.spool.max_bytes,
            fsync_interval=s.spool.fsync_interval,
            clock=self.clock,
            metrics=self.metrics,
        )
        self.spool.open()
        self._fsync_task = asyncio.create_task(self.spool.run_fsync(), name="charged-spool-fsync")
        self._session = vendor_session(s)
        self.client = vendor_client(self._session, s, clock=self.clock, metrics=self.metrics)
        self.writer = BatchWriter(
            self.engine,
            self.queue,
            batch_size=s.writer.batch_size,
            flush_interval=s.writer.flush_interval,
            clock=self.clock,
            metrics=self.metrics,
            retry_backoff_max=s.writer.retry_backoff_max,
            write_timeout=s.writer.write_timeout,
            spool=self.spool,
            rejected=RejectedRows(s.spool.directory, clock=self.clock, metrics=self.metrics),
            prepare=None if prepared else self._prepare_later,
        )
        # the writer starts before the login: what an earlier run spooled is replayed now
        self._writer_task = asyncio.create_task(self.writer.run(), name="charged-writer")
        if s.ops.enabled:
            self.ops = OpsServer(
                metrics=self.metrics,
                readiness=self._readiness_state,
                clock=self.clock,
                host=s.ops.host,
                port=s.ops.port,
                extra_routes=control_routes(s.control, self._control_api_controller),
            )
            await self.ops.start()
        await self.client.login()
        self.supervisor = Supervisor(
            self.client,
            self.queue,
            interval=s.collector.interval,
            rediscover_every=s.collector.rediscover_every,
            allow_list=s.collector.charge_points,
            deadline_fraction=s.collector.deadline_fraction,
            clock=self.clock,
            metrics=self.metrics,
            on_tick=self._tick_done,
            organisation_id=s.api.organisation_id,
        )
        if self._latest_stored_tick is not None:
            self.supervisor.remember_tick_time(self._latest_stored_tick)
        if s.sessions.enabled:
            # charging_session, derived from the stored polls and reconciled with the vendor
            self.sessions = SessionTracker(
                self.engine,
                self.client,
                clock=self.clock,
                metrics=self.metrics,
                interval=s.collector.interval,
                update_every=s.sessions.update_interval,
                reconcile_every=s.sessions.reconcile_interval,
            )
            self._task_factories.insert(0, ("charged-sessions", self.sessions.run))
        one_pass = storage_pass(self.engine, s.retention, interval=s.collector.interval)
        if one_pass is not None:
            # 15-minute rollups of the polls, the retention of the raw rows and of the tables
            # without rollups, one pass after the other

            async def run_storage_passes(stop: asyncio.Event) -> None:
                assert one_pass is not None
                await run_passes(stop, self.clock, s.retention.interval, self._log, one_pass)

            self._task_factories.insert(0, ("charged-rollups", run_storage_passes))
        # the daemon's tasks beside the tick, in the order added
        for name, run in self._task_factories:
            self._start_task(name, run)

    def _readiness_state(self) -> ReadinessState:
        if self.writer is not None:
            self.readiness.db_writable = not self.writer.db_down
            self.readiness.spool_full = self.writer.spool_full
        return self.readiness

    def _control_api_controller(self) -> Controller:
        if self.client is None or self.engine is None or self._closed:
            raise ControllerUnavailable("the daemon is starting or stopping; try again")
        if self._controller is None:
            self._controller = Controller(
                self.client, SqlAuditSink(self.engine), actor=CONTROL_API_ACTOR, clock=self.clock
            )
        return self._controller

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set (the tick in flight finishes) or :meth:`abort` (it is
        cut short).  A dead writer stops the loop instead of filling RAM; so does a daemon
        task that failed (a bug: it is raised here).  Cancelled, it cancels the tick in flight
        and raises CancelledError."""
        assert self.supervisor is not None and self._writer_task is not None
        ticking = asyncio.create_task(self.supervisor.run(stop), name="charged-supervisor")
        aborted = asyncio.create_task(self._abort.wait(), name="charged-abort")
        task_failed = asyncio.create_task(self._task_failed.wait(), name="charged-task-failed")
        lock_lost = asyncio.create_task(self._lock_lost_event.wait(), name="charged-lock-lost")
        watchdog = self._watchdog_timer(ticking)
        try:
            # the start's heap frozen, young collections rarer (charged/daemon/gc_policy.py)
            with ticking_gc():
                done, _ = await asyncio.wait(
                    {ticking, self._writer_task, aborted, task_failed, lock_lost},
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            aborted.cancel()
            task_failed.cancel()
            lock_lost.cancel()
            if watchdog is not None:
                await cancel_and_wait(watchdog)
            if not ticking.done():
                await cancel_and_wait(ticking)
        if lock_lost in done and self._lock_lost is not None:
            raise self._lock_lost  # another collector has the database: this one stops
        if ticking in done:
            ticking.result()
        elif self._writer_task in done:
            self._writer_task.result()  # re-raise the writer's failure
            raise RuntimeError("the database writer stopped unexpectedly")
        elif task_failed in done:
            failed = next(
                t
                for t in self._tasks
                if t.done() and not t.cancelled() and t.exception() is not None
            )
            failed.result()  # re-raise the task's failure
