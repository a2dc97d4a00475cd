"""Where the planner's loads come from: the polls charged stored, or a scenario played through
the evaluation engine.

Either way the result is what the vendor API shows of every connector at every poll: the
current on each of its charger's terminals (not site phases: the terminals are what the car
loads, the rotation decides where that lands).  Both connectors of a charger are summed, as
they share its wiring.

* **Polls** (:func:`loads_from_polls`): the ``measurement`` rows (phase L1/L2/L3 is the
  charger's terminal) at every tick of ``poll_cycle`` (or, in a database of the original
  scripts, every distinct ``connector_status`` time) in the period.  A connector with no
  measurement at a tick drew nothing; a NULL current is counted as 0 A; a charger that was
  not read at a tick (a ``poll_gap`` row) counts as 0 A there and is counted in
  :attr:`PollLoads.unread`.  Each tick stands for the time to the next one, at most twice
  the usual spacing (a collector that was down does not make its last tick weigh hours).
* **A scenario** (:func:`loads_from_scenario`): the visits played through the engine with the
  ``uncontrolled`` policy (32 A everywhere: every car draws what it wants, as it would
  without a balancer), its polls every 30 s recorded as the collector would have stored
  them.  The terminals a car draws on do not depend on the wiring, so one run serves both
  today's wiring and the plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from charged.balancer.evaluate.engine import EngineParams, run
from charged.balancer.evaluate.policies import make_policy
from charged.balancer.evaluate.scenario import Scenario
from charged.balancer.evaluate.telemetry import Policy, Telemetry
from charged.balancer.model import DEFAULT_PARAMS, ConnectorKey, Site
from charged.planning.problem import Loads
from charged.storage.schema import connector_status, measurement, poll_cycle, poll_gap

TERMINALS = {"L1": 0, "L2": 1, "L3": 2}


class _Recorder:
    """A policy that records what it is shown (per charger terminal) and defers to another."""

    def __init__(self, inner: Policy, chargers: Sequence[str]) -> None:
        self.name = inner.name
        self._inner = inner
        self._index = {cp: i for i, cp in enumerate(chargers)}
        self.times: list[float] = []
        self.rows: list[np.ndarray] = []

    def initial_limit(self, key: ConnectorKey) -> float:
        return self._inner.initial_limit(key)

    def decide(self, telemetry: Telemetry) -> Mapping[ConnectorKey, float]:
        row = np.zeros((len(self._index), 3))
        for key, reading in telemetry.connectors.items():
            if reading.currents is not None:
                row[self._index[key[0]]] += reading.currents
        self.times.append(telemetry.time)
        self.rows.append(row)
        return self._inner.decide(telemetry)


def loads_from_scenario(
    scenario: Scenario, site: Site, engine: EngineParams | None = None
) -> Loads:
    """What the collector would have stored of ``scenario`` on ``site`` without a balancer."""
    engine = engine or EngineParams()
    chargers = tuple(c.id for c in site.chargers)
    recorder = _Recorder(make_policy("uncontrolled", site, DEFAULT_PARAMS), chargers)
    run(scenario, site, recorder, engine)
    current = np.stack(recorder.rows, axis=1) if recorder.rows else np.zeros((len(chargers), 0, 3))
    times = np.array(recorder.times, dtype=float)
    return Loads(chargers, times, np.full(len(times), float(engine.tick_s)), current)


# ---------------------------------------------------------------- polls


@dataclass(frozen=True)
class PollLoads:
    loads: Loads
    unread: int  # charger-ticks with a poll_gap: counted as 0 A
    ticks: int


def _epoch(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()


def tick_weights(times: np.ndarray) -> np.ndarray:
    """Seconds each tick stands for: to the next tick, at most twice the median spacing."""
    if len(times) == 0:
        return np.zeros(0)
    if len(times) == 1:
        return np.ones(1)
    spacing = np.diff(times)
    usual = float(np.median(spacing))
    weights = np.minimum(np.append(spacing, usual), 2 * usual)
    return np.asarray(weights, dtype=float)


async def loads_from_polls(
    conn: AsyncConnection,
    since: datetime | None,
    until: datetime | None,
    chargers: Sequence[str] = (),
) -> PollLoads:
    """The stored polls in [since, until) (naive UTC) as loads; ``chargers`` are included
    even where they drew nothing (the site's)."""

    def within(column: ColumnElement[datetime]) -> list[ColumnElement[bool]]:
        out = []
        if since is not None:
            out.append(column >= since)
        if until is not None:
            out.append(column < until)
        return out

    pc, cs, m, gap = poll_cycle, connector_status, measurement, poll_gap
    ticks = [
        r[0] for r in await conn.execute(select(pc.c.tick_time).where(*within(pc.c.tick_time)))
    ]
    if not ticks:
        ticks = [
            r[0]
            for r in await conn.execute(
                select(cs.c.date_created).where(*within(cs.c.date_created)).distinct()
            )
        ]
    sums = await conn.execute(
        select(m.c.date_created, m.c.charge_point_id, m.c.phase, func.sum(m.c.current))
        .where(*within(m.c.date_created), m.c.phase.in_(tuple(TERMINALS)))
        .group_by(m.c.date_created, m.c.charge_point_id, m.c.phase)
    )
    rows = list(sums)
    times = sorted(set(ticks) | {r[0] for r in rows})
    ids = list(dict.fromkeys([*chargers, *sorted({r[1] for r in rows})]))
    at = {t: i for i, t in enumerate(times)}
    index = {cp: i for i, cp in enumerate(ids)}
    current = np.zeros((len(ids), len(times), 3))
    for moment, cp, phase, amps in rows:
        current[index[cp], at[moment], TERMINALS[phase]] += float(amps or 0.0)
    unread = await conn.execute(
        select(func.count()).select_from(gap).where(*within(gap.c.tick_time))
    )
    epoch = np.array([_epoch(t) for t in times], dtype=float)
    loads = Loads(tuple(ids), epoch, tick_weights(epoch), current)
    return PollLoads(loads, int(unread.scalar_one()), len(times))


# ---------------------------------------------------------------- sessions as visits

NOMINAL_VOLTAGE = 230.0


async def visits_from_sessions(
    conn: AsyncConnection,
    since: datetime | None,
    until: datetime | None,
    chargers: set[str],
) -> Scenario | None:
    """The stored sessions that began in [since, until) on the site's chargers as visits, to
    replay through the balancer: plugged in from the session's start to its end, asking for
    the energy it took, on its phases, drawing at most what its peak power says (÷ 230 V ÷
    phases, 6-32 A).  Sessions still open or without energy are left out.  None: no session."""
    from charged.balancer.evaluate.scenario import Visit
    from charged.storage.schema import charging_session as cs

    query = select(cs).where(
        *([cs.c.start_time >= since] if since is not None else []),
        *([cs.c.start_time < until] if until is not None else []),
        cs.c.end_time.is_not(None),
        cs.c.energy_kwh > 0,
    )
    visits = []
    for row in await conn.execute(query.order_by(cs.c.start_time, cs.c.id)):
        if row.charge_point_id not in chargers or row.end_time <= row.start_time:
            continue
        phases = 1 if row.phases == 1 else 3
        peak = float(row.peak_power_w or 0.0) / NOMINAL_VOLTAGE / phases
        visits.append(
            Visit(
                row=0,
                arrival=_epoch(row.start_time),
                departure=_epoch(row.end_time),
                energy_kwh=float(row.energy_kwh),
                phases=phases,
                max_current=float(min(32.0, max(6.0, round(peak)))),
                charger=row.charge_point_id,
                connector=int(row.connector_id),
            )
        )
    if not visits:
        return None
    return Scenario(visits=tuple(visits), name="stored sessions")
