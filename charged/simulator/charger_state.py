"""The values a simulated charger holds and shows: its settings and its connectors', the
charging sessions (as they happen, and their truth: what the status reports add up to), and
what a connector reads right now.
"""

from __future__ import annotations

from dataclasses import dataclass


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
