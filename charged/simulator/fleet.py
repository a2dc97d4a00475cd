"""The simulated fleet: Aura charge points, their connectors and the vehicles that visit them.

Fleet time runs at ``speed`` fleet seconds per clock second from ``start_time``.  The model
steps lazily: a charge point is brought up to "now" only when someone asks about it, in fixed
steps of :data:`STEP` fleet seconds on a grid anchored at ``start_time``.  Every connector draws
from its own seeded random stream, and only inside steps, so what a connector does is the same
for a seed whatever the order or timing of requests (settings changes aside, which take effect
at the grid point they arrive at).  Stretches where nothing draws power (no vehicle, a full or
paused vehicle) are skipped in one jump, so a charger asked about once a day costs little.

Vehicles follow the field study in the API reference: ≈230 V; one phase at ≈15 A or ≈9 A
(other phases ≈0.001 A) or three phases at ≈15 A; 4–6 kWh per visit; near full they drop to
≈3.5 A and pulse; when full the connector goes Connected until the car leaves, then Available.
A connector's ``maxCurrent`` (and the charge point's, and the charge point's installation
current: what its wiring and fuse allow, 32 A unless configured lower) caps the draw, below
6 A the vehicle stops, mode Off drops it to 0 at once.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from charged.clock import Clock
from charged.simulator.grid import Grid, GroundTruth
from charged.simulator.kinds import AURA, SCHUKO_MAX_CURRENT, ChargerKind, fleet_kinds
from charged.simulator.physics import Physics, PhysicsConfig


class PhysicalConnectors(Protocol):
    """Builds a charge point's connectors on a site with physics."""

    def __call__(
        self,
        cp: ChargePoint,
        index: int,
        slots: int,
        seed: int,
        physics: Physics,
        config: PhysicsConfig,
    ) -> list[ConnectorBase]: ...


STEP = 10.0  # fleet seconds per model step
NOMINAL_VOLTAGE = 230.0
MIN_CURRENT = 6.0  # below this limit a vehicle stops charging
MAX_CURRENT = 32.0
INSTALLATION_CURRENT = 32.0  # default: what an Aura's wiring allows at most
TAPER_CURRENT = 3.5
IDLE_PHASE_CURRENT = 0.001  # what the unused phases of a one-phase vehicle read
HISTORY_PER_CONNECTOR = 500  # finished sessions kept per connector (bounded memory)
CONNECTORS_PER_AURA = 2
FINISHING_SECONDS = 60.0  # a full car this close to leaving reads Finishing (OCPP states)

# Arrivals per connector per hour, by UTC hour of fleet time: a morning rush, a quieter day,
# a smaller evening bump, few at night.
_ARRIVALS_PER_HOUR = [0.02] * 6 + [0.15] + [0.45] * 3 + [0.12] * 6 + [0.2] * 3 + [0.05] * 5
_MAX_ARRIVAL_RATE = max(_ARRIVALS_PER_HOUR)


@dataclass
class ConnectorSettings:
    max_current: float | None = None  # None: no user limit; 0 pauses; else 6–32 A
    mode: str = "On"  # On | Off | Schedule (Schedule behaves as On: no schedule engine)
    rfid_lock: bool = False
    cable_lock: bool = False


@dataclass
class ChargePointSettings:
    dimmer: str = "Medium"
    down_light: bool = False
    max_current: float | None = None  # caps each connector of the charge point


@dataclass
class Vehicle:
    phases: int  # 1 or 3
    current: float  # amperes per phase it draws when unconstrained
    target_kwh: float  # energy it takes this visit
    taper_kwh: float  # the last part of target_kwh is taken tapering/pulsing
    departs: float  # fleet epoch seconds


@dataclass
class Session:
    """A charging session as it happens; its truth is what the status reports add up to."""

    id: int
    charge_point_id: str
    connector_id: int
    phases: int
    start: float
    end: float | None = None
    energy_kwh: float = 0.0
    charging_seconds: float = 0.0  # drawing power
    idle_seconds: float = 0.0  # plugged in, session open, not drawing
    first_draw: float | None = None  # when the car first drew current (wired sites only)
    schuko: bool = False  # on a Halo's household socket

    @property
    def session_type(self) -> str:
        if self.schuko:
            return "Schuko"
        return "ThreePhase" if self.phases == 3 else "OnePhase"

    def truth(self) -> SessionTruth:
        return SessionTruth(
            session_id=self.id,
            charge_point_id=self.charge_point_id,
            connector_id=self.connector_id,
            phases=self.phases,
            schuko=self.schuko,
            start=self.start,
            end=self.end,
            energy_kwh=self.energy_kwh,
            charging_seconds=self.charging_seconds,
            idle_seconds=self.idle_seconds,
            first_draw=self.first_draw,
        )


@dataclass(frozen=True)
class SessionTruth:
    session_id: int
    charge_point_id: str
    connector_id: int
    phases: int
    start: float
    end: float | None
    energy_kwh: float
    charging_seconds: float
    idle_seconds: float
    first_draw: float | None = None
    schuko: bool = False

    @property
    def session_type(self) -> str:
        if self.schuko:
            return "Schuko"
        return "ThreePhase" if self.phases == 3 else "OnePhase"


@dataclass(frozen=True)
class ConnectorReading:
    """What a connector shows right now (model state at the last grid point, current settings)."""

    status: str  # Available | Charging | Connected
    currents: tuple[float, float, float] | None  # per phase, None unless charging
    voltages: tuple[float, float, float]
    session: Session | None
    # why a plugged-in car draws nothing: "stopped" (no session), "full", "finishing" (full
    # and about to leave), "paused" (a limit below 6 A, or mode Off); None otherwise
    idle: str | None = None

    @property
    def power_kw(self) -> float:
        if self.currents is None:
            return 0.0
        return sum(i * v for i, v in zip(self.currents, self.voltages, strict=True)) / 1000.0


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
        charge_s = _charge_seconds(vehicle)
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


@dataclass
class ChargePoint:
    id: str
    index: int
    name: str
    password: str
    fleet_start: float
    settings: ChargePointSettings = field(default_factory=ChargePointSettings)
    connectors: list[ConnectorBase] = field(default_factory=list)
    offline_until: float = 0.0  # fleet time a reboot ends
    installation_current: float = INSTALLATION_CURRENT  # A per phase the wiring allows
    # the vendor's own cloud load balancing (an Amp/Power Guard set up in its partner portal)
    is_loadbalanced: bool = False
    firmware_version: str = "1.4.2"
    hardware_version: str = "1.0.0"
    kind: ChargerKind = AURA  # model, protocol, how it spells statuses

    def connector(self, connector_id: int) -> ConnectorBase | None:
        if 1 <= connector_id <= len(self.connectors):
            return self.connectors[connector_id - 1]
        return None

    def advance_to(self, now: float) -> None:
        for connector in self.connectors:
            connector.advance_to(now)


class Fleet:
    """Charge points with two connectors each, deterministic for a seed: all CAPI Auras, or
    (``mixed``) the cycle of kinds in :mod:`charged.simulator.kinds`."""

    def __init__(
        self,
        *,
        chargers: int,
        seed: int,
        clock: Clock,
        speed: float = 1.0,
        start_time: float | None = None,
        installation_current: float = INSTALLATION_CURRENT,
        installation_currents: Mapping[str, float] | None = None,
        physics: PhysicsConfig | None = None,
        loadbalanced: frozenset[str] = frozenset(),
        physical_connectors: PhysicalConnectors | None = None,
        mixed: bool = False,
    ) -> None:
        """``installation_current`` is every charge point's, ``installation_currents`` the
        exceptions by charge point id (ids that are not in the fleet are refused).  With
        ``physics`` the connectors are driven by the site's physics (fuse tree, rotations,
        limits acting late, ground truth), built by ``physical_connectors``
        (:func:`charged.simulator.physical.physical_connectors`, passed in because that module
        builds on this one's classes)."""
        if chargers < 0:
            raise ValueError(f"chargers must not be negative, got {chargers}")
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        ids = charge_point_ids(seed, chargers)
        exceptions = dict(installation_currents or {})
        for cp_id, amps in [("(every charger)", installation_current), *exceptions.items()]:
            check_installation_current(amps, cp_id)
        strangers = sorted(set(exceptions) - set(ids))
        if strangers:
            raise ValueError(
                f"installation current for {strangers[0]}, which is not one of the "
                f"{chargers} simulated chargers of seed {seed}"
            )
        self._clock = clock
        self.speed = speed
        self.start_time = float(math.floor(clock.time() if start_time is None else start_time))
        self._mono_start = clock.monotonic()
        self._offset = 0.0
        self._by_id: dict[str, ChargePoint] = {}
        slots = chargers * CONNECTORS_PER_AURA
        self.physics: Physics | None = None
        if physics is not None:
            if physical_connectors is None:
                raise ValueError("a fleet with site physics needs physical_connectors")
            physics.validate(ids)
            self.physics = Physics(
                Grid(physics.grid_spec(), int(self.start_time), record=physics.record),
                limit_delay=physics.limit_delay,
            )
        kinds = fleet_kinds(chargers, mixed=mixed)
        for index, cp_id in enumerate(ids):
            kind = kinds[index]
            cp = ChargePoint(
                id=cp_id,
                index=index,
                name=f"{kind.model.capitalize()} {index + 1:02d}",
                kind=kind,
                password=f"{random.Random(f'{seed}/pw/{cp_id}').randrange(10**8):08d}",
                fleet_start=self.start_time,
                installation_current=float(exceptions.get(cp_id, installation_current)),
                is_loadbalanced=cp_id in loadbalanced,
            )
            if self.physics is None or physics is None or physical_connectors is None:
                cp.connectors = [
                    Connector(cp, cid, index * CONNECTORS_PER_AURA + cid - 1, slots, seed)
                    for cid in range(1, CONNECTORS_PER_AURA + 1)
                ]
            else:
                cp.connectors = physical_connectors(cp, index, slots, seed, self.physics, physics)
            self._by_id[cp_id] = cp

    def now(self) -> float:
        """Fleet epoch seconds: start + speed × clock seconds since creation + advance()s."""
        elapsed = self._clock.monotonic() - self._mono_start
        return self.start_time + self.speed * elapsed + self._offset

    def advance(self, seconds: float) -> None:
        """Move fleet time forward without moving the clock (tests, fast-forward)."""
        if seconds < 0:
            raise ValueError("fleet time cannot go back")
        self._offset += seconds

    def charge_point_ids(self) -> list[str]:
        return list(self._by_id)

    def charge_points(self) -> list[ChargePoint]:
        """All charge points as they are (not brought up to now: cheap, for listings)."""
        return list(self._by_id.values())

    def get(self, cp_id: str) -> ChargePoint | None:
        """The charge point brought up to now, or None if the fleet has no such id."""
        cp = self._by_id.get(cp_id)
        if cp is not None:
            if self.physics is not None:
                self.physics.advance_to(self.now())  # one site: every charger moves together
            else:
                cp.advance_to(self.now())
        return cp

    def settings_changed(self, cp: ChargePoint) -> None:
        """The cloud stored new settings for ``cp`` (or one of its connectors): on a wired
        site the cars follow them after the limit delay; the plain model reads them live."""
        for connector in cp.connectors:
            connector.apply_settings()

    def ground_truth(self) -> GroundTruth:
        """Per fuse and site phase up to now: current, peak, ampere-seconds and seconds above
        the limit.  Only a fleet created with ``physics`` has one."""
        if self.physics is None:
            raise RuntimeError("this fleet has no site physics; give it a PhysicsConfig")
        self.physics.advance_to(self.now())
        return self.physics.grid.truth()

    def sessions(self, cp_id: str, connector_id: int | None = None) -> list[SessionTruth]:
        """Truth of the charge point's sessions (finished and running), oldest first."""
        cp = self.get(cp_id)
        if cp is None:
            raise KeyError(cp_id)
        return [
            s.truth()
            for c in cp.connectors
            if connector_id is None or c.connector_id == connector_id
            for s in c.sessions()
        ]


def check_installation_current(amps: float, where: str) -> None:
    """An Aura is installed for 6–32 A per phase; anything else is a ValueError naming it."""
    if isinstance(amps, bool) or not MIN_CURRENT <= amps <= MAX_CURRENT:
        raise ValueError(
            f"installation current of {where} must be {MIN_CURRENT:g}–{MAX_CURRENT:g} A, "
            f"got {amps!r}"
        )


def charge_point_ids(seed: int, count: int) -> list[str]:
    """The ids a fleet of ``count`` chargers gets for ``seed``, in the vendor's style: ten
    digits and a letter, e.g. 1903000191A."""
    rng = random.Random(f"{seed}/ids")
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < count:
        cp_id = (
            f"{rng.choice((19, 20, 21, 22))}{rng.randint(1, 12):02d}"
            f"{rng.randrange(10**6):06d}{rng.choice('ABCD')}"
        )
        if cp_id not in seen:
            seen.add(cp_id)
            ids.append(cp_id)
    return ids


def sample_vehicle(rng: random.Random, arrival: float) -> Vehicle:
    """A visiting vehicle as the field study saw them (see the module docstring)."""
    if rng.random() < 0.3:
        phases, current = 3, 15.0 + rng.uniform(-0.3, 0.3)
    else:
        phases = 1
        current = (15.0 if rng.random() < 0.7 else 9.0) + rng.uniform(-0.3, 0.3)
    target = rng.uniform(4.0, 6.0)
    vehicle = Vehicle(
        phases=phases,
        current=current,
        target_kwh=target,
        taper_kwh=rng.uniform(0.15, 0.35),
        departs=0.0,
    )
    vehicle.departs = arrival + _charge_seconds(vehicle) + rng.uniform(0.25, 3.0) * 3600.0
    return vehicle


def sample_arrival(rng: random.Random, after: float) -> float:
    """The next arrival after ``after``: non-homogeneous Poisson by thinning at the peak rate."""
    t = after
    while True:
        t += rng.expovariate(_MAX_ARRIVAL_RATE) * 3600.0
        if rng.random() * _MAX_ARRIVAL_RATE <= _ARRIVALS_PER_HOUR[_hour(t)]:
            return t


def occupied_share(t: float) -> float:
    """Share of bays already occupied at a start at ``t`` (the warm start)."""
    hour = _hour(t)
    return 0.4 if 7 <= hour < 19 else 0.15


def charge_seconds(vehicle: Vehicle) -> float:
    return _charge_seconds(vehicle)


def _charge_seconds(vehicle: Vehicle) -> float:
    bulk_kw = vehicle.phases * vehicle.current * NOMINAL_VOLTAGE / 1000.0
    taper_kw = vehicle.phases * TAPER_CURRENT * 0.6 * NOMINAL_VOLTAGE / 1000.0
    bulk = (vehicle.target_kwh - vehicle.taper_kwh) / bulk_kw
    return (bulk + vehicle.taper_kwh / taper_kw) * 3600.0


def _hour(t: float) -> int:
    return int(t // 3600) % 24


def _grid(seconds: float) -> float:
    return math.floor(seconds / STEP) * STEP


def _grid_ceil(seconds: float) -> float:
    return max(STEP, math.ceil(seconds / STEP) * STEP)
