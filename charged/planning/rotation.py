"""Choosing each charger's rotation from what its terminals drew: the planner's pure core.

Input: per charger and time step, the current (A) on each of its terminals L1, L2, L3 (both
connectors of a charger summed: they share its wiring), each step standing for some seconds;
the site's fuse tree; each charger's rotation today; the rotations allowed (the 3 cyclic
ones, which keep the phase sequence a three-phase motor would see, or all 6).

Output: a rotation per charger that is best by, in this order,

1. **peak**: the sum over the fuses of the tree of each fuse's highest load over the period,
   as a share of its limit (the highest, over every step and site phase, of current ÷ that
   phase's limit).  Summed, not the maximum over fuses: with the maximum only the binding
   fuse would count and the others could be left as unbalanced as it allows;
2. **unbalance**: the sum over the fuses of the time-weighted mean of how far the highest
   phase is above the mean of the three (A), plus :data:`REWIRE_COST_A` per charger whose
   rotation changes, so that a charger is rewired only for a gain.  The mean of the phases
   does not depend on the rotations (the current is the same, only where it lands changes),
   so this is the mean highest phase less a constant: linear in the choice.

Exact: a mixed-integer program solved by SciPy's HiGHS (:func:`solve`), binary ``x[c, r]``
(charger c wired as rotation r), a continuous peak ``z[f]`` per fuse with
``z[f] * limit[f, p] >= Σ_{c under f} current of c on site phase p at step t under x`` for
every step t and phase p, then a second program that keeps ``Σ z`` at its optimum and
minimises the unbalance.  To keep it small:

* the peak rows are only needed for the steps no other step dominates (a step where every
  charger draws at most what it draws at another step, terminal by terminal, is never the
  peak, whatever the wiring), and only those that bind: they are added as the solution
  violates them (a cutting-plane loop, exact: the answer is feasible for every step and
  optimal for a relaxation);
* the unbalance is taken over the distinct steps at a resolution of
  :data:`UNBALANCE_QUANTUM_A`, at most :data:`MAX_UNBALANCE_STEPS` of them (the most
  frequent; each other step counted with the nearest one kept).

Beyond what HiGHS proves optimal within the time limit, the answer is the better of its best
solution and a stated heuristic (:func:`heuristic`): chargers placed one at a time, heaviest
first, each on the rotation best for what is placed so far, then a local search of every
single rotation change and every pair of changes until none improves.

The problem is :mod:`charged.planning.problem`, the scores :mod:`charged.planning.scoring`,
the step reduction :mod:`charged.planning.reduction`, the heuristic
:mod:`charged.planning.search`; this module is the integer programs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from charged.balancer.model import Rotation
from charged.planning.problem import Array, Problem
from charged.planning.reduction import MAX_UNBALANCE_STEPS, reduce_steps
from charged.planning.scoring import PEAK_TOLERANCE, REWIRE_COST_A
from charged.planning.search import Evaluator, heuristic

CUTS_PER_ROUND = 20  # peak rows added per fuse and round of the cutting-plane loop
DEFAULT_TIME_LIMIT_S = 60.0


class SolverUnavailable(RuntimeError):
    """SciPy (the ``evaluate`` extra) is not installed."""


@dataclass(frozen=True)
class Solution:
    rotations: tuple[Rotation, ...]
    peak_proven: bool  # the integer program proved the peak optimal
    unbalance_proven: bool  # ... and, at that peak, the unbalance
    from_heuristic: bool  # the heuristic's answer was kept (HiGHS found none better)
    seconds: float
    peak_steps: int  # undominated steps
    peak_rows: int  # of those, the rows the program needed (cutting planes)
    balance_steps: int
    time_limit_s: float

    @property
    def method(self) -> str:
        """How the answer was found, in a sentence for the report."""
        if self.peak_proven and self.unbalance_proven:
            return "exact: integer program (SciPy HiGHS), peak and unbalance proven optimal"
        found = (
            "the heuristic's (greedy + local search; HiGHS found none better)"
            if self.from_heuristic
            else "HiGHS's best found"
        )
        if self.peak_proven:
            return (
                "peak proven optimal by the integer program (SciPy HiGHS); unbalance at that "
                f"peak not proven within {self.time_limit_s:g} s: {found}"
            )
        return f"heuristic: nothing proven within {self.time_limit_s:g} s; {found}"


def solve(
    problem: Problem,
    *,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    max_balance_steps: int = MAX_UNBALANCE_STEPS,
    clock: Callable[[], float] = time.monotonic,
) -> Solution:
    """The best rotations for ``problem`` (see the module docstring), within about
    ``time_limit_s`` (the step reduction and a quarter of it for the heuristic first)."""
    try:
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import coo_matrix, csr_matrix, hstack, vstack
    except ImportError:
        raise SolverUnavailable(
            "the rotation planner needs SciPy's HiGHS: pip install 'charged[evaluate]'"
        ) from None
    began = clock()
    deadline = began + time_limit_s
    reduced = reduce_steps(problem.loads, max_balance_steps)
    ev = Evaluator(problem, reduced)
    n, k, nf = len(problem.loads.chargers), len(problem.candidates), len(problem.fuses)
    tp, tu = ev.peak.shape[2], ev.balance.shape[2]
    guess = heuristic(problem, reduced, deadline=began + time_limit_s / 4)

    def solution(choice: list[int], peak_ok: bool, balance_ok: bool) -> Solution:
        return Solution(
            rotations=tuple(problem.candidates[r] for r in choice),
            peak_proven=peak_ok,
            unbalance_proven=balance_ok,
            from_heuristic=choice == guess,
            seconds=clock() - began,
            peak_steps=tp,
            peak_rows=sum(len(c) for c in cuts),
            balance_steps=tu,
            time_limit_s=time_limit_s,
        )

    cuts: list[set[int]] = [set() for _ in range(nf)]
    if n == 0 or tp == 0:
        return solution(guess, True, True)
    nx = n * k
    limits = ev.limits
    members = [np.flatnonzero(problem.membership[f]) for f in range(nf)]

    def load_rows(source: Array, f: int, steps: Sequence[int]) -> tuple[Any, list[tuple[int, int]]]:
        """Rows Σ_{c under f, r} source[c, r, t, p] x[c, r], one per (t in steps, p)."""
        labels = [(t, p) for t in steps for p in range(3)]
        if not labels or not len(members[f]):
            return csr_matrix((len(labels), nx)), labels
        ts = np.array([t for t, _ in labels])
        ps = np.array([p for _, p in labels])
        block = source[members[f]][:, :, ts, ps]  # (members, k, rows)
        rows = np.broadcast_to(np.arange(len(labels)), block.shape)
        cols = (members[f][:, None, None] * k + np.arange(k)[None, :, None]) + 0 * rows
        nz = block != 0.0
        matrix = coo_matrix((block[nz], (rows[nz], cols[nz])), shape=(len(labels), nx))
        return csr_matrix(matrix), labels

    def peak_rows(n_extra: int) -> Any:
        """z[f] * limit[f, p] >= load of f on p at every step in cuts[f]."""
        blocks = []
        for f in range(nf):
            a, labels = load_rows(ev.peak, f, sorted(cuts[f]))
            z = np.zeros((len(labels), nf))
            for i, (_, p) in enumerate(labels):
                z[i, f] = -limits[f, p]
            blocks.append(hstack([a, csr_matrix(z), csr_matrix((len(labels), n_extra))]))
        return LinearConstraint(vstack(blocks), -np.inf, 0.0)

    def assignment(n_extra: int) -> Any:
        """Σ_r x[c, r] = 1 for every charger."""
        a = coo_matrix(
            (np.ones(nx), (np.repeat(np.arange(n), k), np.arange(nx))), shape=(n, nx + nf + n_extra)
        )
        return LinearConstraint(csr_matrix(a), 1.0, 1.0)

    def program(cost: Array, constraints: list[Any], n_extra: int) -> tuple[list[int] | None, bool]:
        remaining = deadline - clock()
        if remaining <= 0:
            return None, False
        result = milp(
            cost,
            constraints=constraints,
            integrality=np.concatenate([np.ones(nx), np.zeros(nf + n_extra)]),
            bounds=Bounds(
                np.zeros(nx + nf + n_extra),
                np.concatenate([np.ones(nx), np.full(nf + n_extra, np.inf)]),
            ),
            options={"time_limit": remaining, "mip_rel_gap": 1e-9, "disp": False},
        )
        if result.x is None:
            return None, False
        x = result.x
        return [int(np.argmax(x[c * k : (c + 1) * k])) for c in range(n)], result.status == 0

    def add_cuts(choice: list[int]) -> bool:
        """Add the steps where ``choice`` loads a fuse beyond what the rows so far allow."""
        peak, _ = ev.totals(choice)
        added = False
        for f in range(nf):
            share = np.max(peak[f] / limits[f], axis=1)
            bound = max(share[sorted(cuts[f])]) if cuts[f] else -np.inf
            worst = np.argsort(-share, kind="stable")[:CUTS_PER_ROUND].tolist()
            over = [t for t in worst if t not in cuts[f] and share[t] > bound + PEAK_TOLERANCE]
            cuts[f].update(over)
            added = added or bool(over)
        return added

    # first rows: each fuse's steps most loaded under the heuristic's answer
    add_cuts(guess)
    best = guess
    # stage 1: the least peak
    cost1 = np.concatenate([np.zeros(nx), np.ones(nf)])
    peak_ok = False
    while True:
        choice, optimal = program(cost1, [assignment(0), peak_rows(0)], 0)
        if choice is None:
            break
        if add_cuts(choice):
            continue
        if ev.score(choice).better_than(ev.score(best)):
            best = choice
        peak_ok = optimal
        break
    # stage 2: at that peak, the least unbalance (+ the cost of each rewiring)
    n_m = nf * tu
    total_w = float(np.sum(ev.weights)) or 1.0
    rewire = [0.0 if r == ev.today[c] else REWIRE_COST_A for c in range(n) for r in range(k)]
    cost2 = np.concatenate([np.array(rewire), np.zeros(nf), np.tile(ev.weights / total_w, nf)])
    blocks = []
    for f in range(nf):
        a, labels = load_rows(ev.balance, f, range(tu))
        m = coo_matrix(
            (-np.ones(len(labels)), (np.arange(len(labels)), [f * tu + t for t, _ in labels])),
            shape=(len(labels), n_m),
        )
        blocks.append(hstack([a, csr_matrix((len(labels), nf)), m]))
    balance_rows = LinearConstraint(vstack(blocks), -np.inf, 0.0)
    keep_peak = LinearConstraint(
        np.concatenate([np.zeros(nx), np.ones(nf), np.zeros(n_m)])[None, :],
        -np.inf,
        ev.score(best).peak + PEAK_TOLERANCE / 2,
    )
    balance_ok = False
    while peak_ok:
        choice, optimal = program(
            cost2, [assignment(n_m), keep_peak, peak_rows(n_m), balance_rows], n_m
        )
        if choice is None:
            break
        if add_cuts(choice):
            continue
        if not ev.score(best).better_than(ev.score(choice)):
            best = choice
        balance_ok = optimal
        break
    return solution(best, peak_ok, balance_ok)
