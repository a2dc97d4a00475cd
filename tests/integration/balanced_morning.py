"""A simulated morning with the balancer in the loop, over real sockets, on a fake clock.

The simulator runs a wired site (its own physics: a fuse tree, each changed limit acting
30–60 s late, the ground truth per fuse and phase every simulated second).  The collector
polls it every 30 s as `charged run` does; the balancer runtime reads each tick's statuses and
sends its limits through the audited control path (actor ``balancer``).  The test's hooks run
before each tick: faults, a person's change, a restart of the balancer.  The simulator and
the balancer are described from one plain site description, each through its own code.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from charged.balancer.model import BalancerParams, ChargerSpec, Fuse, Rotation, Site
from charged.balancer.pins import SqlAuditSource
from charged.balancer.recall import SqlCarRecall
from charged.balancer.runtime import BalancerRuntime, RuntimeMode, StepReport, TickInput
from charged.clock import FakeClock
from charged.config import settings_from_mapping
from charged.control.audit import SqlAuditSink
from charged.control.operations import Controller
from charged.daemon.service import Daemon
from charged.metrics import Metrics
from charged.simulator import Simulator, SimulatorConfig
from charged.simulator import grid as simgrid
from charged.simulator.grid import GroundTruth
from charged.simulator.physics import PhysicsConfig
from charged.storage.schema import balancer_decision, balancer_fuse, control_action

START = datetime(2026, 1, 5, 6, 30, tzinfo=UTC)  # before the rush: the garage is not over yet
INTERVAL = 30.0
SEED = 3
CHARGERS = 5


@dataclass(frozen=True)
class SiteSpec:
    """One plain description both sides read: a main fuse, optional sub-distributions below
    it (name → (limit per phase, charger positions)), rotations by charger position."""

    main: float
    rows: dict[str, tuple[float, tuple[int, ...]]] = field(default_factory=dict)
    rotations: dict[int, str] = field(default_factory=dict)
    margin: float = 0.0

    def _direct(self, ids: Sequence[str]) -> tuple[str, ...]:
        below = {i for _, positions in self.rows.values() for i in positions}
        return tuple(cp for i, cp in enumerate(ids) if i not in below)

    def for_simulator(self, ids: Sequence[str]) -> simgrid.GridSpec:
        rows = tuple(
            simgrid.Fuse(name, (limit,) * 3, chargers=tuple(ids[i] for i in positions))
            for name, (limit, positions) in self.rows.items()
        )
        return simgrid.GridSpec(
            simgrid.Fuse("main", (self.main,) * 3, rows, self._direct(ids)),
            {ids[i]: r for i, r in self.rotations.items()},
        )

    def for_balancer(self, ids: Sequence[str]) -> Site:
        chargers = tuple(
            ChargerSpec(cp, rotation=Rotation.parse(self.rotations.get(i, "L1L2L3")))
            for i, cp in enumerate(ids)
        )
        rows = tuple(
            Fuse(name, (limit,) * 3, chargers=tuple(ids[i] for i in positions))
            for name, (limit, positions) in self.rows.items()
        )
        root = Fuse("main", (self.main,) * 3, rows, self._direct(ids))
        return Site(root, chargers, self.margin)


@dataclass
class Harness:
    """What a hook can reach before a tick."""

    sim: Simulator
    clock: FakeClock
    collector: Daemon
    site: Site
    mode: RuntimeMode | None
    params: BalancerParams
    runtime: BalancerRuntime | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    reports: list[StepReport] = field(default_factory=list)
    person: Controller | None = None

    def start_balancer(self) -> None:
        """A fresh balancer (as after `charged run` starts): no memory but the database."""
        if self.mode is None:
            return
        c = self.collector
        assert c.client is not None and c.engine is not None
        controller = Controller(
            c.client, SqlAuditSink(c.engine), actor="balancer", clock=self.clock
        )
        self.runtime = BalancerRuntime(
            self.site,
            mode=self.mode,
            controller=controller,
            audit_rows=SqlAuditSource(c.engine),
            put=c.queue.put,
            clock=self.clock,
            params=self.params,
            metrics=c.metrics,
            recall=SqlCarRecall(c.engine),
        )
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.runtime.run(self.stop))

    async def stop_balancer(self) -> None:
        if self.task is not None:
            self.stop.set()
            await self.task
            self.task = None

    async def person_sets(self, cp: str, connector: int, amps: int) -> None:
        from charged.control.validation import ConnectorChange

        assert self.person is not None
        result = await self.person.set_connector(cp, connector, ConnectorChange(max_current=amps))
        assert result.ok, result


Hook = Callable[[int, Harness], Awaitable[None]]


@dataclass
class MorningResult:
    sim: Simulator
    truth: GroundTruth
    ticks: int
    reports: list[StepReport]
    decisions: list[dict[str, Any]]
    fuse_rows: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    metrics: Metrics


async def balanced_morning(
    db_url: str,
    *,
    site: SiteSpec,
    mode: RuntimeMode | None,
    ticks: int = 180,
    start: datetime = START,
    limit_delay: tuple[int, int] = (30, 60),
    before_tick: Hook | None = None,
    params: BalancerParams | None = None,
    chargers: int = CHARGERS,
    loadbalanced: Sequence[int] = (),
) -> MorningResult:
    """Run ``ticks`` ticks from ``start``; ``mode`` None is uncontrolled (no balancer)."""
    clock = FakeClock(start.timestamp(), auto_advance=False)
    ids = simgrid_ids(chargers)
    sim = Simulator(
        SimulatorConfig(
            chargers=chargers,
            seed=SEED,
            speed=1.0,
            start_time=start.timestamp(),
            physics=PhysicsConfig(
                site=site.for_simulator(ids), limit_delay=limit_delay, half_follower_share=0.2
            ),
            loadbalanced=frozenset(ids[i] for i in loadbalanced),
        ),
        clock=clock,
    )
    await sim.start("127.0.0.1", 0)
    settings = settings_from_mapping(
        {
            "api": {
                "base_url": sim.base_url,
                "email": sim.account.email,
                "password": sim.account.password,
                "api_key": sim.account.api_key,
                "max_requests_per_second": None,
                "max_attempts": 1,
            },
            "collector": {"interval": INTERVAL},
            "database": {"url": db_url},
            "writer": {"flush_interval": 0.2},
            "spool": {"directory": tempfile.mkdtemp(prefix="charged-test-spool-")},
            "ops": {"enabled": False},
        },
        source="test",
    )
    try:
        async with Daemon(settings, clock=clock, metrics=Metrics()) as collector:
            assert collector.supervisor and collector.writer and collector.engine
            assert collector.client is not None
            harness = Harness(
                sim,
                clock,
                collector,
                site.for_balancer(ids),
                mode,
                params or BalancerParams(),
                person=Controller(
                    collector.client,
                    SqlAuditSink(collector.engine),
                    actor="cli:operator",
                    clock=clock,
                ),
            )
            harness.start_balancer()
            for k in range(ticks):
                if before_tick is not None:
                    await before_tick(k, harness)
                result = await collector.supervisor.tick()
                if harness.runtime is not None:
                    harness.runtime.on_tick(TickInput(clock.time(), result.statuses, result.asked))
                    await harness.runtime.idle()
                    if harness.runtime.last is not None:
                        harness.reports.append(harness.runtime.last)
                await collector.writer.wait_flushed()
                if k + 1 < ticks:
                    await clock.advance(INTERVAL)
            await harness.stop_balancer()
            await collector.writer.wait_flushed()
            truth = sim.ground_truth()
            async with collector.engine.connect() as conn:
                decisions = [
                    dict(r)
                    for r in (
                        await conn.execute(select(balancer_decision).order_by("id"))
                    ).mappings()
                ]
                fuse_rows = [
                    dict(r)
                    for r in (await conn.execute(select(balancer_fuse).order_by("id"))).mappings()
                ]
                audit = [
                    dict(r)
                    for r in (await conn.execute(select(control_action).order_by("id"))).mappings()
                ]
            return MorningResult(
                sim, truth, ticks, harness.reports, decisions, fuse_rows, audit, collector.metrics
            )
    finally:
        await sim.stop()


def simgrid_ids(chargers: int) -> list[str]:
    from charged.simulator.fleet import charge_point_ids

    return charge_point_ids(SEED, chargers)
