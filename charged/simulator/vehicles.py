"""The vehicles that visit a simulated charger, as the field study in the API reference saw
them: ≈230 V; one phase at ≈15 A or ≈9 A or three phases at ≈15 A; 4–6 kWh per visit, the
last part tapering at ≈3.5 A; arriving by a daily pattern (a morning rush, a quieter day, a
smaller evening bump, few at night), each drawn from the stream it is given.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NOMINAL_VOLTAGE = 230.0
TAPER_CURRENT = 3.5

# Arrivals per connector per hour, by UTC hour of fleet time: a morning rush, a quieter day,
# a smaller evening bump, few at night.
_ARRIVALS_PER_HOUR = [0.02] * 6 + [0.15] + [0.45] * 3 + [0.12] * 6 + [0.2] * 3 + [0.05] * 5
_MAX_ARRIVAL_RATE = max(_ARRIVALS_PER_HOUR)


@dataclass
class Vehicle:
    phases: int  # 1 or 3
    current: float  # amperes per phase it draws when unconstrained
    target_kwh: float  # energy it takes this visit
    taper_kwh: float  # the last part of target_kwh is taken tapering/pulsing
    departs: float  # fleet epoch seconds


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
