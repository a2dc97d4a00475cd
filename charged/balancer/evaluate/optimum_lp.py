"""The optimum's linear program for one component of the horizon (see :mod:`.optimum`).

Variables ``x[j]``: one visit's mean current per phase over one step it is plugged in; for the
peak objective one more, ``P``, the component's highest hourly mean power (kW).

Stage 1 (``energy``): maximise the energy delivered under every fuse phase in every step
(the building's mean current over the step taken off the fuse's limit) and each visit's
own energy and current.  Stage 2 keeps that energy (to a relative 1e-7) and

- ``energy``: maximises the lowest session's delivered ÷ asked (a fair optimal schedule);
- ``cost``: minimises the chargers' energy cost at the prices of each step's start;
- ``peak``: minimises ``P`` subject to every clock hour's mean power — the chargers' energy
  in the hour plus the building's (``hour_building_kwh``) — being at most ``P``.

With ``served`` (kWh per visit) there is no stage 1: each visit gets at least its ``served``
and stage 2 minimises cost or peak over those schedules (to compare with a policy that
delivered ``served``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from charged.balancer.evaluate.scenario import Visit

NOMINAL_VOLTAGE = 230.0
Objective = Literal["energy", "cost", "peak"]


class LpFailed(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Component:
    """One component's data: its visits, step, and the fuse-phase columns' limits."""

    visits: Sequence[Visit]
    step_s: int
    loads: Mapping[tuple[str, int], Sequence[int]]  # (charger, phases) -> columns loaded
    caps: Mapping[str, float]  # charger -> connector maximum
    limit_of_column: Sequence[float]


def solve_component(
    comp: Component,
    *,
    objective: Objective = "energy",
    fair: bool = True,
    building_a: Any = None,  # per column and step, the building's mean current (ncol × steps)
    step_price: Any = None,  # per step, the price at its start (0 where none)
    hour_building_kwh: Mapping[int, float] | None = None,  # per clock hour start
    served: Sequence[float] | None = None,
) -> tuple[list[float], list[list[float]], int, int]:
    """(kWh per visit, per step the chargers' current of every column, variables, the first
    step's start)."""
    import numpy as np
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, csr_matrix, hstack, vstack

    visits, step_s = comp.visits, comp.step_s
    t0 = math.floor(min(v.arrival for v in visits) / step_s) * step_s
    t1 = math.ceil(max(v.departure for v in visits) / step_s) * step_s
    steps = (t1 - t0) // step_s
    var_visit: list[int] = []
    var_step: list[int] = []
    upper: list[float] = []
    for n, v in enumerate(visits):
        cap = min(v.max_current, v.follows_limit * comp.caps[v.key[0]])
        first = int((v.arrival - t0) // step_s)
        for k in range(first, math.ceil((v.departure - t0) / step_s)):
            lo, hi = t0 + k * step_s, t0 + (k + 1) * step_s
            present = (min(hi, v.departure) - max(lo, v.arrival)) / step_s
            if present > 0:
                var_visit.append(n)
                var_step.append(k)
                upper.append(cap * present)
    nvar, nvis, ncol = len(upper), len(visits), len(comp.limit_of_column)
    of_visit = np.asarray(var_visit, dtype=np.int64)
    phases = np.asarray([visits[n].phases for n in var_visit], dtype=float)
    kwh_per_amp = phases * NOMINAL_VOLTAGE * step_s / 3.6e6  # kWh per A of a step's mean
    rows: list[int] = []
    cols: list[int] = []
    for j, n in enumerate(var_visit):
        for column in comp.loads[(visits[n].key[0], visits[n].phases)]:
            rows.append(column * steps + var_step[j])
            cols.append(j)
    fuse_rows = csr_matrix(
        (np.ones(len(rows)), (np.asarray(rows), np.asarray(cols))), shape=(ncol * steps, nvar)
    )
    fuse_b = np.repeat(np.asarray(comp.limit_of_column, dtype=float), steps)
    if building_a is not None:
        fuse_b = np.maximum(0.0, fuse_b - np.asarray(building_a, dtype=float).reshape(-1))
    energy_rows = csr_matrix((kwh_per_amp, (of_visit, np.arange(nvar))), shape=(nvis, nvar))
    asked = np.asarray([v.energy_kwh for v in visits])
    a_ub = vstack([fuse_rows, energy_rows]).tocsr()
    b_ub = np.concatenate([fuse_b, asked])
    bounds = np.column_stack([np.zeros(nvar), np.asarray(upper)])

    def energy_of(x: Any) -> Any:
        return np.bincount(of_visit, weights=kwh_per_amp * x, minlength=nvis)

    keep_ub: Any
    keep_b: Any
    if served is None:
        first_stage = linprog(-kwh_per_amp, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
        if first_stage.status != 0:
            raise LpFailed(f"the optimum's LP failed: {first_stage.message}")
        x = first_stage.x
        best = -first_stage.fun
        keep_ub = csr_matrix(-kwh_per_amp.reshape(1, -1))  # energy >= best (1 - 1e-7)
        keep_b = np.asarray([-best * (1 - 1e-7)])
    else:
        x = None
        keep_ub = -energy_rows  # each visit at least what it was served
        keep_b = -np.minimum(np.asarray(served, dtype=float), asked) * (1 - 1e-9)
    base_ub = vstack([a_ub, keep_ub]).tocsr()
    base_b = np.concatenate([b_ub, keep_b])
    if objective == "energy":
        assert x is not None
        energy = energy_of(x)
        ratios = np.where(asked > 0, energy / np.maximum(asked, 1e-12), 1.0)
        if fair and nvis > 1 and ratios.min() < 1 - 1e-6:
            # maximise z, the lowest delivered ÷ asked: variables (x, z)
            wanting = np.flatnonzero(asked > 0)
            share = coo_matrix(
                (kwh_per_amp / np.maximum(asked[of_visit], 1e-12), (of_visit, np.arange(nvar))),
                shape=(nvis, nvar),
            ).tocsr()[wanting]
            second_ub = vstack(
                [
                    hstack([base_ub, csr_matrix((base_ub.shape[0], 1))]),
                    hstack([-share, csr_matrix(np.ones((len(wanting), 1)))]),
                ]
            ).tocsr()
            objective_z = np.zeros(nvar + 1)
            objective_z[nvar] = -1.0
            second = linprog(
                objective_z,
                A_ub=second_ub,
                b_ub=np.concatenate([base_b, np.zeros(len(wanting))]),
                bounds=np.vstack([bounds, [0.0, 1.0]]),
                method="highs",
            )
            if second.status == 0:
                x = second.x[:nvar]
    elif objective == "cost":
        prices = np.zeros(steps) if step_price is None else np.asarray(step_price, dtype=float)
        cost = kwh_per_amp * prices[np.asarray(var_step, dtype=np.int64)]
        second = linprog(cost, A_ub=base_ub, b_ub=base_b, bounds=bounds, method="highs")
        if second.status != 0:
            raise LpFailed(f"the optimum's cost LP failed: {second.message}")
        x = second.x
    else:
        # hours of the clock the component's steps fall in; P (kW) >= each hour's mean
        hour_of_step = [(t0 + k * step_s) // 3600 * 3600 for k in range(steps)]
        hours = sorted(set(hour_of_step))
        row_of_hour = {h: r for r, h in enumerate(hours)}
        hour_rows = csr_matrix(
            (
                kwh_per_amp,
                ([row_of_hour[hour_of_step[k]] for k in var_step], np.arange(nvar)),
            ),
            shape=(len(hours), nvar),
        )
        building = hour_building_kwh or {}
        hour_b = -np.asarray([building.get(h, 0.0) for h in hours])
        second_ub = vstack(
            [
                hstack([base_ub, csr_matrix((base_ub.shape[0], 1))]),
                hstack([hour_rows, csr_matrix(-np.ones((len(hours), 1)))]),  # kWh in 1 h − P
            ]
        ).tocsr()
        objective_p = np.zeros(nvar + 1)
        objective_p[nvar] = 1.0
        second = linprog(
            objective_p,
            A_ub=second_ub,
            b_ub=np.concatenate([base_b, hour_b]),
            bounds=np.vstack([bounds, [0.0, np.inf]]),
            method="highs",
        )
        if second.status != 0:
            raise LpFailed(f"the optimum's peak LP failed: {second.message}")
        x = second.x[:nvar]
    energy = energy_of(x)
    column_load = (fuse_rows @ x).reshape(ncol, steps)
    loads = [[float(column_load[c, k]) for c in range(ncol)] for k in range(steps)]
    return [float(e) for e in energy], loads, nvar, int(t0)
