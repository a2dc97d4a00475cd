"""The rotation planner's core: hand-made loads whose best wiring is known, and the solver
against a brute force over every assignment on small sites."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from charged.balancer.model import ChargerSpec, Fuse, Rotation, Site
from charged.planning.problem import ALL, CYCLIC, Loads, PlanningError, problem_for
from charged.planning.reduction import reduce_steps
from charged.planning.rotation import solve
from charged.planning.scoring import score
from charged.planning.search import brute_force, heuristic

pytest.importorskip("scipy")

L1L2L3 = Rotation.parse("L1L2L3")


def loads(current: list[list[list[float]]], ids: list[str] | None = None) -> Loads:
    """current[charger][step] = [A on L1, L2, L3 terminals]; 30 s steps."""
    array = np.array(current, dtype=float)
    ids = ids or [f"C{i + 1}" for i in range(array.shape[0])]
    steps = array.shape[1]
    return Loads(tuple(ids), np.arange(steps) * 30.0, np.full(steps, 30.0), array)


def one_fuse(ids: list[str], limit: float = 63, **rotations: str) -> Site:
    return Site(
        Fuse("main", (limit,) * 3, chargers=tuple(ids)),
        tuple(ChargerSpec(cp, rotation=Rotation.parse(rotations.get(cp, "L1L2L3"))) for cp in ids),
    )


def test_three_one_phase_cars_at_once_land_on_three_phases_with_two_rewired() -> None:
    data = loads([[[16, 0, 0]], [[16, 0, 0]], [[16, 0, 0]]])
    problem = problem_for(one_fuse(list(data.chargers)), data)
    assert score(problem, problem.today).peak == pytest.approx(48 / 63)
    solution = solve(problem, time_limit_s=20)
    assert solution.peak_proven and solution.unbalance_proven
    assert sorted(r.site_phase(0) for r in solution.rotations) == [0, 1, 2]
    planned = score(problem, solution.rotations)
    assert planned.peak == pytest.approx(16 / 63)
    assert planned.unbalance_a == pytest.approx(0)
    assert planned.rewired == 2  # one charger keeps its wiring: the fewest moves


def test_three_phase_cars_only_rewire_nothing() -> None:
    data = loads([[[16, 16, 16], [10, 10, 10]], [[32, 32, 32], [0, 0, 0]]])
    problem = problem_for(one_fuse(list(data.chargers)), data, ALL)
    solution = solve(problem, time_limit_s=20)
    assert solution.rotations == problem.today


def test_cars_at_different_times_need_no_rewiring() -> None:
    # one car at a time on terminal L1: the peak is one car whatever the wiring
    data = loads([[[16, 0, 0], [0, 0, 0]], [[0, 0, 0], [16, 0, 0]]])
    problem = problem_for(one_fuse(list(data.chargers)), data)
    assert solve(problem, time_limit_s=20).rotations == (L1L2L3, L1L2L3)


def test_nested_fuses_balance_each_row_and_the_main() -> None:
    # four one-phase cars at once, two per row: each row must put its two on two phases
    # (16 A per row phase); the main then carries at best 32 A on one phase
    ids = ["A1", "A2", "B1", "B2"]
    site = Site(
        Fuse(
            "main",
            (100,) * 3,
            children=(
                Fuse("row-a", (50,) * 3, chargers=("A1", "A2")),
                Fuse("row-b", (50,) * 3, chargers=("B1", "B2")),
            ),
        ),
        tuple(ChargerSpec(cp) for cp in ids),
    )
    data = loads([[[16, 0, 0]]] * 4, ids)
    problem = problem_for(site, data)
    solution = solve(problem, time_limit_s=20)
    assert score(problem, solution.rotations).peak == pytest.approx(32 / 100 + 16 / 50 + 16 / 50)
    phase = {cp: r.site_phase(0) for cp, r in zip(ids, solution.rotations, strict=True)}
    assert phase["A1"] != phase["A2"] and phase["B1"] != phase["B2"]


def test_a_phase_with_a_lower_limit_gets_the_lighter_load() -> None:
    # L3 holds 20 A, L1 and L2 63 A: the 32 A car goes to L1 or L2, the 10 A car may go on L3
    site = Site(
        Fuse("main", (63, 63, 20), chargers=("C1", "C2", "C3")),
        tuple(ChargerSpec(cp) for cp in ("C1", "C2", "C3")),
    )
    data = loads([[[32, 0, 0]], [[32, 0, 0]], [[10, 0, 0]]])
    problem = problem_for(site, data)
    rotations = solve(problem, time_limit_s=20).rotations
    assert rotations[2].site_phase(0) == 2
    assert {rotations[0].site_phase(0), rotations[1].site_phase(0)} == {0, 1}


def test_a_charger_under_no_fuse_is_refused_in_one_line() -> None:
    data = loads([[[16, 0, 0]], [[16, 0, 0]]], ["C1", "ELSEWHERE"])
    with pytest.raises(PlanningError, match="charger ELSEWHERE drew current but is under no fuse"):
        problem_for(one_fuse(["C1"]), data)


def random_problem(
    rng: np.random.Generator, chargers: int, steps: int, candidates: tuple[Rotation, ...]
) -> tuple[Site, Loads]:
    ids = [f"C{i + 1}" for i in range(chargers)]
    current = np.zeros((chargers, steps, 3))
    for c, t in itertools.product(range(chargers), range(steps)):
        kind = rng.integers(0, 4)
        if kind == 1:  # a one-phase car
            current[c, t, 0] = rng.choice([10, 16, 32])
        elif kind == 2:  # a three-phase car
            current[c, t, :] = rng.choice([6, 11, 16])
        elif kind == 3:  # two connectors: a one-phase car beside a two-phase one
            current[c, t] = [rng.integers(6, 20), rng.integers(0, 8), 0]
    half = chargers // 2
    root = Fuse(
        "main",
        (60, 60, 50),
        children=(
            Fuse("row-a", (40, 40, 40), chargers=tuple(ids[:half])),
            Fuse("row-b", (40, 35, 40), chargers=tuple(ids[half:])),
        ),
    )
    today = [str(rng.choice(["L1L2L3", "L2L3L1", "L1L3L2"])) for _ in ids]
    site = Site(
        root,
        tuple(
            ChargerSpec(cp, rotation=Rotation.parse(r)) for cp, r in zip(ids, today, strict=True)
        ),
    )
    data = Loads(tuple(ids), np.arange(steps) * 30.0, np.full(steps, 30.0), current)
    return site, data


@pytest.mark.parametrize(
    ("seed", "chargers", "candidates"),
    [
        (1, 3, ALL),
        (2, 4, ALL),
        (3, 5, ALL),
        (4, 5, CYCLIC),
        (5, 4, CYCLIC),
        (6, 2, ALL),
        (7, 5, CYCLIC),
        (8, 1, ALL),
    ],
)
def test_the_solver_equals_a_brute_force(
    seed: int, chargers: int, candidates: tuple[Rotation, ...]
) -> None:
    rng = np.random.default_rng(seed)
    site, data = random_problem(rng, chargers, int(rng.integers(3, 25)), candidates)
    problem = problem_for(site, data, candidates)
    reduced = reduce_steps(data)
    best = score(problem, [candidates[r] for r in brute_force(problem, reduced)])
    solution = solve(problem, time_limit_s=30)
    found = score(problem, solution.rotations)
    assert solution.peak_proven and solution.unbalance_proven
    assert found.peak == pytest.approx(best.peak, abs=1e-7)
    assert found.key[1] == pytest.approx(best.key[1], abs=1e-6)


def test_the_reduced_steps_give_every_wiring_its_peak() -> None:
    rng = np.random.default_rng(11)
    site, data = random_problem(rng, 5, 200, ALL)
    problem = problem_for(site, data, ALL)
    reduced = reduce_steps(data)
    assert reduced.peak.shape[1] < 200
    shrunk = problem.on(
        Loads(
            data.chargers,
            np.zeros(reduced.peak.shape[1]),
            np.ones(reduced.peak.shape[1]),
            reduced.peak,
        )
    )
    for _ in range(30):
        rotations = [ALL[i] for i in rng.integers(0, 6, size=5)]
        assert score(shrunk, rotations).peak == pytest.approx(score(problem, rotations).peak)


def test_the_heuristic_is_never_worse_than_today() -> None:
    rng = np.random.default_rng(12)
    site, data = random_problem(rng, 5, 40, CYCLIC)
    problem = problem_for(site, data)
    choice = heuristic(problem, reduce_steps(data))
    planned = score(problem, [CYCLIC[r] for r in choice])
    assert not score(problem, problem.today).better_than(planned)


def test_no_load_keeps_todays_wiring() -> None:
    data = loads([[[0, 0, 0]], [[0, 0, 0]]])
    problem = problem_for(one_fuse(list(data.chargers), C2="L2L3L1"), data)
    assert solve(problem, time_limit_s=5).rotations == problem.today
