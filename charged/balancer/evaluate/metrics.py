"""The figures every policy is judged by, from one run (or the optimum's schedule).

Definitions (also in README):

- *A·s above* / *s above*: per fuse and site phase, ∫ max(0, I − limit) dt and the seconds
  with I > limit, from the simulator's ground truth (every simulated second).
- *peak*: the highest current per fuse and phase.
- *energy*: kWh delivered to the cars, and its share of what the scenario's cars asked for.
- *fully served*: share of sessions that got everything they asked for.
- *Jain*: Jain's fairness index of delivered ÷ asked over the sessions,
  (Σx)² / (n·Σx²); 1 is perfectly even.  *lowest ratio*: the smallest delivered ÷ asked.
- *writes per connector-hour*: setpoint writes ÷ (connectors × hours of the run); *per
  plugged hour*: ÷ the hours connectors had a car.
- *pauses per session*: writes that took a plugged-in, not yet full car from >= 6 A to < 6 A.
- *p95 first 6 A*: the 95th percentile, over the sessions that arrived when every car present
  could have had 6 A on every fuse phase beside the building's load ("room exists"), of
  the time from plug-in to the
  first limit in force >= 6 A; a session that never got 6 A counts its whole stay.  That
  set is a fact of the scenario: it holds sessions that arrived while the fuse was full of
  other cars above 6 A, who had to be lowered first.  *p95 first 6 A, room free*: the same
  over the sessions for which 6 A more fit on every fuse phase the car loads with every car
  present drawing all it can (nobody has to be lowered): a fact of the scenario, the
  policy's own delay to a car that plugs in under a fuse with room.
- *unbalance*: at the root fuse, the mean over loaded seconds of (highest − lowest phase
  current), A, and that integral over the integral of the mean phase current, %.
- *CPU per tick*: the policy's own CPU time per tick (thread time), mean and 99th percentile.
- *window peak*, *monthly peak*, *cost*: :mod:`.power` (the root fuse's power, building
  included, per clock window; the chargers' energy at the price series' prices).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, timezone
from typing import Any

from charged.balancer.evaluate.engine import RunResult, SessionOutcome
from charged.balancer.evaluate.power import PowerFigures, power_figures
from charged.prices.series import PriceSeries


@dataclass(frozen=True, slots=True)
class FusePhaseFigures:
    fuse: str
    phase: str
    limit: float
    peak: float
    ampere_seconds_above: float
    seconds_above: int


@dataclass(frozen=True, slots=True)
class Figures:
    policy: str
    scenario: str
    sessions: int
    energy_asked_kwh: float
    energy_kwh: float
    energy_pct: float
    fully_served_pct: float
    jain: float
    lowest_ratio: float
    ampere_seconds_above: float  # over every fuse and phase
    seconds_above: int  # over every fuse and phase (a second above on two phases counts 2)
    fuses: tuple[FusePhaseFigures, ...]
    writes: int | None
    writes_per_connector_hour: float | None
    writes_per_plugged_hour: float | None
    pauses_per_session: float | None
    max_pauses: int | None
    p95_first_6a_s: float | None
    room_sessions: int | None  # sessions the p95 is over
    p95_first_6a_free_s: float | None  # the same over the sessions that found room free
    free_sessions: int | None
    unbalance_a: float
    unbalance_pct: float
    cpu_per_tick_ms: float | None
    cpu_p99_tick_ms: float | None
    ticks: int | None
    run_s: float
    power: PowerFigures | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fuses"] = [asdict(f) for f in self.fuses]
        if self.power is not None:
            data["power"]["monthly_peak_kw"] = self.power.monthly_peak_kw
        return data


def jain_index(values: Sequence[float]) -> float:
    """Jain's fairness index; 1.0 for no values or all zero (nobody is treated worse)."""
    total = math.fsum(values)
    squares = math.fsum(v * v for v in values)
    if not values or squares == 0:
        return 1.0
    return total * total / (len(values) * squares)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0–1) by linear interpolation, None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1])


def session_figures(
    sessions: Sequence[SessionOutcome],
) -> tuple[float, float, float, float, float, float]:
    """(asked kWh, delivered kWh, % energy, % fully served, Jain, lowest ratio)."""
    asked = math.fsum(s.visit.energy_kwh for s in sessions)
    delivered = math.fsum(min(s.delivered_kwh, s.visit.energy_kwh) for s in sessions)
    ratios = [s.ratio for s in sessions]
    full = sum(s.fully_served for s in sessions)
    return (
        asked,
        delivered,
        100.0 * delivered / asked if asked else 100.0,
        100.0 * full / len(sessions) if sessions else 100.0,
        jain_index(ratios),
        min(ratios) if ratios else 1.0,
    )


def figures(
    result: RunResult,
    *,
    window_s: int = 3600,
    tz: timezone = UTC,
    prices: PriceSeries | None = None,
) -> Figures:
    asked, delivered, pct, full_pct, jain, lowest = session_figures(result.sessions)
    hours = (result.end - result.start) / 3600.0
    plugged_h = result.plugged_connector_s / 3600.0
    room = [s for s in result.sessions if s.room_at_arrival]
    waits = [
        s.first_6a_s if s.first_6a_s is not None else s.visit.departure - s.visit.arrival
        for s in room
    ]
    free = [s for s in result.sessions if s.room_free]
    free_waits = [
        s.first_6a_s if s.first_6a_s is not None else s.visit.departure - s.visit.arrival
        for s in free
    ]
    cpu_ms = [ns / 1e6 for ns in result.tick_cpu_ns]
    fuses = tuple(
        FusePhaseFigures(
            fuse=p.fuse,
            phase=p.phase,
            limit=p.limit,
            peak=p.peak,
            ampere_seconds_above=p.ampere_seconds_above,
            seconds_above=p.seconds_above,
        )
        for p in result.truth.phases
    )
    pauses = [s.pauses for s in result.sessions]
    return Figures(
        policy=result.policy,
        scenario=result.scenario,
        sessions=len(result.sessions),
        energy_asked_kwh=asked,
        energy_kwh=delivered,
        energy_pct=pct,
        fully_served_pct=full_pct,
        jain=jain,
        lowest_ratio=lowest,
        ampere_seconds_above=math.fsum(f.ampere_seconds_above for f in fuses),
        seconds_above=sum(f.seconds_above for f in fuses),
        fuses=fuses,
        writes=result.writes,
        writes_per_connector_hour=result.writes / (result.connectors * hours) if hours else 0.0,
        writes_per_plugged_hour=result.writes / plugged_h if plugged_h else 0.0,
        pauses_per_session=statistics.fmean(pauses) if pauses else 0.0,
        max_pauses=max(pauses) if pauses else 0,
        p95_first_6a_s=percentile(waits, 0.95),
        room_sessions=len(room),
        p95_first_6a_free_s=percentile(free_waits, 0.95),
        free_sessions=len(free),
        unbalance_a=result.root_unbalance_as / result.root_loaded_s if result.root_loaded_s else 0,
        unbalance_pct=100 * result.root_unbalance_as / result.root_mean_as
        if result.root_mean_as
        else 0.0,
        cpu_per_tick_ms=statistics.fmean(cpu_ms) if cpu_ms else 0.0,
        cpu_p99_tick_ms=percentile(cpu_ms, 0.99),
        ticks=result.ticks,
        run_s=result.wall_s,
        power=power_figures(
            result.slot_times,
            result.slot_root_kwh,
            result.slot_building_kwh,
            window_s=window_s,
            tz=tz,
            prices=prices,
        ),
    )
