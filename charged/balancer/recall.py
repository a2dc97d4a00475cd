"""What was learned of the cars still plugged in, read back from the database at start.

A restart must not forget that the car on CP-7/1 is a one-phase car on L2 that takes 16 A:
without it the guarantee counts the car on all three phases (safe, but it holds room nobody
uses) and the allocation offers it 32 A it will not take, until the car shows it again.
Nothing new is stored for this: the polls (``connector_status``: each connector's session id
per tick) and the balancer's own decisions (``balancer_decision``: the phases each connector
was counted on, its measured current and the limit in force) already hold it.  For each
connector whose newest poll shows an open session, the decisions since that session's first
poll give back its terminals and the most its car drew while allowed more; the first tick
after the start keeps them only if the vendor still reports the same session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.balancer.model import PHASE_NAMES, ConnectorKey, Site
from charged.balancer.tracking import DRAWING_AMPS, Tracked

LOOK_BACK_ROWS = 5000  # decisions read per connector at most (a day and more at 30 s)


@dataclass(frozen=True, slots=True)
class Recalled:
    session_id: int
    terminals: frozenset[int]  # empty: not known (it was counted on all three phases)
    car_max: float | None
    car_max_limit: float | None = None  # the limit in force when car_max was seen
    follows_limit: bool = False


@dataclass(frozen=True, slots=True)
class PastDecision:
    phases: str | None  # the site phases it was counted on ("L2", "L1L2L3")
    measured_a: float | None
    limit_in_force_a: float | None


class CarRecall(Protocol):
    async def recall(self, site: Site) -> Mapping[ConnectorKey, Recalled]: ...


def learned_from(
    site: Site, key: ConnectorKey, session_id: int, rows: Iterable[PastDecision]
) -> Recalled:
    """The car of ``session_id`` as its decision rows (newest first) describe it (pure).

    Terminals: those under the site phases of the newest row, through the charger's
    rotation, unless those were all three (a three-phase car and a car not yet known look
    alike: both stay counted on all three; the newest row has everything learned before).
    The car's maximum: the rows replayed oldest first through the very rule the polls are
    learned by (:meth:`~charged.balancer.tracking.Tracked.learn_maximum`)."""
    spec = site.charger(key[0])
    newest_first = list(rows)
    terminals: frozenset[int] = frozenset()
    counted = next((r.phases for r in newest_first if r.phases), None)
    if counted and spec is not None:
        names = [counted[i : i + 2] for i in range(0, len(counted), 2)]
        site_phases = {PHASE_NAMES.index(n) for n in names if n in PHASE_NAMES}
        if 0 < len(site_phases) < 3:
            terminals = frozenset(spec.rotation.site_phases.index(p) for p in site_phases)
    learner = Tracked(key)
    for row in reversed(newest_first):
        if row.measured_a is not None and row.measured_a > DRAWING_AMPS:
            learner.limit = row.limit_in_force_a
            learner.learn_maximum(row.measured_a)
    return Recalled(
        session_id, terminals, learner.car_max, learner.car_max_limit, learner.follows_limit
    )


class SqlCarRecall:
    """:class:`CarRecall` from the daemon's database (a few queries per connector, once)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def recall(self, site: Site) -> dict[ConnectorKey, Recalled]:
        from charged.storage.schema import balancer_decision as d
        from charged.storage.schema import connector_status as s

        out: dict[ConnectorKey, Recalled] = {}
        async with self._engine.connect() as conn:
            for cp_id, connector_id in site.connector_keys():
                newest = (
                    await conn.execute(
                        select(s.c.session_id, s.c.status)
                        .where(s.c.charge_point_id == cp_id, s.c.connector_id == connector_id)
                        .order_by(s.c.date_created.desc())
                        .limit(1)
                    )
                ).first()
                if newest is None or newest.session_id is None:
                    continue
                began: datetime | None = (
                    await conn.execute(
                        select(func.min(s.c.date_created)).where(
                            s.c.charge_point_id == cp_id,
                            s.c.connector_id == connector_id,
                            s.c.session_id == newest.session_id,
                        )
                    )
                ).scalar()
                if began is None:
                    continue
                rows = (
                    await conn.execute(
                        select(d.c.phases, d.c.measured_a, d.c.limit_in_force_a)
                        .where(
                            d.c.charge_point_id == cp_id,
                            d.c.connector_id == connector_id,
                            d.c.tick_time >= began,
                        )
                        .order_by(d.c.tick_time.desc())
                        .limit(LOOK_BACK_ROWS)
                    )
                ).all()
                key = (cp_id, connector_id)
                past = [PastDecision(r.phases, r.measured_a, r.limit_in_force_a) for r in rows]
                out[key] = learned_from(site, key, int(newest.session_id), past)
        return out
