"""One collector process: vendor client, supervisor, queue, batch writer, disk spool, ops
server and systemd notifications, started and stopped in the right order.  ``charged run``
and ``charged demo`` both use it.

Shutdown (:meth:`Collector.close`): STOPPING=1, the supervisor has finished its tick, the
writer drains the queue to the database for up to ``shutdown.drain_timeout`` seconds and
spools the rest, the spool is fsynced and closed, then the HTTP sessions and the engine.
:meth:`Collector.abort` (a second signal) cuts the tick short and spools at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

import aiohttp
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.analysis.tracker import SessionTracker
from charged.chargeamps.auth import TokenStore
from charged.chargeamps.client import ChargeAmpsClient
from charged.clock import Clock, SystemClock
from charged.collector.supervisor import Supervisor, TickCallback, TickResult
from charged.config import Settings
from charged.control.api import ControllerUnavailable, control_routes
from charged.control.audit import SqlAuditSink
from charged.control.operations import Controller
from charged.metrics import Metrics
from charged.ops.health import ReadinessState
from charged.ops.sdnotify import SystemdNotifier, TickNotifier
from charged.ops.server import OpsServer
from charged.storage.engine import (
    DatabaseAccessDenied,
    DatabaseUnavailable,
    StorageError,
    check_database,
    create_engine,
)
from charged.storage.migrate import upgrade
from charged.storage.rejected import RejectedRows
from charged.storage.spool import Spool
from charged.storage.writer import BatchWriter
from charged.storage.writes import RowBatch
from charged.tasks import cancel_and_wait, run_to_completion

# who the audit table names for changes made through the control API
CONTROL_API_ACTOR = "control-api"

# seconds after a tick's deadline within which its rows are committed or spooled in a healthy
# collector; the systemd watchdog's timer stops pinging when a tick takes longer (see run())
TICK_WRITE_GRACE = 15.0


class Collector:
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
        self._on_tick = on_tick
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
        self._sessions_stop = asyncio.Event()
        self._sessions_task: asyncio.Task[None] | None = None
        self._fsync_task: asyncio.Task[None] | None = None
        self._stored_tasks: set[asyncio.Task[None]] = set()
        self._last_safe_tick: float | None = None  # monotonic time the last tick was safe
        self._abort = asyncio.Event()
        self._closed = False
        self.queue: asyncio.Queue[RowBatch] = asyncio.Queue(maxsize=settings.writer.queue_size)

    async def __aenter__(self) -> Collector:
        await self.start()
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
        self._session = aiohttp.ClientSession()
        self.client = ChargeAmpsClient(
            self._session,
            base_url=s.api.base_url,
            api_version=s.api.version,
            email=s.email,
            password=s.password,
            api_key=s.api_key,
            clock=self.clock,
            max_concurrency=s.api.max_concurrency,
            max_requests_per_second=s.api.max_requests_per_second,
            request_timeout=s.api.request_timeout,
            max_body_bytes=s.api.max_body_bytes,
            max_attempts=s.api.max_attempts,
            token_store=TokenStore(s.api.token_cache) if s.api.token_cache else None,
            metrics=self.metrics,
        )
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
            prepare=None if prepared else self._prepare_database,
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
            self._sessions_task = asyncio.create_task(
                self.sessions.run(self._sessions_stop), name="charged-sessions"
            )

    async def _prepare_database(self) -> None:
        """Pending migrations (with database.migrate_on_start), then a query that works."""
        s = self.settings
        if s.database.migrate_on_start:
            # never cut halfway (MySQL's DDL is not transactional): a stop waits for its end
            applied = await run_to_completion(
                upgrade(s.database.url), on_cancel=self._log_migration_finishing
            )
            if applied:
                self._log.info("database migrated", revisions=applied)
        assert self.engine is not None
        await check_database(self.engine)

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
            raise ControllerUnavailable("the collector is starting or stopping; try again")
        if self._controller is None:
            self._controller = Controller(
                self.client, SqlAuditSink(self.engine), actor=CONTROL_API_ACTOR, clock=self.clock
            )
        return self._controller

    async def _tick_done(self, result: TickResult) -> None:
        """A tick is queued.  Once its rows are safe (committed or spooled) systemd hears of
        it (READY=1, then WATCHDOG=1), however many chargers answered: a tick of gaps is the
        process doing its job during a vendor outage.  /readyz counts a tick only when a
        charger answered and the rows are in the database, so it turns 503 during an outage
        of either."""
        task = asyncio.create_task(self._mark_stored(result), name="charged-tick-stored")
        self._stored_tasks.add(task)
        task.add_done_callback(self._stored_tasks.discard)
        if self._on_tick is not None:
            maybe = self._on_tick(result)
            if maybe is not None:
                await maybe

    async def _mark_stored(self, result: TickResult) -> None:
        assert self.writer is not None
        try:
            await self.writer.wait_flushed()
        except StorageError:
            return  # the writer ended; run() reports why, and no ping says otherwise
        self._last_safe_tick = self.clock.monotonic()
        if result.ok > 0 and self.writer.caught_up:
            self.readiness.last_tick_ok = self.clock.time()
        self._ticks.tick_stored(
            f"tick {result.tick_time:%H:%M:%S}: {result.ok}/{result.asked} chargers, "
            f"{result.rows} rows"
        )

    def longest_tick_gap(self) -> float:
        """The longest a healthy collector goes between two safe ticks: one interval, the
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
        cut short).  A dead writer stops the loop instead of filling RAM.  Cancelled, it
        cancels the tick in flight and raises CancelledError."""
        assert self.supervisor is not None and self._writer_task is not None
        ticking = asyncio.create_task(self.supervisor.run(stop), name="charged-supervisor")
        aborted = asyncio.create_task(self._abort.wait(), name="charged-abort")
        watchdog = self._watchdog_timer(ticking)
        try:
            done, _ = await asyncio.wait(
                {ticking, self._writer_task, aborted}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            aborted.cancel()
            if watchdog is not None:
                await cancel_and_wait(watchdog)
            if not ticking.done():
                await cancel_and_wait(ticking)
        if ticking in done:
            ticking.result()
        elif self._writer_task in done:
            self._writer_task.result()  # re-raise the writer's failure
            raise RuntimeError("the database writer stopped unexpectedly")

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
            if self._session is not None:
                cleanup.push_async_callback(self._session.close)
            if self.ops is not None:
                cleanup.push_async_callback(self.ops.stop)
            if self.spool is not None:
                cleanup.callback(self.spool.close)
            if self._fsync_task is not None:
                # it fsyncs once more on its way out
                cleanup.push_async_callback(cancel_and_wait, self._fsync_task)
            cleanup.push_async_callback(self.stop_session_tracker)
            cleanup.callback(self._cancel_stored_tasks)
            await self._stop_writer(drain_timeout)

    def _cancel_stored_tasks(self) -> None:
        for task in list(self._stored_tasks):
            task.cancel()

    async def stop_session_tracker(self) -> None:
        """End the tracker's background passes (at close, or for a caller that wants to run
        update/reconcile itself without a second pass racing it)."""
        task, self._sessions_task = self._sessions_task, None
        if task is not None:
            self._sessions_stop.set()
            await cancel_and_wait(task)  # a pass cut short is redone at the next start

    async def _stop_writer(self, drain_timeout: float) -> None:
        task, writer = self._writer_task, self.writer
        if writer is None or task is None or task.done():
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
