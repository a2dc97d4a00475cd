"""The daemon: vendor client, the tick (supervisor), queue, batch writer, disk spool, ops
server with the control API, the daemon's tasks beside the tick (the session tracker) and
systemd notifications, started and stopped in the right order.  ``charged run`` and
``charged demo`` both use it.

Beside the tick, two ways in for another part (e.g. a balancer):

- a *tick consumer* (:meth:`Daemon.add_tick_consumer`) is called with every tick's
  :class:`~charged.collector.supervisor.TickResult` (counts, and the statuses of the chargers
  that answered), in the order added, after the tick's rows are queued.  It is awaited before
  the next tick is scheduled, so one that takes long should hand the result to a task of its
  own (:class:`LatestTick` keeps the newest);
- a *daemon task* (:meth:`Daemon.add_task`) is a loop ``run(stop)`` started once the daemon
  is up (database, spool, writer, login) and ended at :meth:`Daemon.close` before the writer
  drains: ``stop`` is set and the task cancelled at once (what it was doing must be safe to
  cut short and redo at the next start, as the tracker's passes are).

Shutdown (:meth:`Daemon.close`): STOPPING=1, the supervisor has finished its tick, the daemon
tasks end, the writer drains the queue to the database for up to ``shutdown.drain_timeout``
seconds and spools the rest, the spool is fsynced and closed, then the HTTP sessions and the
engine.  :meth:`Daemon.abort` (a second signal) cuts the tick short and spools at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from types import TracebackType
from typing import Any

import aiohttp
import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.chargeamps.client import ChargeAmpsClient
from charged.clock import Clock, SystemClock
from charged.collector.supervisor import Supervisor, TickCallback, TickResult
from charged.config import Settings
from charged.control.api import ControllerUnavailable, control_routes
from charged.control.audit import SqlAuditSink
from charged.control.operations import Controller
from charged.daemon.gc_policy import ticking_gc
from charged.daemon.vendor import vendor_client, vendor_session
from charged.metrics import Metrics
from charged.ops.health import ReadinessState
from charged.ops.sdnotify import SystemdNotifier, TickNotifier
from charged.ops.server import OpsServer
from charged.sessions.tracker import SessionTracker
from charged.storage.collector_lock import (
    CollectorAlreadyRunning,
    CollectorLock,
    collector_lock,
)
from charged.storage.engine import (
    DatabaseAccessDenied,
    DatabaseUnavailable,
    StorageError,
    check_database,
    create_engine,
)
from charged.storage.migrate import upgrade
from charged.storage.rejected import RejectedRows
from charged.storage.retention import run_passes
from charged.storage.rollup import storage_pass
from charged.storage.schema import poll_cycle
from charged.storage.spool import Spool
from charged.storage.writer import BatchWriter
from charged.storage.writes import RowBatch
from charged.tasks import cancel_and_wait, run_to_completion

# who the audit table names for changes made through the control API
CONTROL_API_ACTOR = "control-api"

# seconds after a tick's deadline within which its rows are committed or spooled in a healthy
# collector; the systemd watchdog's timer stops pinging when a tick takes longer (see run())
TICK_WRITE_GRACE = 15.0


# a loop beside the tick: runs until the event is set (see the module's docstring)
DaemonTask = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


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


class Daemon:
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

    async def _prepare_database(self) -> None:
        """The collector lock (a second collector on this database is refused), pending
        migrations (with database.migrate_on_start), then a query that works."""
        s = self.settings
        assert self.engine is not None
        if self._lock is None:
            self._lock = collector_lock(
                self.engine, clock=self.clock, on_lost=self._lost_lock, logger=self._log
            )
        await self._lock.acquire()
        if s.database.migrate_on_start:
            # never cut halfway (MySQL's DDL is not transactional): a stop waits for its end
            applied = await run_to_completion(
                upgrade(s.database.url), on_cancel=self._log_migration_finishing
            )
            if applied:
                self._log.info("database migrated", revisions=applied)
        await check_database(self.engine)
        await self._read_latest_tick()

    async def _prepare_later(self) -> None:
        """:meth:`_prepare_database` once a database that was away at the start answers.  If
        another collector took the lock meanwhile, this one stops (what it spooled stays in
        its spool for its next start)."""
        try:
            await self._prepare_database()
        except CollectorAlreadyRunning as exc:
            self._log.error(str(exc))
            self._lost_lock(exc)
            raise

    def _lost_lock(self, exc: CollectorAlreadyRunning) -> None:
        if self._lock_lost is None:
            self._lock_lost = exc
        self._lock_lost_event.set()

    async def _read_latest_tick(self) -> None:
        """The latest tick stored (by any run): a tick at or before it is out of order."""
        assert self.engine is not None
        try:
            async with self.engine.connect() as conn:
                latest = (await conn.execute(select(func.max(poll_cycle.c.tick_time)))).scalar()
        except Exception as exc:  # no schema yet (migrate_on_start off): nothing to compare
            self._log.debug("latest stored tick unknown", error=type(exc).__name__)
            return
        if latest is None:
            return
        self._latest_stored_tick = latest
        if self.supervisor is not None:
            self.supervisor.remember_tick_time(latest)

    async def _database_at_start(self) -> bool:
        """True when the database is ready; False when its server does not answer yet."""
        assert self.engine is not None
        try:
            await self._prepare_database()
        except DatabaseAccessDenied:
            raise  # a person has to fix the credentials: waiting cannot help
        except DatabaseUnavailable as exc:
            if self.engine.url.get_backend_name() == "sqlite":
                raise  # a local file that cannot be opened does not come back by itself
            # e.g. the machine booted before the database server: collect meanwhile
            self._log.warning(
                "database unreachable at start; collecting into the spool until it answers",
                error=str(exc),
            )
            return False
        return True

    def _log_migration_finishing(self) -> None:
        self._log.warning("stopping once the database migration in progress has finished")

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

    async def _tick_done(self, result: TickResult) -> None:
        """A tick is queued.  Once its rows are safe (committed or spooled) systemd hears of
        it (READY=1, then WATCHDOG=1), however many chargers answered: a tick of gaps is the
        process doing its job during a vendor outage.  /readyz follows the same rule once
        the rows are in the database (not only spooled), and names a vendor outage as the
        reason it is degraded rather than turning 503 for it."""
        self._note_vendor_outage(result)
        task = asyncio.create_task(self._mark_stored(result), name="charged-tick-stored")
        self._stored_tasks.add(task)
        task.add_done_callback(self._stored_tasks.discard)
        for consumer in self._tick_consumers:
            maybe = consumer(result)
            if maybe is not None:
                await maybe

    def _note_vendor_outage(self, result: TickResult) -> None:
        """One line when an outage begins and one when it ends, not one per tick."""
        since = self.readiness.vendor_outage_since
        if result.vendor_outage and since is None:
            self.readiness.vendor_outage_since = self.clock.time()
            self._log.warning(
                "vendor outage: no charger answered; storing the ticks as gaps",
                chargers=result.asked,
            )
        elif not result.vendor_outage and since is not None:
            self.readiness.vendor_outage_since = None
            self._log.info(
                "the vendor answers again",
                outage_s=round(max(0.0, self.clock.time() - since)),
                chargers_ok=result.ok,
            )

    async def _mark_stored(self, result: TickResult) -> None:
        assert self.writer is not None
        try:
            await self.writer.wait_flushed()
        except StorageError:
            return  # the writer ended; run() reports why, and no ping says otherwise
        self._last_safe_tick = self.clock.monotonic()
        if self.writer.caught_up:  # in the database, not only in the spool
            now = self.clock.time()
            self.readiness.last_tick_stored = now
            self.metrics.last_tick_stored.set(now)
        self._ticks.tick_stored(
            f"tick {result.tick_time:%H:%M:%S}: {result.ok}/{result.asked} chargers, "
            f"{result.rows} rows"
        )

    def longest_tick_gap(self) -> float:
        """The longest a healthy daemon goes between two safe ticks: one interval, the
        next tick's deadline, and :data:`TICK_WRITE_GRACE` to commit or spool its rows."""
        c = self.settings.collector
        return c.interval * (1 + c.deadline_fraction) + TICK_WRITE_GRACE

    def _working(self, ticking: asyncio.Task[None]) -> bool:
        """The tick loop and the writer run, and a tick was made safe lately."""
        writer = self._writer_task
        if ticking.done() or writer is None or writer.done() or self._last_safe_tick is None:
            return False
        return self.clock.monotonic() - self._last_safe_tick <= self.longest_tick_gap()

    def _watchdog_timer(self, ticking: asyncio.Task[None]) -> asyncio.Task[None] | None:
        """A task pinging systemd between ticks, if ticks alone would not feed its watchdog
        often enough (WatchdogSec not above :meth:`longest_tick_gap`)."""
        timeout = self._ticks.watchdog_timeout()
        if timeout is None:
            return None
        gap = self.longest_tick_gap()
        period = self._ticks.timer_period(gap)
        self._log.info(
            "systemd watchdog",
            watchdog_sec=timeout,
            fed="with every safe tick" + ("" if period is None else f" and every {period:g} s"),
            stuck_after_s=gap if period is not None else timeout,
        )
        if period is None:
            return None
        return asyncio.create_task(
            self._ticks.keep_alive(self.clock, period, lambda: self._working(ticking)),
            name="charged-watchdog",
        )

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
