"""The planner's stated heuristic and the exhaustive check: chargers placed one at a time,
heaviest first, each on the rotation best for what is placed so far, then a local search of
every single rotation change and every pair of changes until none improves; and, for small
problems and the tests, every combination tried.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from charged.planning.problem import Array, Problem
from charged.planning.reduction import Reduced
from charged.planning.scoring import Score, rotated, score_from


class Evaluator:
    """Scores of assignments on the reduced steps, from each charger's precomputed
    site-phase currents under every candidate: (chargers, candidates, steps, 3)."""

    def __init__(self, problem: Problem, reduced: Reduced) -> None:
        self.problem = problem
        self.limits = problem.limits
        self.weights = reduced.weights
        self.peak = (
            np.stack(
                [
                    np.stack([rotated(reduced.peak[c], r) for r in problem.candidates])
                    for c in range(len(problem.loads.chargers))
                ]
            )
            if problem.loads.chargers
            else np.zeros((0, len(problem.candidates), 0, 3))
        )
        self.balance = (
            np.stack(
                [
                    np.stack([rotated(reduced.balance[c], r) for r in problem.candidates])
                    for c in range(len(problem.loads.chargers))
                ]
            )
            if problem.loads.chargers
            else np.zeros((0, len(problem.candidates), 0, 3))
        )
        self.today = [
            problem.candidates.index(r) if r in problem.candidates else -1 for r in problem.today
        ]

    def totals(self, choice: Sequence[int]) -> tuple[Array, Array]:
        m = self.problem.membership
        peak = np.einsum("fc,ctp->ftp", m, self.peak[np.arange(len(choice)), list(choice)])
        balance = np.einsum("fc,ctp->ftp", m, self.balance[np.arange(len(choice)), list(choice)])
        return peak, balance

    def score_totals(self, peak: Array, balance: Array, choice: Sequence[int]) -> Score:
        moved = sum(1 for c, r in enumerate(choice) if r != self.today[c])
        return score_from(peak, self.limits, balance, self.weights, moved)

    def score(self, choice: Sequence[int]) -> Score:
        return self.score_totals(*self.totals(choice), choice)


def heuristic(problem: Problem, reduced: Reduced, *, deadline: float | None = None) -> list[int]:
    """Greedy placement, heaviest charger first, then single and pair changes until none
    improves (or ``deadline``, a ``time.monotonic()``): candidate indices per charger."""
    ev = Evaluator(problem, reduced)
    n, k = len(problem.loads.chargers), len(problem.candidates)
    if n == 0:
        return []
    fuses_of = [np.flatnonzero(problem.membership[:, c]) for c in range(n)]
    weight = np.einsum("ctk,t->c", problem.loads.current, problem.loads.seconds)
    # greedy: unplaced chargers count as drawing nothing
    choice = [max(ev.today[c], 0) for c in range(n)]
    peak = np.zeros((len(problem.fuses), ev.peak.shape[2], 3))
    balance = np.zeros((len(problem.fuses), ev.balance.shape[2], 3))
    for c in np.argsort(-weight, kind="stable"):
        best: tuple[Score, int] | None = None
        for r in range(k):
            trial_peak, trial_balance = peak.copy(), balance.copy()
            trial_peak[fuses_of[c]] += ev.peak[c, r]
            trial_balance[fuses_of[c]] += ev.balance[c, r]
            moved = 0 if r == ev.today[c] else 1
            s = score_from(trial_peak, ev.limits, trial_balance, ev.weights, moved)
            if best is None or s.better_than(best[0]):
                best = (s, r)
        assert best is not None
        choice[c] = best[1]
        peak[fuses_of[c]] += ev.peak[c, best[1]]
        balance[fuses_of[c]] += ev.balance[c, best[1]]
    greedy = _local_search(ev, choice, fuses_of, deadline)
    from_today = _local_search(ev, [max(r, 0) for r in ev.today], fuses_of, deadline)
    return greedy if not ev.score(from_today).better_than(ev.score(greedy)) else from_today


def _local_search(
    ev: Evaluator,
    choice: list[int],
    fuses_of: Sequence[npt.NDArray[np.intp]],
    deadline: float | None,
) -> list[int]:
    choice = list(choice)
    n, k = len(choice), len(ev.problem.candidates)
    peak, balance = ev.totals(choice)
    current = ev.score_totals(peak, balance, choice)

    def apply(changes: Sequence[tuple[int, int]]) -> tuple[Array, Array, list[int]]:
        p, b, trial = peak.copy(), balance.copy(), list(choice)
        for c, r in changes:
            p[fuses_of[c]] += ev.peak[c, r] - ev.peak[c, trial[c]]
            b[fuses_of[c]] += ev.balance[c, r] - ev.balance[c, trial[c]]
            trial[c] = r
        return p, b, trial

    improved = True
    while improved:
        improved = False
        moves: list[list[tuple[int, int]]] = [[(c, r)] for c in range(n) for r in range(k)]
        pairs = (
            [(a, ra), (b, rb)]
            for a, b in itertools.combinations(range(n), 2)
            for ra in range(k)
            for rb in range(k)
        )
        for changes in itertools.chain(moves, pairs):
            if any(choice[c] == r for c, r in changes):
                continue
            if deadline is not None and time.monotonic() > deadline:
                return choice
            p, b, trial = apply(changes)
            s = ev.score_totals(p, b, trial)
            if s.better_than(current):
                peak, balance, choice, current = p, b, trial, s
                improved = True
                break
    return choice


def brute_force(problem: Problem, reduced: Reduced) -> list[int]:
    """Every assignment (candidates ** chargers): for tests on small sites."""
    ev = Evaluator(problem, reduced)
    n, k = len(problem.loads.chargers), len(problem.candidates)
    best: tuple[Score, list[int]] | None = None
    for combo in itertools.product(range(k), repeat=n):
        s = ev.score(combo)
        if best is None or s.better_than(best[0]):
            best = (s, list(combo))
    assert best is not None
    return best[1]
