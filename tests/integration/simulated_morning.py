"""A morning of the simulated garage collected into a database, on a fake clock.

The simulator and the collector share one FakeClock (fleet speed 1), so the poll times on the
rows and the fleet's session times are on the same time line, and a morning of 30-s ticks runs
in seconds.  The collector's own SessionTracker (the one `charged run` starts) folds the rows
in as the fake clock moves; after the last tick it is stopped and one final update and
reconciliation run unraced.  The simulator's own record of its sessions (the truth) is taken
at the last tick.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from charged.clock import FakeClock
from charged.config import settings_from_mapping
from charged.control.audit import SqlAuditSink
from charged.control.operations import Controller
from charged.daemon.service import Daemon
from charged.metrics import Metrics
from charged.simulator import SessionTruth, Simulator, SimulatorConfig

MORNING = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)
INTERVAL = 30.0


@dataclass
class Morning:
    db_url: str
    start: datetime
    ticks: int
    charge_point_ids: list[str]
    truth: dict[tuple[str, int, int], SessionTruth] = field(default_factory=dict)
    reconciled: int = 0
    # chargingsessions reads by the collector's own tracker (the one `charged run` starts)
    collector_reconciles: float = 0.0
    # finished sessions whose ∑ I×V×Δt and energy counter disagreed (the tracker's warning)
    energy_mismatches: float = 0.0


async def collect_morning(
    db_url: str,
    *,
    chargers: int = 5,
    ticks: int = 420,
    seed: int = 3,
    reconcile: bool = True,
    during: Callable[[int, Simulator], None] | None = None,
    control: Callable[[int, Controller, Simulator], Awaitable[None]] | None = None,
    mixed: bool = False,
) -> Morning:
    """Collect ``ticks`` ticks from 07:00; ``during(k, sim)`` runs before tick k (faults),
    ``control(k, controller, sim)`` too (settings changes, audited in control_action)."""
    clock = FakeClock(MORNING.timestamp(), auto_advance=False)
    sim = Simulator(
        SimulatorConfig(
            chargers=chargers,
            seed=seed,
            speed=1.0,
            start_time=MORNING.timestamp(),
            mixed_fleet=mixed,  # every kind of charger (charged.simulator.kinds)
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
            },
            "collector": {"interval": INTERVAL},
            "database": {"url": db_url},
            "writer": {"flush_interval": 0.2},
            # nothing in the working directory, no fixed port
            "spool": {"directory": tempfile.mkdtemp(prefix="charged-test-spool-")},
            "ops": {"enabled": False},
        },
        source="test",
    )
    morning = Morning(db_url, MORNING, ticks, sim.charge_point_ids())
    try:
        async with Daemon(settings, clock=clock, metrics=Metrics()) as collector:
            assert collector.engine and collector.supervisor and collector.writer
            assert collector.client is not None
            tracker = collector.sessions
            assert tracker is not None
            controller = Controller(
                collector.client,
                SqlAuditSink(collector.engine),
                actor="test",
                clock=clock,
            )
            for k in range(ticks):
                if during is not None:
                    during(k, sim)
                if control is not None:
                    await control(k, controller, sim)
                await collector.supervisor.tick()
                await collector.writer.wait_flushed()
                if k + 1 < ticks:
                    await clock.advance(INTERVAL)
            # the background passes have done their part; the last ones are ours, unraced
            await collector.stop_tasks()
            morning.collector_reconciles = (
                collector.metrics.registry.get_sample_value(
                    "charged_session_reconciles_total", {"result": "ok"}
                )
                or 0.0
            )
            await tracker.update()
            morning.truth = {
                (t.charge_point_id, t.connector_id, t.session_id): t
                for cp in sim.charge_point_ids()
                for t in sim.fleet.sessions(cp)
            }
            if reconcile:
                morning.reconciled = await tracker.reconcile()
            morning.energy_mismatches = (
                collector.metrics.registry.get_sample_value(
                    "charged_session_energy_mismatches_total"
                )
                or 0.0
            )
    finally:
        await sim.stop()
    return morning
