"""What the daemon does with each tick: its consumers, vendor outages, safe-tick notices.

Once a tick's rows are safe (committed or spooled) systemd hears of it (READY=1, then
WATCHDOG=1) and /readyz follows; a timer feeds the watchdog between ticks when they alone
would not.  Mixed into :class:`~charged.daemon.service.Daemon`, which holds the state.
"""

from __future__ import annotations

import asyncio
from typing import Any

from charged.clock import Clock
from charged.collector.supervisor import TickCallback, TickResult
from charged.config import Settings
from charged.metrics import Metrics
from charged.ops.health import ReadinessState
from charged.ops.sdnotify import TickNotifier
from charged.storage.engine import StorageError
from charged.storage.writer import BatchWriter

# seconds after a tick's deadline within which its rows are committed or spooled in a healthy
# collector; the systemd watchdog's timer stops pinging when a tick takes longer (see run())
TICK_WRITE_GRACE = 15.0


class TickSafety:
    """The Daemon's handling of each tick's result (see the module's docstring)."""

    # the Daemon's state these methods use (set in Daemon.__init__ and Daemon.start)
    settings: Settings
    clock: Clock
    metrics: Metrics
    readiness: ReadinessState
    writer: BatchWriter | None
    _log: Any
    _ticks: TickNotifier
    _tick_consumers: list[TickCallback]
    _stored_tasks: set[asyncio.Task[None]]
    _last_safe_tick: float | None
    _writer_task: asyncio.Task[None] | None

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
