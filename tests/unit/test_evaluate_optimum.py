"""The offline optimum: exact on a hand-made case, never below any policy."""

from __future__ import annotations

import pytest

from charged.balancer.evaluate.engine import run
from charged.balancer.evaluate.generate import garage_day, garage_site
from charged.balancer.evaluate.metrics import figures
from charged.balancer.evaluate.optimum import optimum_figures, solve
from charged.balancer.evaluate.policies import POLICIES
from charged.balancer.evaluate.scenario import Scenario
from tests.unit.test_evaluate_engine import T0, V, scenario, site, visit

pytest.importorskip("scipy")


def test_two_cars_share_a_fuse_as_well_as_possible() -> None:
    # a 20 A L1 fuse: in the first hour both cars (16 A each at most) share 20 A, in the
    # second only the second car is there, at its own 16 A: 36 A·h × 230 V = 8.28 kWh at most
    cars = scenario(
        visit(T0, 3600, 5.0, charger="CP1"),
        visit(T0, 7200, 9.0, charger="CP2"),
    )
    total = (20 + 16) * V * 3600 / 3.6e6
    plain = solve(cars, site(20.0), step_s=60, fair_second_stage=False)
    assert sum(s.delivered_kwh for s in plain.sessions) == pytest.approx(total, rel=1e-6)
    # the fair stage keeps that and evens delivered ÷ asked: e1 / 5 = e2 / 9
    first, second = solve(cars, site(20.0), step_s=60).sessions
    assert first.delivered_kwh + second.delivered_kwh == pytest.approx(total, rel=1e-6)
    assert first.delivered_kwh == pytest.approx(total * 5 / 14, rel=1e-5)
    fig = optimum_figures(plain)
    assert fig.ampere_seconds_above == 0
    assert max(f.peak for f in fig.fuses if f.phase == "L1") <= 20.0 + 1e-6


def test_the_second_stage_keeps_the_energy_and_raises_the_lowest_ratio() -> None:
    # three one-phase cars on a 16 A fuse for an hour: 3.68 kWh in all, whoever gets it
    cars = scenario(*(visit(T0, 3600, 4.0, charger=f"CP{n}") for n in (1, 2)))
    plain = solve(cars, site(16.0), step_s=300, fair_second_stage=False)
    fair = solve(cars, site(16.0), step_s=300)
    total = 16 * V * 3600 / 3.6e6
    assert sum(s.delivered_kwh for s in plain.sessions) == pytest.approx(total, rel=1e-6)
    assert sum(s.delivered_kwh for s in fair.sessions) == pytest.approx(total, rel=1e-6)
    assert min(s.delivered_kwh for s in fair.sessions) == pytest.approx(total / 2, rel=1e-4)


def test_optimal_is_never_below_any_policy() -> None:
    ids = [f"CP{n}" for n in range(1, 31)]
    day = garage_day(ids, seed=5)
    # the morning only (the busiest part), under a fuse every controller must work against
    morning = Scenario(
        visits=tuple(v for v in day.visits if v.arrival < day.visits[0].arrival + 3 * 3600),
        name="morning",
    )
    garage = garage_site(ids, main_limit=100.0, row_limit=63.0)
    # (a coarser step and no fair stage: a looser bound, still a bound, and quick)
    best = optimum_figures(solve(morning, garage, step_s=120, fair_second_stage=False))
    for name, policy in POLICIES.items():
        result = figures(run(morning, garage, policy(garage)))
        # Within the fuses no policy beats the optimum.  A policy that went above a fuse can
        # beat it by at most what the excess carried: taking the excess off the cars on that
        # phase (off all three phases of a three-phase car) leaves a schedule within the
        # fuses, which the optimum bounds.
        excess_kwh = 3 * V * result.ampere_seconds_above / 3.6e6
        assert result.energy_kwh <= best.energy_kwh + excess_kwh + 1e-6, name
        if name in ("equal-split",):
            assert result.ampere_seconds_above == 0
    # the scenario binds: uncontrolled takes more only by overloading
    uncontrolled = figures(run(morning, garage, POLICIES["uncontrolled"](garage)))
    assert uncontrolled.ampere_seconds_above > 0
    assert uncontrolled.energy_kwh > best.energy_kwh
