"""One collector process: vendor client + supervisor + queue + batch writer, started and
stopped in the right order.  ``charged run`` and ``charged demo`` both use it."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

import aiohttp
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.chargeamps.auth import TokenStore
from charged.chargeamps.client import ChargeAmpsClient
from charged.clock import Clock, SystemClock
from charged.collector.supervisor import Supervisor, TickCallback
from charged.config import Settings
from charged.metrics import Metrics
from charged.storage.engine import check_database, create_engine
from charged.storage.migrate import upgrade
from charged.storage.writer import BatchWriter
from charged.storage.writes import RowBatch


class Collector:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        on_tick: TickCallback | None = None,
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
        self._writer_task: asyncio.Task[None] | None = None
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
        """Database first (migrate, check), then log in: a bad URL or password fails fast."""
        s = self.settings
        if s.database.migrate_on_start:
            applied = await upgrade(s.database.url)
            if applied:
                self._log.info("database migrated", revisions=applied)
        self.engine = create_engine(s.database.url)
        await check_database(self.engine)
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
            max_attempts=s.api.max_attempts,
            token_store=TokenStore(s.api.token_cache) if s.api.token_cache else None,
            metrics=self.metrics,
        )
        await self.client.login()
        self.writer = BatchWriter(
            self.engine,
            self.queue,
            batch_size=s.writer.batch_size,
            flush_interval=s.writer.flush_interval,
            clock=self.clock,
            metrics=self.metrics,
        )
        self._writer_task = asyncio.create_task(self.writer.run(), name="charged-writer")
        self.supervisor = Supervisor(
            self.client,
            self.queue,
            interval=s.collector.interval,
            rediscover_every=s.collector.rediscover_every,
            allow_list=s.collector.charge_points,
            deadline_fraction=s.collector.deadline_fraction,
            clock=self.clock,
            metrics=self.metrics,
            on_tick=self._on_tick,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set.  A dead writer stops the loop instead of filling RAM."""
        assert self.supervisor is not None and self._writer_task is not None
        ticking = asyncio.create_task(self.supervisor.run(stop), name="charged-supervisor")
        done, _ = await asyncio.wait(
            {ticking, self._writer_task}, return_when=asyncio.FIRST_COMPLETED
        )
        if self._writer_task in done and ticking not in done:
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking
            self._writer_task.result()  # re-raise the writer's failure
            raise RuntimeError("the database writer stopped unexpectedly")
        ticking.result()

    async def close(self, drain_timeout: float = 30.0) -> None:
        """Flush what is queued (bounded by ``drain_timeout``), then release everything."""
        try:
            task = self._writer_task
            if self.writer is not None and task is not None and not task.done():
                await self.writer.stop(timeout=drain_timeout)
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            if self._session is not None:
                await self._session.close()
            if self.engine is not None:
                await self.engine.dispose()
