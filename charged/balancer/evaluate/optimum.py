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

A second stage keeps that energy (to a relative 1e-7) and maximises the lowest session's
delivered ÷ asked, so that the optimum's fairness figures describe a fair optimal schedule,
not an arbitrary vertex of the first LP.

Needs SciPy (``pip install charged[evaluate]``): its HiGHS solver.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from charged.balancer.evaluate.engine import SessionOutcome
from charged.balancer.evaluate.metrics import Figures, FusePhaseFigures, session_figures
from charged.balancer.evaluate.scenario import Scenario, Visit, assign_connectors
from charged.balancer.model import PHASE_NAMES, Site

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
    # the mean current of every (fuse, site phase) column (``columns`` names their order)
    step_times: tuple[int, ...] = ()
    step_loads: tuple[tuple[float, ...], ...] = ()
    columns: tuple[tuple[str, int], ...] = ()


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
) -> Optimum:
    """The optimum of ``scenario`` on ``site`` (see the module docstring); ``step_s`` None:
    :func:`default_step`."""
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
    delivered: dict[int, float] = {}
    step_loads: list[list[float]] = []  # per step: the current of every fuse-phase column
    step_times: list[int] = []
    variables = 0
    components = _components(scenario.visits)
    for members in components:
        visits = [scenario.visits[i] for i in members]
        energy, loads, nvar, t0 = _solve_component(visits, wiring, step_s, fair_second_stage)
        variables += nvar
        step_times.extend(range(t0, t0 + step_s * len(loads), step_s))
        for n, index in enumerate(members):
            delivered[index] = energy[n]
        step_loads.extend(loads)
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
    )


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


def _solve_component(
    visits: Sequence[Visit], wiring: _Wiring, step_s: int, fair: bool
) -> tuple[list[float], list[list[float]], int, int]:
    """(kWh per visit, per step the current of every column, variables, the first step's
    start) of one component."""
    import numpy as np
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, csr_matrix, hstack, vstack

    t0 = math.floor(min(v.arrival for v in visits) / step_s) * step_s
    t1 = math.ceil(max(v.departure for v in visits) / step_s) * step_s
    steps = (t1 - t0) // step_s
    var_visit: list[int] = []
    var_step: list[int] = []
    upper: list[float] = []
    for n, v in enumerate(visits):
        cap = min(v.max_current, v.follows_limit * wiring.caps[v.key[0]])
        first = int((v.arrival - t0) // step_s)
        for k in range(first, math.ceil((v.departure - t0) / step_s)):
            lo, hi = t0 + k * step_s, t0 + (k + 1) * step_s
            present = (min(hi, v.departure) - max(lo, v.arrival)) / step_s
            if present > 0:
                var_visit.append(n)
                var_step.append(k)
                upper.append(cap * present)
    nvar, nvis, ncol = len(upper), len(visits), len(wiring.columns)
    of_visit = np.asarray(var_visit, dtype=np.int64)
    phases = np.asarray([visits[n].phases for n in var_visit], dtype=float)
    kwh_per_amp = phases * NOMINAL_VOLTAGE * step_s / 3.6e6  # kWh per A of a step's mean
    rows: list[int] = []
    cols: list[int] = []
    for j, n in enumerate(var_visit):
        for column in wiring.loads[(visits[n].key[0], visits[n].phases)]:
            rows.append(column * steps + var_step[j])
            cols.append(j)
    fuse_rows = csr_matrix(
        (np.ones(len(rows)), (np.asarray(rows), np.asarray(cols))), shape=(ncol * steps, nvar)
    )
    limit_of_column = [0.0] * ncol
    for fp, c in wiring.columns.items():
        limit_of_column[c] = wiring.limits[fp]
    energy_rows = csr_matrix((kwh_per_amp, (of_visit, np.arange(nvar))), shape=(nvis, nvar))
    asked = np.asarray([v.energy_kwh for v in visits])
    a_ub = vstack([fuse_rows, energy_rows]).tocsr()
    b_ub = np.concatenate([np.repeat(np.asarray(limit_of_column), steps), asked])
    bounds = np.column_stack([np.zeros(nvar), np.asarray(upper)])
    first_stage = linprog(-kwh_per_amp, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if first_stage.status != 0:
        raise OptimumUnavailable(f"the optimum's LP failed: {first_stage.message}")
    x = first_stage.x
    energy = np.bincount(of_visit, weights=kwh_per_amp * x, minlength=nvis)
    ratios = np.where(asked > 0, energy / np.maximum(asked, 1e-12), 1.0)
    if fair and nvis > 1 and ratios.min() < 1 - 1e-6:
        # Keep the energy, maximise z, the lowest delivered ÷ asked: variables (x, z).
        best = -first_stage.fun
        wanting = np.flatnonzero(asked > 0)
        share = coo_matrix(
            (kwh_per_amp / np.maximum(asked[of_visit], 1e-12), (of_visit, np.arange(nvar))),
            shape=(nvis, nvar),
        ).tocsr()[wanting]
        ones = csr_matrix(np.ones((len(wanting), 1)))
        zero_col = csr_matrix((a_ub.shape[0], 1))
        second_ub = vstack(
            [
                hstack([a_ub, zero_col]),
                hstack([-share, ones]),  # z - delivered_i / asked_i <= 0
                hstack([csr_matrix(-kwh_per_amp.reshape(1, -1)), csr_matrix((1, 1))]),
            ]
        ).tocsr()
        second_b = np.concatenate([b_ub, np.zeros(len(wanting)), [-best * (1 - 1e-7)]])
        objective = np.zeros(nvar + 1)
        objective[nvar] = -1.0
        second = linprog(
            objective,
            A_ub=second_ub,
            b_ub=second_b,
            bounds=np.vstack([bounds, [0.0, 1.0]]),
            method="highs",
        )
        if second.status == 0:
            x = second.x[:nvar]
            energy = np.bincount(of_visit, weights=kwh_per_amp * x, minlength=nvis)
    column_load = (fuse_rows @ x).reshape(ncol, steps)
    loads = [[float(column_load[c, k]) for c in range(ncol)] for k in range(steps)]
    return [float(e) for e in energy], loads, nvar, int(t0)


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


def optimum_figures(optimum: Optimum) -> Figures:
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
        policy="optimal",
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
    )
