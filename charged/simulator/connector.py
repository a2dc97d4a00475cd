"""A simulated connector: what the server asks of one (:class:`ConnectorBase`, whichever
model drives its car), and the plain model of the field study (:class:`Connector`): stepped
lazily in :data:`STEP` fleet seconds on a grid, from its own seeded stream, stretches where
nothing draws skipped in one jump, limits acting at once.  The wired-site model is
:mod:`charged.simulator.physical`.
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import TYPE_CHECKING

from charged.simulator.charger_state import ConnectorReading, ConnectorSettings, Session
from charged.simulator.kinds import SCHUKO_MAX_CURRENT
from charged.simulator.vehicles import (
    NOMINAL_VOLTAGE,
    TAPER_CURRENT,
    Vehicle,
    charge_seconds,
    occupied_share,
    sample_arrival,
    sample_vehicle,
)

if TYPE_CHECKING:
    from charged.simulator.fleet import ChargePoint

STEP = 10.0  # fleet seconds per model step
MIN_CURRENT = 6.0  # below this limit a vehicle stops charging
MAX_CURRENT = 32.0
IDLE_PHASE_CURRENT = 0.001  # what the unused phases of a one-phase vehicle read
HISTORY_PER_CONNECTOR = 500  # finished sessions kept per connector (bounded memory)
FINISHING_SECONDS = 60.0  # a full car this close to leaving reads Finishing (OCPP states)


class ConnectorBase:
    """What the server asks of a connector, whichever model drives its car."""

    def __init__(self, charge_point: ChargePoint, connector_id: int) -> None:
        self.charge_point = charge_point
        self.connector_id = connector_id
        self.schuko = charge_point.kind.is_schuko(connector_id)
        self.settings = ConnectorSettings()

    def limit(self) -> float | None:
        """The current cap from settings: None = none, 0 = no charging at all."""
        if self.settings.mode == "Off":
            return 0.0
        cp = self.charge_point
        caps = [
            c
            for c in (self.settings.max_current, cp.settings.max_current, cp.installation_current)
            if c is not None
        ]
        return min(caps) if caps else None

    def apply_settings(self) -> None:
        """The cloud stored new settings: models that act on them later are told here."""

    def advance_to(self, now: float) -> None:
        raise NotImplementedError

    def reading(self) -> ConnectorReading:
        raise NotImplementedError

    def remote_stop(self) -> bool:
        raise NotImplementedError

    def remote_start(self) -> bool:
        raise NotImplementedError

    def sessions(self) -> list[Session]:
        raise NotImplementedError


class Connector(ConnectorBase):
    """The lazily stepped model of the field study (no fuse tree, limits act at once)."""

    def __init__(
        self, charge_point: ChargePoint, connector_id: int, slot: int, slots: int, seed: int
    ) -> None:
        super().__init__(charge_point, connector_id)
        self._slot = slot  # position in the fleet: makes session ids unique fleet-wide
        self._slots = slots
        self._rng = random.Random(f"{seed}/{charge_point.id}/{connector_id}")
        self._base_voltage = NOMINAL_VOLTAGE + self._rng.uniform(-1.5, 1.5)
        self._voltages: tuple[float, float, float] = (self._base_voltage,) * 3
        self._draw: tuple[float, float, float] = (0.0, 0.0, 0.0)  # wanted A, next step
        self._sessions_started = 0
        self.vehicle: Vehicle | None = None
        self.session: Session | None = None
        self.full = False
        self.history: deque[Session] = deque(maxlen=HISTORY_PER_CONNECTOR)
        self.t = charge_point.fleet_start
        self._next_arrival = self.t
        self._initial_state()

    # ------------------------------------------------------------------ model

    def _initial_state(self) -> None:
        # Start warm: some bays are already occupied, part-way through a visit, so the first
        # poll already shows charging without simulating the hours before the start.
        if self._rng.random() >= occupied_share(self.t):
            self._next_arrival = self._sample_arrival(self.t)
            return
        vehicle = self._sample_vehicle(self.t)
        progress = self._rng.uniform(0.0, 1.3)  # >1: already full, waiting to leave
        charge_s = charge_seconds(vehicle)
        elapsed = _grid(min(progress, 1.0) * charge_s + max(0.0, progress - 1.0) * 3600.0)
        start = self.t - elapsed
        vehicle.departs = max(vehicle.departs - elapsed, self.t + 15 * 60.0)
        self.vehicle = vehicle
        self._open_session(start)
        assert self.session is not None
        if progress >= 1.0:
            self.session.energy_kwh = vehicle.target_kwh
            self.session.charging_seconds = charge_s
            self.session.idle_seconds = elapsed - charge_s if elapsed > charge_s else 0.0
            self.full = True
        else:
            self.session.energy_kwh = progress * vehicle.target_kwh
            self.session.charging_seconds = elapsed
        self._choose_draw()

    def advance_to(self, now: float) -> None:
        """Bring the model from its last grid point up to the last grid point ≤ now."""
        target = self.t + math.floor((now - self.t) / STEP) * STEP
        while self.t < target:
            vehicle = self.vehicle
            if vehicle is None:
                arrival = self.t + _grid_ceil(self._next_arrival - self.t)
                if arrival > target:
                    self.t = target
                    break
                self.t = arrival
                self._arrive()
                continue
            departs = self.t + _grid_ceil(vehicle.departs - self.t)
            if not self._drawing():
                # Nothing flows until the car leaves or settings change (which only happen
                # after this catch-up): jump.
                until = min(departs, target)
                if self.session is not None:
                    self.session.idle_seconds += until - self.t
                self.t = until
                if self.t >= departs:
                    self._depart()
                continue
            self._step()
            if self.t >= departs:
                self._depart()

    def _step(self) -> None:
        session = self.session
        assert session is not None and self.vehicle is not None
        currents = self.effective_currents(self._draw)
        power_kw = sum(i * v for i, v in zip(currents, self._voltages, strict=True)) / 1000.0
        session.energy_kwh += power_kw * STEP / 3600.0
        session.charging_seconds += STEP
        self.t += STEP
        if session.energy_kwh >= self.vehicle.target_kwh:
            self.full = True
        self._choose_draw()

    def _choose_draw(self) -> None:
        """Voltages and the vehicle's wanted current for the coming step."""
        rand, base = self._rng.random, self._base_voltage - 0.6
        # ±0.6 V of flicker around the connector's own level (this runs every step: keep cheap)
        self._voltages = (
            round(base + 1.2 * rand(), 1),
            round(base + 1.2 * rand(), 1),
            round(base + 1.2 * rand(), 1),
        )
        vehicle, session = self.vehicle, self.session
        if vehicle is None or session is None or self.full:
            self._draw = (0.0, 0.0, 0.0)
            return
        if session.energy_kwh >= vehicle.target_kwh - vehicle.taper_kwh:
            # near full: pulse between ≈0 and ≈3.5 A
            amps = TAPER_CURRENT + self._rng.uniform(-0.1, 0.1) if self._rng.random() < 0.6 else 0.0
        else:
            amps = vehicle.current + self._rng.uniform(-0.15, 0.15)
        if vehicle.phases == 3:
            self._draw = (amps, amps, amps)
        else:
            self._draw = (amps, IDLE_PHASE_CURRENT, IDLE_PHASE_CURRENT)

    def _arrive(self) -> None:
        self.vehicle = self._sample_vehicle(self.t)
        self.full = False
        self._open_session(self.t)
        self._choose_draw()

    def _depart(self) -> None:
        self._close_session()
        self.vehicle = None
        self.full = False
        self._draw = (0.0, 0.0, 0.0)
        self._next_arrival = self._sample_arrival(self.t)

    def _open_session(self, start: float) -> None:
        assert self.vehicle is not None
        session_id = self._sessions_started * self._slots + self._slot + 1
        self._sessions_started += 1
        self.session = Session(
            id=session_id,
            charge_point_id=self.charge_point.id,
            connector_id=self.connector_id,
            phases=self.vehicle.phases,
            start=start,
            schuko=self.schuko,
        )

    def _close_session(self) -> None:
        if self.session is not None:
            self.session.end = self.t
            self.history.append(self.session)
            self.session = None

    def _sample_vehicle(self, arrival: float) -> Vehicle:
        vehicle = sample_vehicle(self._rng, arrival)
        if self.schuko:
            # a household socket: one phase, at most 10 A (the same draws: seeds comparable);
            # it takes longer, and stays as long after being full
            tail = vehicle.departs - arrival - charge_seconds(vehicle)
            vehicle.phases = 1
            vehicle.current = min(vehicle.current, SCHUKO_MAX_CURRENT - 0.5)
            vehicle.departs = arrival + charge_seconds(vehicle) + tail
        return vehicle

    def _sample_arrival(self, after: float) -> float:
        return sample_arrival(self._rng, after)

    # ------------------------------------------------------------ the loop

    def effective_currents(self, wanted: tuple[float, float, float]) -> tuple[float, float, float]:
        cap = self.limit()
        if cap is None:
            return wanted
        if cap < MIN_CURRENT:
            return (0.0, 0.0, 0.0)
        # a capped vehicle settles just under the limit, never above it
        ceiling = cap - 0.05
        return (min(wanted[0], ceiling), min(wanted[1], ceiling), min(wanted[2], ceiling))

    def _drawing(self) -> bool:
        if self.session is None or self.full:
            return False
        cap = self.limit()
        return cap is None or cap >= MIN_CURRENT

    def reading(self) -> ConnectorReading:
        if self.vehicle is None:
            return ConnectorReading("Available", None, self._voltages, None)
        if not self._drawing():
            return ConnectorReading(
                "Connected", None, self._voltages, self.session, self._idle_reason()
            )
        return ConnectorReading(
            "Charging", self.effective_currents(self._draw), self._voltages, self.session
        )

    def _idle_reason(self) -> str:
        if self.session is None:
            return "stopped"
        if self.full:
            assert self.vehicle is not None
            soon = self.vehicle.departs - self.t <= FINISHING_SECONDS
            return "finishing" if soon else "full"
        return "paused"

    # ------------------------------------------------------------ commands

    def remote_stop(self) -> bool:
        """End the running session; the vehicle stays plugged in.  False if none runs."""
        if self.session is None or self.vehicle is None:
            return False
        # what the car still wants is what a remote start would deliver
        self.vehicle.target_kwh = max(
            self.vehicle.taper_kwh, self.vehicle.target_kwh - self.session.energy_kwh
        )
        self._close_session()
        self.full = False
        self._draw = (0.0, 0.0, 0.0)
        return True

    def remote_start(self) -> bool:
        """Open a new session for a plugged-in vehicle.  False if no vehicle is there."""
        if self.vehicle is None:
            return False
        if self.session is None:
            self.full = False
            self._open_session(self.t)
            self._choose_draw()
        return True

    def sessions(self) -> list[Session]:
        """Finished sessions, then the running one, oldest first."""
        return [*self.history, *([self.session] if self.session is not None else [])]


def _grid(seconds: float) -> float:
    return math.floor(seconds / STEP) * STEP


def _grid_ceil(seconds: float) -> float:
    return max(STEP, math.ceil(seconds / STEP) * STEP)
