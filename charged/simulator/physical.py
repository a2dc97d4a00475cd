"""The fleet on a wired site: connectors whose cars are driven by :mod:`charged.simulator.physics`.

With a :class:`PhysicsConfig` the fleet's connectors are :class:`PhysicalConnector` views onto
one :class:`~charged.simulator.physics.Physics` for the whole site: every charger on its fuse
tree with its rotation, every changed limit acting ``limit_delay`` seconds late, the ground
truth per fuse and site phase counted every simulated second.  Cars come from the same field
study sampling as the plain fleet (plus a share that draws half its limit), or from a
scenario's visits.  What the cloud *stores* (settings, read back at once) and what the car
*follows* (the limit in force, later) are different things here, as they are in a garage.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterator, Sequence

from charged.simulator.charger_state import ConnectorReading, Session
from charged.simulator.connector import (
    HISTORY_PER_CONNECTOR,
    IDLE_PHASE_CURRENT,
    MAX_CURRENT,
    ConnectorBase,
)
from charged.simulator.fleet import CONNECTORS_PER_AURA, ChargePoint
from charged.simulator.physics import Car, Physics, PhysicsConfig, Plug, SessionRecord, Visit
from charged.simulator.vehicles import (
    charge_seconds,
    occupied_share,
    sample_arrival,
    sample_vehicle,
)


def sampled_visits(rng: random.Random, start: int, half_share: float) -> Iterator[Visit]:
    """Visits of one connector from ``start`` on, as the plain fleet samples them: some bays
    are occupied at the start, part-way through a visit (or already full)."""

    def car(phases: int, current: float, target: float, taper: float) -> Car:
        follows = 0.5 if half_share > 0 and rng.random() < half_share else 1.0
        return Car(phases, current, target, follows, taper)

    t: float = start
    if rng.random() < occupied_share(start):
        vehicle = sample_vehicle(rng, start)
        progress = rng.uniform(0.0, 1.3)  # >1: already full, waiting to leave
        charge_s = charge_seconds(vehicle)
        elapsed = int(min(progress, 1.0) * charge_s + max(0.0, progress - 1.0) * 3600.0)
        departs = max(vehicle.departs - elapsed, start + 15 * 60.0)
        yield Visit(
            arrival=start,
            departure=math.ceil(departs),
            car=car(vehicle.phases, vehicle.current, vehicle.target_kwh, vehicle.taper_kwh),
            delivered_kwh=min(progress, 1.0) * vehicle.target_kwh,
            session_start=start - elapsed,
        )
        t = departs
    while True:
        arrival = sample_arrival(rng, t)
        vehicle = sample_vehicle(rng, arrival)
        yield Visit(
            arrival=math.ceil(arrival),
            departure=math.ceil(vehicle.departs),
            car=car(vehicle.phases, vehicle.current, vehicle.target_kwh, vehicle.taper_kwh),
        )
        t = vehicle.departs


class PhysicalConnector(ConnectorBase):
    """A connector of the fleet as the physics sees it (the server's view of it)."""

    def __init__(
        self,
        charge_point: ChargePoint,
        connector_id: int,
        *,
        slot: int,
        slots: int,
        physics: Physics,
        visits: Iterator[Visit] | Sequence[Visit],
        seed: int,
    ) -> None:
        super().__init__(charge_point, connector_id)
        self._slot, self._slots = slot, slots
        self._physics = physics
        voltage_rng = random.Random(f"{seed}/{charge_point.id}/{connector_id}/voltage")
        self.history: deque[Session] = deque(maxlen=HISTORY_PER_CONNECTOR)
        self._requested = self._cap()
        self.plug: Plug = physics.add_plug(
            charge_point.id,
            connector_id,
            limit=self._requested,
            visits=visits,
            seed=seed,
            voltage=round(230.0 + voltage_rng.uniform(-1.5, 1.5), 1),
            on_session_end=lambda record: self.history.append(self._session(record)),
        )

    def _cap(self) -> float:
        cap = self.limit()
        return MAX_CURRENT if cap is None else cap

    def apply_settings(self) -> None:
        """The cloud has new settings for this connector: the car follows them later."""
        cap = self._cap()
        if cap != self._requested:
            self._requested = cap
            self._physics.set_limit(self.charge_point.id, self.connector_id, cap)

    def advance_to(self, now: float) -> None:
        self._physics.advance_to(now)

    def _session(self, record: SessionRecord) -> Session:
        return Session(
            id=record.number * self._slots + self._slot + 1,
            charge_point_id=self.charge_point.id,
            connector_id=self.connector_id,
            phases=record.phases,
            start=float(record.start),
            end=None if record.end is None else float(record.end),
            energy_kwh=record.energy_kwh,
            charging_seconds=float(record.charging_seconds),
            idle_seconds=float(record.idle_seconds),
            first_draw=None if record.first_draw is None else float(record.first_draw),
        )

    def current_session(self) -> Session | None:
        record = self._physics.session_now(self.plug)
        return None if record is None else self._session(record)

    def reading(self) -> ConnectorReading:
        plug = self.plug
        voltages = (plug.voltage, plug.voltage, plug.voltage)
        status = self._physics.status(plug)
        session = self.current_session()
        if status != "Charging":
            return ConnectorReading(status, None, voltages, session)
        i1, i2, i3 = plug.currents()
        currents = (
            i1 or IDLE_PHASE_CURRENT,
            i2 or IDLE_PHASE_CURRENT,
            i3 or IDLE_PHASE_CURRENT,
        )
        return ConnectorReading(status, currents, voltages, session)

    def remote_stop(self) -> bool:
        return self._physics.stop_session(self.charge_point.id, self.connector_id)

    def remote_start(self) -> bool:
        return self._physics.start_session(self.charge_point.id, self.connector_id)

    def sessions(self) -> list[Session]:
        running = self.current_session()
        return [*self.history, *([running] if running is not None else [])]


def physical_connectors(
    cp: ChargePoint, index: int, slots: int, seed: int, physics: Physics, config: PhysicsConfig
) -> list[ConnectorBase]:
    """The connectors of ``cp`` as views onto the site's physics (what Fleet is given)."""
    connectors: list[ConnectorBase] = []
    for cid in range(1, CONNECTORS_PER_AURA + 1):
        scenario = (config.visits or {}).get((cp.id, cid))
        visits: Iterator[Visit] | Sequence[Visit]
        if scenario is not None:
            visits = sorted(scenario, key=lambda v: v.arrival)
        elif config.sample_arrivals:
            rng = random.Random(f"{seed}/{cp.id}/{cid}")
            visits = sampled_visits(rng, int(cp.fleet_start), config.half_follower_share)
        else:
            visits = ()
        connectors.append(
            PhysicalConnector(
                cp,
                cid,
                slot=index * CONNECTORS_PER_AURA + cid - 1,
                slots=slots,
                physics=physics,
                visits=visits,
                seed=seed,
            )
        )
    return connectors
