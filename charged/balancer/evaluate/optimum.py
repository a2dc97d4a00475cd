"""The offline optimum: the most energy any controller could deliver, knowing everything.

A linear program over the whole horizon with perfect knowledge of every arrival, departure
and energy asked.  Time is cut into steps of ``step_s`` seconds (60; 300 beyond two days);
the variable ``x[i, k]`` is visit *i*'s mean current per phase over step *k*:

    maximise    Σ_i,k  phases_i · x[i, k]                       (energy delivered)
    subject to  0 <= x[i, k] <= cap_i · present[i, k]           (the car's own maximum,
                                                                 for the part of the step
                                                                 it is plugged in)
                Σ_k phases_i · x[i, k] · V · step <= energy_i   (it takes what it asked for)
                Σ_{i on fuse f, loading phase p} x[i, k] <= limit[f, p]   (every fuse,
                                                                 every site phase, every
                                                                 step)

with cap_i = min(max_current_i, follows_limit_i × the connector's maximum).  Every schedule
the physics can run satisfies these (a current within the limit at every second is within it
on average over a step), so the optimum is an upper bound on every policy's energy; it
ignores the 6 A floor, the taper near full and the delays of the real loop, which only ever
lower what a real policy gets.  The horizon splits exactly where no car is plugged in, so a
month is solved as a sequence of days.

A second stage keeps that energy (to a relative 1e-7) and, by ``objective``
(:mod:`.optimum_lp`): ``energy`` (``optimal``) maximises the lowest session's delivered ÷
asked, so that the optimum's fairness figures describe a fair optimal schedule, not an
arbitrary vertex of the first LP; ``cost`` (``optimal-cost``) minimises the chargers' energy
cost at the price series' prices; ``peak`` (``optimal-peak``) minimises the highest hourly
mean power at the root, chargers and building.  Each is the best any controller could do on
its objective *for the most energy the fuses allow*: a policy that delivers less can cost
less or peak lower, which the energy beside it shows.

With a meter series each fuse phase's limit in a step is less the building's mean current
over the step; the schedule's power figures (:mod:`.power`) add the building's energy.

Needs SciPy (``pip install charged[evaluate]``): its HiGHS solver.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, timezone
from typing import Any

from charged.balancer.evaluate.engine import TICK_S, SessionOutcome
from charged.balancer.evaluate.meterseries import MeterSeries, through_fuses
from charged.balancer.evaluate.metrics import Figures, FusePhaseFigures, session_figures
from charged.balancer.evaluate.optimum_lp import Component, LpFailed, Objective, solve_component
from charged.balancer.evaluate.power import SLOT_S, PowerFigures, power_figures
from charged.balancer.evaluate.scenario import Scenario, Visit, assign_connectors
from charged.balancer.model import PHASE_NAMES, Site
from charged.prices.series import PriceSeries

DEFAULT_STEP_S = 60  # up to LONG_HORIZON_S of scenario
LONG_STEP_S = 300  # beyond it: a month at 60 s takes minutes (the fair stage), at 300 s ~40 s
LONG_HORIZON_S = 2 * 86400
NOMINAL_VOLTAGE = 230.0  # the physics' voltage: energy = phases × A × V × t


class OptimumUnavailable(RuntimeError):
    """SciPy (the optional ``evaluate`` extra) is not installed, or the solver failed."""


@dataclass(frozen=True, slots=True)
class Optimum:
    scenario: str
    step_s: int
    sessions: tuple[SessionOutcome, ...]
    peaks: dict[tuple[str, int], float]  # per (fuse, site phase): highest step-mean current
    limits: dict[tuple[str, int], float]
    unbalance_a: float
    unbalance_pct: float
    solve_s: float
    variables: int
    components: int
    # the schedule, for figures: the start of every step with a car present and, per step,
    # the mean current of every (fuse, site phase) column (``columns`` names their order),
    # the building's mean current over the step included; ``peaks`` are of these
    step_times: tuple[int, ...] = ()
    step_loads: tuple[tuple[float, ...], ...] = ()
    columns: tuple[tuple[str, int], ...] = ()
    objective: Objective = "energy"
    # the root's energy per SLOT_S slot of the clock over the engine's span (the building's
    # part apart), as a run keeps it
    slot_times: tuple[int, ...] = ()
    slot_root_kwh: tuple[float, ...] = ()
    slot_building_kwh: tuple[float, ...] = ()

    @property
    def policy(self) -> str:
        return "optimal" if self.objective == "energy" else f"optimal-{self.objective}"


def default_step(scenario: Scenario) -> int:
    """60 s for a scenario of up to two days, 300 s beyond (a coarser step only loosens the
    bound a little: it stays an upper bound)."""
    return DEFAULT_STEP_S if scenario.end - scenario.start <= LONG_HORIZON_S else LONG_STEP_S


def solve(
    scenario: Scenario,
    site: Site,
    *,
    step_s: int | None = None,
    fair_second_stage: bool = True,
    objective: Objective = "energy",
    meters: MeterSeries | None = None,
    prices: PriceSeries | None = None,
    served: dict[tuple[str, int, float], float] | None = None,
) -> Optimum:
    """The optimum of ``scenario`` on ``site`` (see the module docstring); ``step_s`` None:
    :func:`default_step`.  ``served`` (kWh per visit, by charger, connector and arrival):
    instead of the most energy, at least that much to each visit, for comparing ``cost`` or
    ``peak`` with a policy that delivered it."""
    step_s = default_step(scenario) if step_s is None else step_s
    try:
        import scipy.optimize  # noqa: F401  (the solver; imported here to fail early)
    except ImportError:
        raise OptimumUnavailable(
            "the optimal policy needs SciPy: pip install 'charged[evaluate]'"
        ) from None
    if step_s < 1:
        raise ValueError(f"the optimum's step must be at least 1 s, got {step_s}")
    began = time.perf_counter()
    scenario = assign_connectors(scenario, site.connector_keys())
    wiring = _Wiring(site)
    building = _Building(site, wiring, meters)
    delivered: dict[int, float] = {}
    step_loads: list[list[float]] = []  # per step: the current of every fuse-phase column
    charger_loads: list[list[float]] = []  # the same, the chargers' part
    step_times: list[int] = []
    variables = 0
    components = _components(scenario.visits)
    limit_of_column = [0.0] * len(wiring.columns)
    for fp, c in wiring.columns.items():
        limit_of_column[c] = wiring.limits[fp]
    for members in components:
        visits = [scenario.visits[i] for i in members]
        comp = Component(visits, step_s, wiring.loads, wiring.caps, limit_of_column)
        t0 = math.floor(min(v.arrival for v in visits) / step_s) * step_s
        t1 = math.ceil(max(v.departure for v in visits) / step_s) * step_s
        bounds = list(range(t0, t1 + 1, step_s))
        hours = list(range(t0 // 3600 * 3600, t1 + 3600, 3600))
        want = None
        if served is not None:
            want = [served.get((v.key[0], v.key[1], v.arrival), 0.0) for v in visits]
        built = building.means(bounds) if meters is not None else None
        try:
            energy, loads, nvar, t0 = solve_component(
                comp,
                objective=objective,
                fair=fair_second_stage,
                building_a=built,
                step_price=[_price(prices, t) for t in bounds[:-1]],
                hour_building_kwh=dict(zip(hours, building.root_kwh(hours), strict=False)),
                served=want,
            )
        except LpFailed as exc:
            raise OptimumUnavailable(str(exc)) from None
        variables += nvar
        step_times.extend(range(t0, t0 + step_s * len(loads), step_s))
        for n, index in enumerate(members):
            delivered[index] = energy[n]
        charger_loads.extend(loads)
        if built is None:
            step_loads.extend(loads)
        else:
            step_loads.extend(
                [
                    [a + float(built[c, k]) for c, a in enumerate(load)]
                    for k, load in enumerate(loads)
                ]
            )
    sessions = tuple(
        SessionOutcome(
            visit=v,
            delivered_kwh=min(v.energy_kwh, delivered.get(i, 0.0)),
            first_6a_s=None,
            pauses=0,
            room_at_arrival=False,
        )
        for i, v in enumerate(scenario.visits)
    )
    slots = _slots(scenario, step_s, step_times, charger_loads, building)
    peaks = dict.fromkeys(wiring.columns, 0.0)
    unbalance = mean = 0.0
    loaded = 0
    for load in step_loads:
        for fp, c in wiring.columns.items():
            peaks[fp] = max(peaks[fp], load[c])
        a, b, c3 = load[0], load[1], load[2]  # the root is the first fuse
        if a + b + c3 > 1e-9:
            unbalance += max(a, b, c3) - min(a, b, c3)
            mean += (a + b + c3) / 3
            loaded += 1
    return Optimum(
        scenario=scenario.name,
        step_s=step_s,
        sessions=sessions,
        peaks=peaks,
        limits=wiring.limits,
        unbalance_a=unbalance / loaded if loaded else 0.0,
        unbalance_pct=100 * unbalance / mean if mean else 0.0,
        solve_s=time.perf_counter() - began,
        variables=variables,
        components=len(components),
        step_times=tuple(step_times),
        step_loads=tuple(tuple(load) for load in step_loads),
        columns=tuple(wiring.columns),
        objective=objective,
        slot_times=slots[0],
        slot_root_kwh=slots[1],
        slot_building_kwh=slots[2],
    )


def _price(prices: PriceSeries | None, t: float) -> float:
    price = None if prices is None else prices.price_at(t)
    return 0.0 if price is None else price


class _Building:
    """The building's current through every fuse-phase column as a step function, and its
    integral: mean currents over LP steps, the root's energy over clock hours and slots."""

    def __init__(self, site: Site, wiring: _Wiring, meters: MeterSeries | None) -> None:
        import numpy as np

        ncol = len(wiring.columns)
        times: list[float] = []
        values: list[list[float]] = []
        for t, readings in meters.steps() if meters is not None else ():
            through = through_fuses(site, readings)
            row = [0.0] * ncol
            for (fuse, p), c in wiring.columns.items():
                row[c] = through.get(fuse, (0.0, 0.0, 0.0))[p]
            times.append(float(t))
            values.append(row)
        if not times:
            times, values = [0.0], [[0.0] * ncol]
        self.t = np.asarray(times)
        self.v = np.asarray(values)  # (changes, ncol)
        spans = np.diff(self.t)
        self.cum = np.vstack([np.zeros((1, ncol)), np.cumsum(self.v[:-1] * spans[:, None], 0)])

    def integral(self, at: Sequence[float]) -> Any:
        """∫ current dt (A·s) of every column from the first change to each time (ncol × n)."""
        import numpy as np

        at_ = np.asarray(at, dtype=float)
        i = np.clip(np.searchsorted(self.t, at_, side="right") - 1, 0, None)
        before = at_ < self.t[0]
        out = self.cum[i] + self.v[i] * (at_ - self.t[i])[:, None]
        out[before] = 0.0
        return out.T

    def means(self, bounds: Sequence[int]) -> Any:
        """Mean current of every column over each step between consecutive ``bounds``."""
        import numpy as np

        cum = self.integral(bounds)
        return np.diff(cum, axis=1) / np.diff(np.asarray(bounds, dtype=float))

    def root_kwh(self, bounds: Sequence[int]) -> list[float]:
        """The root's building energy (three phases, 230 V) between consecutive bounds."""
        import numpy as np

        cum = self.integral(bounds)[0:3].sum(axis=0)
        return [float(e) * NOMINAL_VOLTAGE / 3.6e6 for e in np.diff(cum)]


def _slots(
    scenario: Scenario,
    step_s: int,
    step_times: Sequence[int],
    step_loads: Sequence[Sequence[float]],
    building: _Building,
) -> tuple[tuple[int, ...], tuple[float, ...], tuple[float, ...]]:
    """The schedule's root energy per slot over the span a run of the engine covers (each
    step counted in the slot it starts in), and the building's."""
    if not scenario.visits:
        return (), (), ()
    start = math.floor(scenario.start) // TICK_S * TICK_S - TICK_S
    end = (math.ceil(scenario.end) // TICK_S + 2) * TICK_S
    first = -(-start // SLOT_S) * SLOT_S
    marks = list(range(first, end // SLOT_S * SLOT_S + 1, SLOT_S))
    if len(marks) < 2:
        return (), (), ()
    chargers = dict.fromkeys(marks[:-1], 0.0)
    for t, load in zip(step_times, step_loads, strict=True):
        slot = t - t % SLOT_S
        if slot in chargers:
            chargers[slot] += (load[0] + load[1] + load[2]) * NOMINAL_VOLTAGE * step_s / 3.6e6
    built = building.root_kwh(marks)
    root = tuple(chargers[t] + b for t, b in zip(marks[:-1], built, strict=True))
    return tuple(marks[:-1]), root, tuple(built)


class _Wiring:
    """Fuse-phase columns (root first) and, per (charger, phases), the columns a car loads."""

    def __init__(self, site: Site) -> None:
        self.columns: dict[tuple[str, int], int] = {}
        self.limits: dict[tuple[str, int], float] = {}
        for fuse in site.fuses():
            for p in range(3):
                self.columns[(fuse.name, p)] = len(self.columns)
                self.limits[(fuse.name, p)] = fuse.limit[p]
        self.loads: dict[tuple[str, int], list[int]] = {}
        self.caps: dict[str, float] = {}
        for charger in site.chargers:
            fuses = [f.name for f in site.fuses_of(charger.id)]
            self.caps[charger.id] = charger.connector_max
            for phases in (1, 3):
                site_phases = sorted(charger.rotation.to_site(frozenset(range(phases))))
                self.loads[(charger.id, phases)] = [
                    self.columns[(f, p)] for f in fuses for p in site_phases
                ]


def _components(visits: Sequence[Visit]) -> list[list[int]]:
    """Indices of visits (in arrival order) in groups separated by moments nobody is there."""
    groups: list[list[int]] = []
    until = -math.inf
    for i, v in enumerate(visits):
        if v.arrival >= until or not groups:
            groups.append([])
        groups[-1].append(i)
        until = max(until, v.departure)
    return groups


def optimum_figures(
    optimum: Optimum,
    *,
    window_s: int = 3600,
    tz: timezone = UTC,
    prices: PriceSeries | None = None,
) -> Figures:
    asked, delivered, pct, full_pct, jain, lowest = session_figures(optimum.sessions)
    fuses = tuple(
        FusePhaseFigures(
            fuse=fuse,
            phase=PHASE_NAMES[p],
            limit=optimum.limits[(fuse, p)],
            peak=round(peak, 3),
            ampere_seconds_above=0.0,
            seconds_above=0,
        )
        for (fuse, p), peak in optimum.peaks.items()
    )
    return Figures(
        policy=optimum.policy,
        scenario=optimum.scenario,
        sessions=len(optimum.sessions),
        energy_asked_kwh=asked,
        energy_kwh=delivered,
        energy_pct=pct,
        fully_served_pct=full_pct,
        jain=jain,
        lowest_ratio=lowest,
        ampere_seconds_above=0.0,
        seconds_above=0,
        fuses=fuses,
        writes=None,
        writes_per_connector_hour=None,
        writes_per_plugged_hour=None,
        pauses_per_session=None,
        max_pauses=None,
        p95_first_6a_s=None,
        room_sessions=None,
        p95_first_6a_free_s=None,
        free_sessions=None,
        unbalance_a=optimum.unbalance_a,
        unbalance_pct=optimum.unbalance_pct,
        cpu_per_tick_ms=None,
        cpu_p99_tick_ms=None,
        ticks=None,
        run_s=optimum.solve_s,
        power=_power(optimum, window_s, tz, prices),
    )


def _power(
    optimum: Optimum, window_s: int, tz: timezone, prices: PriceSeries | None
) -> PowerFigures:
    return power_figures(
        optimum.slot_times,
        optimum.slot_root_kwh,
        optimum.slot_building_kwh,
        window_s=window_s,
        tz=tz,
        prices=prices,
    )
