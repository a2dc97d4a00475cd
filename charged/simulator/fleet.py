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

This module is the fleet and its charge points; the connector model is
:mod:`charged.simulator.connector`, the visiting vehicles :mod:`charged.simulator.vehicles`,
the settings, sessions and readings :mod:`charged.simulator.charger_state`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from charged.clock import Clock
from charged.simulator.charger_state import ChargePointSettings, SessionTruth
from charged.simulator.connector import MAX_CURRENT, MIN_CURRENT, Connector, ConnectorBase
from charged.simulator.grid import Grid, GroundTruth
from charged.simulator.kinds import AURA, ChargerKind, fleet_kinds
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


INSTALLATION_CURRENT = 32.0  # default: what an Aura's wiring allows at most
CONNECTORS_PER_AURA = 2


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
