"""What a policy is shown every tick: the vendor API's view of each connector, nothing more.

The cloud API tells, every 30 s per connector: its status, the current per phase (null unless
charging), the session's energy and start, and the settings it holds (``maxCurrent``, read
back).  No state of charge, no departure, no energy wanted, no fuse readings; with a meter
series, what each site meter reads (the building's own load) at the poll.  A policy that
wants to know which phases a car draws on, or whether it is full, learns it from these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from charged.balancer.model import ConnectorKey, PhaseCurrents, Site

AVAILABLE = "Available"  # no car
CHARGING = "Charging"  # drawing
CONNECTED = "Connected"  # plugged in, not drawing (paused, waiting, or full)


@dataclass(frozen=True, slots=True)
class ConnectorTelemetry:
    key: ConnectorKey
    status: str
    currents: PhaseCurrents | None  # A per charger terminal L1, L2, L3; None unless charging
    setting: float  # the maxCurrent the connector holds, as read back
    session_energy_kwh: float  # 0 without a session
    session_start: float | None  # None without a session


NO_METERS: Mapping[str, PhaseCurrents] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Telemetry:
    time: float
    connectors: Mapping[ConnectorKey, ConnectorTelemetry]
    # what each site meter reads at this poll (A per site phase): what else its fuse feeds
    # besides the chargers, as in the daemon's site.meters; empty without a meter series
    building: Mapping[str, PhaseCurrents] = field(default_factory=lambda: NO_METERS)


class Policy(Protocol):
    """A balancing policy as the engine drives it.

    ``initial_limit`` is what a connector holds when the run starts.  ``decide`` is called after
    every poll and returns the settings wanted; the engine writes those that differ from what
    the connector holds (each write counts, and takes the physics' delay to act).
    """

    name: str

    def initial_limit(self, key: ConnectorKey) -> float: ...

    def decide(self, telemetry: Telemetry) -> Mapping[ConnectorKey, float]: ...


class PolicyFactory(Protocol):
    def __call__(self, site: Site) -> Policy: ...
