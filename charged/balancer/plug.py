"""Plugging the balancer into the daemon: a tick consumer that hands over, a loop of its own.

The daemon's composition root (:mod:`charged.daemon`) calls :func:`install_balancer` when
``balancer.mode`` is shadow or active.  The runtime is built once the daemon has started (it
needs the vendor client and the database) and then reads every tick: the consumer only
hands the statuses over (a slow vendor never holds up the poll), the loop runs one
allocation, one plan and, in active mode, one actuator per tick.  Its limits go through the
audited control path as actor ``balancer``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from charged.balancer.model import BalancerParams, Site
from charged.balancer.pins import BALANCER_ACTOR, SqlAuditSource
from charged.balancer.power_target import TargetSpec
from charged.balancer.recall import SqlCarRecall
from charged.balancer.runtime import BalancerRuntime, RuntimeMode, tick_input
from charged.balancer.schedule import LimitSchedule
from charged.balancer.site_signals import BuildingLoad, PriceSignal
from charged.balancer.window_recall import SqlWindowRecall
from charged.clock import Clock
from charged.collector.supervisor import TickCallback, TickResult
from charged.control.audit import SqlAuditSink
from charged.control.operations import Controller
from charged.metrics import Metrics


class DaemonParts(Protocol):
    """What the balancer needs of the daemon (charged.daemon.Daemon)."""

    clock: Clock
    metrics: Metrics
    client: Any
    engine: Any
    queue: asyncio.Queue[Any]

    def add_tick_consumer(self, consumer: TickCallback) -> None: ...

    def add_task(
        self, name: str, run: Any
    ) -> None: ...  # run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class InstalledBalancer:
    """The balancer as installed in a daemon: its runtime once the daemon has started."""

    def __init__(
        self,
        daemon: DaemonParts,
        site: Site,
        params: BalancerParams,
        mode: RuntimeMode,
        building: BuildingLoad | None = None,
        schedule: LimitSchedule | None = None,
        power_target: TargetSpec | None = None,
        tick_s: float = 30.0,
        prices: PriceSignal | None = None,
    ) -> None:
        self._daemon = daemon
        self._prices = prices
        self._building = building
        self._schedule = schedule
        self._power_target = power_target
        self._tick_s = tick_s
        self._site = site
        self._params = params
        self._mode: RuntimeMode = mode
        self.runtime: BalancerRuntime | None = None

    def on_tick(self, result: TickResult) -> None:
        if self.runtime is not None:
            self.runtime.on_tick(tick_input(result.tick_time, result.statuses, result.asked))

    async def run(self, stop: asyncio.Event) -> None:
        d = self._daemon
        if d.client is None or d.engine is None:
            raise RuntimeError("the balancer starts after the daemon's client and database")
        controller = Controller(
            d.client, SqlAuditSink(d.engine), actor=BALANCER_ACTOR, clock=d.clock
        )
        self.runtime = BalancerRuntime(
            self._site,
            mode=self._mode,
            controller=controller,
            audit_rows=SqlAuditSource(d.engine),
            put=d.queue.put,
            clock=d.clock,
            params=self._params,
            metrics=d.metrics,
            recall=SqlCarRecall(d.engine),
            building=self._building,
            schedule=self._schedule,
            power_target=self._power_target,
            window_recall=SqlWindowRecall(d.engine) if self._power_target else None,
            tick_s=self._tick_s,
            prices=self._prices,
        )
        await self.runtime.run(stop)


def install_balancer(
    daemon: DaemonParts,
    site: Site,
    params: BalancerParams,
    mode: RuntimeMode,
    building: BuildingLoad | None = None,
    schedule: LimitSchedule | None = None,
    power_target: TargetSpec | None = None,
    tick_s: float = 30.0,
    prices: PriceSignal | None = None,
) -> InstalledBalancer:
    """Add the balancer's tick consumer and loop to ``daemon`` (before or after its start);
    ``building``: the site meters' book, subtracted from the fuses every tick; ``schedule``:
    the fuses' limits over time; ``power_target``: the site's power target (``tick_s``: the
    collector's interval, how long a cap stays in force); ``prices``: the price rule's dear
    intervals."""
    installed = InstalledBalancer(
        daemon, site, params, mode, building, schedule, power_target, tick_s, prices
    )
    daemon.add_tick_consumer(installed.on_tick)
    daemon.add_task("charged-balancer", installed.run)
    return installed
