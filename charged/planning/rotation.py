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
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from charged.balancer.model import Rotation, Site, all_rotations

Array = npt.NDArray[np.float64]

CYCLIC: tuple[Rotation, ...] = tuple(
    Rotation(p)
    for p in ((0, 1, 2), (1, 2, 0), (2, 0, 1))  # L1L2L3, L2L3L1, L3L1L2
)
ALL: tuple[Rotation, ...] = all_rotations()
REWIRE_COST_A = 0.01  # a rewiring must lower the mean unbalance by at least this (A)
UNBALANCE_QUANTUM_A = 0.5
MAX_UNBALANCE_STEPS = 400
CUTS_PER_ROUND = 20  # peak rows added per fuse and round of the cutting-plane loop
PEAK_TOLERANCE = 1e-7  # a share of a fuse's limit: ties within this are ties
DEFAULT_TIME_LIMIT_S = 60.0


class PlanningError(ValueError):
    """Loads and a site that do not fit together; one line."""


@dataclass(frozen=True)
class Loads:
    """Current per charger terminal at each step: ``current[c, t, k]`` A on terminal k of
    ``chargers[c]`` from ``times[t]`` for ``seconds[t]`` seconds."""

    chargers: tuple[str, ...]
    times: Array
    seconds: Array
    current: Array

    def __post_init__(self) -> None:
        c, t = len(self.chargers), len(self.times)
        if self.current.shape != (c, t, 3) or self.seconds.shape != (t,):
            raise ValueError(
                f"loads: current must be {c} chargers x {t} steps x 3 terminals, "
                f"got {self.current.shape} (seconds {self.seconds.shape})"
            )

    @property
    def steps(self) -> int:
        return len(self.times)

    def between(self, start: float | None, end: float | None) -> Loads:
        """The steps from ``start`` (inclusive) to ``end`` (exclusive); None: unbounded."""
        keep = np.ones(self.steps, dtype=bool)
        if start is not None:
            keep &= self.times >= start
        if end is not None:
            keep &= self.times < end
        return Loads(self.chargers, self.times[keep], self.seconds[keep], self.current[:, keep])


@dataclass(frozen=True)
class FuseLoad:
    """A fuse of the site as the planner sees it: its limit per site phase and the indices
    (into :attr:`Loads.chargers`) of every charger it feeds, directly or below."""

    name: str
    limit: tuple[float, float, float]
    members: tuple[int, ...]


@dataclass(frozen=True)
class Problem:
    loads: Loads
    fuses: tuple[FuseLoad, ...]
    today: tuple[Rotation, ...]  # per charger
    candidates: tuple[Rotation, ...]
    membership: Array = field(init=False, repr=False, compare=False)  # (fuses, chargers) 0/1

    def __post_init__(self) -> None:
        m = np.zeros((len(self.fuses), len(self.loads.chargers)))
        for f, fuse in enumerate(self.fuses):
            m[f, list(fuse.members)] = 1.0
        object.__setattr__(self, "membership", m)

    @property
    def limits(self) -> Array:
        return np.array([f.limit for f in self.fuses], dtype=float)  # (fuses, 3)

    def on(self, loads: Loads) -> Problem:
        """The same site and choice on other steps (the check period)."""
        return Problem(loads, self.fuses, self.today, self.candidates)


def problem_for(site: Site, loads: Loads, candidates: Sequence[Rotation] = CYCLIC) -> Problem:
    """The planner's problem for ``loads`` on ``site``: every charger of the loads must be
    placed under a fuse; today's rotations are the site's."""
    index = {cp: i for i, cp in enumerate(loads.chargers)}
    for cp in loads.chargers:
        if not site.fuses_of(cp):
            raise PlanningError(
                f"charger {cp} drew current but is under no fuse of the site; "
                "add it to a fuse's chargers"
            )
    fuses = tuple(
        FuseLoad(
            f.name,
            f.limit,
            tuple(sorted(index[cp] for cp in f.all_chargers() if cp in index)),
        )
        for f in site.fuses()
    )
    today = []
    for cp in loads.chargers:
        spec = site.charger(cp)
        today.append(spec.rotation if spec is not None else Rotation())
    return Problem(loads, fuses, tuple(today), tuple(candidates))


# ---------------------------------------------------------------- currents and scores


def _inverse(rotation: Rotation) -> list[int]:
    """For each site phase p, the terminal wired to it."""
    inv = [0, 0, 0]
    for terminal, phase in enumerate(rotation.site_phases):
        inv[phase] = terminal
    return inv


def rotated(current: Array, rotation: Rotation) -> Array:
    """Per-terminal currents (..., 3) as per-site-phase currents under ``rotation``."""
    return current[..., _inverse(rotation)]


def fuse_currents(
    problem: Problem, rotations: Sequence[Rotation], current: Array | None = None
) -> Array:
    """(fuses, steps, site phases): the current through every fuse under ``rotations``."""
    current = problem.loads.current if current is None else current
    site = (
        np.stack([rotated(current[c], r) for c, r in enumerate(rotations)])
        if len(rotations)
        else np.zeros((0, current.shape[1], 3))
    )
    out: Array = np.einsum("fc,ctp->ftp", problem.membership, site)
    return out


@dataclass(frozen=True)
class Score:
    peak: float  # Σ over fuses of the highest share of the limit
    unbalance_a: float  # Σ over fuses of the mean of highest phase − mean phase (A)
    rewired: int

    @property
    def key(self) -> tuple[float, float]:
        """What is minimised, in order (peak at PEAK_TOLERANCE)."""
        return (round(self.peak / PEAK_TOLERANCE), self.unbalance_a + REWIRE_COST_A * self.rewired)

    def better_than(self, other: Score) -> bool:
        if self.peak < other.peak - PEAK_TOLERANCE:
            return True
        if self.peak > other.peak + PEAK_TOLERANCE:
            return False
        return self.unbalance_a + REWIRE_COST_A * self.rewired < (
            other.unbalance_a + REWIRE_COST_A * other.rewired - 1e-9
        )


def _score_from(
    peak_currents: Array, limits: Array, bal_currents: Array, weights: Array, rewired: int
) -> Score:
    peak = (
        float(np.sum(np.max(peak_currents / limits[:, None, :], axis=(1, 2))))
        if len(peak_currents)
        else 0.0
    )
    total = float(np.sum(weights))
    if total > 0 and bal_currents.size:
        excess = np.max(bal_currents, axis=2) - np.mean(bal_currents, axis=2)  # (fuses, steps)
        unbalance = float(np.sum(excess @ weights) / total)
    else:
        unbalance = 0.0
    return Score(peak, unbalance, rewired)


def rewired(problem: Problem, rotations: Sequence[Rotation]) -> int:
    return sum(1 for a, b in zip(problem.today, rotations, strict=True) if a != b)


def score(problem: Problem, rotations: Sequence[Rotation]) -> Score:
    """The plan's score on every step of the problem's loads."""
    currents = fuse_currents(problem, rotations)
    return _score_from(
        currents, problem.limits, currents, problem.loads.seconds, rewired(problem, rotations)
    )


# ---------------------------------------------------------------- reducing the steps


@dataclass(frozen=True)
class Reduced:
    """The steps the programs see: ``peak`` (chargers, steps, 3) the steps no other step
    dominates; ``balance`` (chargers, steps, 3) representative steps for the unbalance,
    ``weights`` the seconds each stands for."""

    peak: Array
    balance: Array
    weights: Array


def reduce_steps(loads: Loads, max_balance_steps: int = MAX_UNBALANCE_STEPS) -> Reduced:
    c = len(loads.chargers)
    flat = loads.current.transpose(1, 0, 2).reshape(loads.steps, c * 3)  # (steps, c*3)
    if loads.steps == 0:
        empty = np.zeros((c, 0, 3))
        return Reduced(empty, empty, np.zeros(0))
    distinct = np.unique(flat, axis=0)
    peak = _undominated(distinct)
    quantised = np.round(flat / UNBALANCE_QUANTUM_A) * UNBALANCE_QUANTUM_A
    rows, inverse = np.unique(quantised, axis=0, return_inverse=True)
    weights = np.bincount(inverse.ravel(), weights=loads.seconds, minlength=len(rows))
    if len(rows) > max_balance_steps:
        kept = np.argsort(-weights, kind="stable")[:max_balance_steps]
        merged = weights[kept].copy()
        dropped = np.setdiff1d(np.arange(len(rows)), kept)
        for start in range(0, len(dropped), 256):
            chunk = dropped[start : start + 256]
            distance = np.abs(rows[chunk][:, None, :] - rows[kept][None, :, :]).sum(axis=2)
            np.add.at(merged, np.argmin(distance, axis=1), weights[chunk])
        rows, weights = rows[kept], merged

    def unflat(a: Array) -> Array:
        return a.reshape(len(a), c, 3).transpose(1, 0, 2).copy()

    return Reduced(unflat(peak), unflat(rows), np.asarray(weights, dtype=float))


def _undominated(rows: Array, chunk: int = 512) -> Array:
    """The rows no other row dominates (>= in every column); distinct rows in.

    In order of decreasing sum a row can only be dominated by one before it, and a dominated
    row by one kept (domination is transitive): each chunk is checked against the rows kept
    so far at once, the few left one by one."""
    rows = rows[np.argsort(-rows.sum(axis=1), kind="stable")]
    kept = np.zeros((0, rows.shape[1]))
    for start in range(0, len(rows), chunk):
        block = rows[start : start + chunk]
        if len(kept):
            dominated = np.any(np.all(kept[None, :, :] >= block[:, None, :], axis=2), axis=1)
            block = block[~dominated]
        for row in block:
            if len(kept) and bool(np.any(np.all(kept >= row, axis=1))):
                continue
            kept = np.vstack([kept, row[None, :]])
    return kept


# ---------------------------------------------------------------- the search


class _Evaluator:
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
        return _score_from(peak, self.limits, balance, self.weights, moved)

    def score(self, choice: Sequence[int]) -> Score:
        return self.score_totals(*self.totals(choice), choice)


def heuristic(problem: Problem, reduced: Reduced, *, deadline: float | None = None) -> list[int]:
    """Greedy placement, heaviest charger first, then single and pair changes until none
    improves (or ``deadline``, a ``time.monotonic()``): candidate indices per charger."""
    ev = _Evaluator(problem, reduced)
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
            s = _score_from(trial_peak, ev.limits, trial_balance, ev.weights, moved)
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
    ev: _Evaluator,
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
    ev = _Evaluator(problem, reduced)
    n, k = len(problem.loads.chargers), len(problem.candidates)
    best: tuple[Score, list[int]] | None = None
    for combo in itertools.product(range(k), repeat=n):
        s = ev.score(combo)
        if best is None or s.better_than(best[0]):
            best = (s, list(combo))
    assert best is not None
    return best[1]


# ---------------------------------------------------------------- the integer programs


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
    ev = _Evaluator(problem, reduced)
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
