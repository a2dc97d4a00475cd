"""The daemon's database at the start: the collector lock, migrations, the latest stored tick.

A database server that does not answer at the start is not fatal: the daemon collects into
the spool and the writer prepares the database (:meth:`DatabaseStart._prepare_later`) once it
answers.  Mixed into :class:`~charged.daemon.service.Daemon`, which holds the state.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.clock import Clock
from charged.collector.supervisor import Supervisor
from charged.config import Settings
from charged.storage.collector_lock import CollectorAlreadyRunning, CollectorLock, collector_lock
from charged.storage.engine import DatabaseAccessDenied, DatabaseUnavailable, check_database
from charged.storage.migrate import upgrade
from charged.storage.schema import poll_cycle
from charged.tasks import run_to_completion


class DatabaseStart:
    """The Daemon's preparation of its database (see the module's docstring)."""

    # the Daemon's state these methods use (set in Daemon.__init__ and Daemon.start)
    settings: Settings
    clock: Clock
    engine: AsyncEngine | None
    supervisor: Supervisor | None
    _log: Any
    _lock: CollectorLock | None
    _lock_lost: CollectorAlreadyRunning | None
    _lock_lost_event: asyncio.Event
    _latest_stored_tick: datetime | None

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
