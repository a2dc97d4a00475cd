"""The evaluation engine: energy accounting on hand-made scenarios, overloads reported."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from charged.balancer.evaluate.engine import (
    EngineParams,
    room_at_arrival,
    room_free_at_arrival,
    run,
)
from charged.balancer.evaluate.metrics import figures, jain_index
from charged.balancer.evaluate.policies import POLICIES, Uncontrolled
from charged.balancer.evaluate.scenario import Scenario, Visit
from charged.balancer.evaluate.telemetry import CHARGING, Telemetry
from charged.balancer.model import ChargerSpec, ConnectorKey, Fuse, Rotation, Site

T0 = 1_772_438_400  # 2026-03-02 08:00 UTC, on the 30-s grid
V = 230.0


def site(limit: float = 1000.0, rotations: tuple[str, ...] = ("L1L2L3", "L1L2L3")) -> Site:
    chargers = tuple(
        ChargerSpec(id=f"CP{n + 1}", rotation=Rotation.parse(r)) for n, r in enumerate(rotations)
    )
    return Site(
        root=Fuse("main", (limit,) * 3, chargers=tuple(c.id for c in chargers)),
        chargers=chargers,
    )


def visit(
    arrival: float,
    stay: float,
    energy: float,
    *,
    phases: int = 1,
    amps: float = 16.0,
    charger: str = "CP1",
    connector: int = 1,
    follows: float = 1.0,
) -> Visit:
    return Visit(
        row=0,
        arrival=arrival,
        departure=arrival + stay,
        energy_kwh=energy,
        phases=phases,
        max_current=amps,
        charger=charger,
        connector=connector,
        follows_limit=follows,
    )


def scenario(*visits: Visit) -> Scenario:
    return Scenario(visits=tuple(sorted(visits, key=lambda v: v.arrival)), name="hand-made")


def test_a_car_alone_takes_exactly_what_it_asked_for() -> None:
    # 3 phases × 16 A × 230 V for an hour is 11.04 kWh; it asks 5, stays 3 h
    result = run(scenario(visit(T0 + 10, 3 * 3600, 5.0, phases=3)), site(), Uncontrolled(site()))
    (session,) = result.sessions
    assert session.delivered_kwh == pytest.approx(5.0, abs=1e-9)
    assert session.fully_served and session.first_6a_s == 0.0 and session.pauses == 0
    # the energy through the main fuse is the energy the car took
    assert result.root_energy_kwh == pytest.approx(5.0, abs=1e-3)
    main = {p.phase: p for p in result.truth.phases if p.fuse == "main"}
    assert [main[p].peak for p in ("L1", "L2", "L3")] == [16.0, 16.0, 16.0]
    assert result.truth.ampere_seconds_above == 0
    assert result.writes == 0


def test_a_car_that_leaves_early_gets_its_draw_times_its_stay() -> None:
    # one phase, follows half its 32 A limit: 16 A × 230 V for 1800 s
    result = run(
        scenario(visit(T0, 1800, 50.0, amps=32.0, follows=0.5)), site(), Uncontrolled(site())
    )
    (session,) = result.sessions
    assert session.delivered_kwh == pytest.approx(16 * V * 1800 / 3.6e6, rel=1e-9)
    assert not session.fully_served
    assert session.ratio == pytest.approx(session.delivered_kwh / 50.0)


class PauseWhatCharges:
    """Writes 0 to every connector it sees charging: the car follows one delay later."""

    name = "pause"

    def initial_limit(self, key: ConnectorKey) -> float:
        return 32.0

    def decide(self, telemetry: Telemetry) -> Mapping[ConnectorKey, float]:
        return {k: 0.0 for k, r in telemetry.connectors.items() if r.status == CHARGING}


def test_a_limit_acts_after_the_delay_and_a_pause_is_counted() -> None:
    # the car plugs in 5 s after a tick; the next tick (25 s later) pauses it; that acts 45 s on
    params = EngineParams(limit_delay_s=(45, 45))
    result = run(scenario(visit(T0 + 5, 3600, 20.0)), site(), PauseWhatCharges(), params)
    (session,) = result.sessions
    assert session.delivered_kwh == pytest.approx(16 * V * (25 + 45) / 3.6e6, rel=1e-9)
    assert session.pauses == 1
    assert result.writes == 1
    fig = figures(result)
    assert fig.pauses_per_session == 1.0
    assert fig.writes_per_plugged_hour == pytest.approx(1.0, rel=0.05)


def test_an_overloading_policy_is_reported_as_overloading() -> None:
    # two one-phase 16 A cars on L1 under a 20 A fuse, together for one hour
    two = scenario(
        visit(T0, 2 * 3600, 30.0, charger="CP1"),
        visit(T0 + 3600, 3600, 30.0, charger="CP2"),
    )
    tight = site(20.0)
    result = run(two, tight, Uncontrolled(tight))
    l1 = result.truth.of("main", "L1")
    assert l1.seconds_above == 3600
    assert l1.ampere_seconds_above == pytest.approx(12 * 3600)
    assert l1.peak == 32.0
    assert result.truth.of("main", "L2").seconds_above == 0
    fig = figures(result)
    assert fig.ampere_seconds_above == pytest.approx(12 * 3600)
    assert fig.seconds_above == 3600


def test_a_rotated_charger_puts_a_one_phase_car_on_another_site_phase() -> None:
    two = scenario(
        visit(T0, 3600, 30.0, charger="CP1"),
        visit(T0, 3600, 30.0, charger="CP2"),
    )
    rotated = site(20.0, rotations=("L1L2L3", "L2L3L1"))
    result = run(two, rotated, Uncontrolled(rotated))
    assert result.truth.ampere_seconds_above == 0
    assert result.truth.of("main", "L1").peak == 16.0
    assert result.truth.of("main", "L2").peak == 16.0


@pytest.mark.parametrize("name", ["evcc-like", "round-robin"])
def test_controlling_policies_share_a_tight_fuse(name: str) -> None:
    # four 16 A one-phase cars under 24 A of L1: both baselines keep the fuse most of the time
    four = scenario(
        *(
            visit(T0 + 600 * n, 4 * 3600, 8.0, charger=f"CP{n // 2 + 1}", connector=n % 2 + 1)
            for n in range(4)
        )
    )
    tight = site(24.0)
    uncontrolled = run(four, tight, Uncontrolled(tight))
    result = run(four, tight, POLICIES[name](tight))
    assert result.truth.ampere_seconds_above < uncontrolled.truth.ampere_seconds_above / 10
    assert result.truth.of("main", "L1").peak < uncontrolled.truth.of("main", "L1").peak
    assert 0 < sum(s.delivered_kwh for s in result.sessions) <= 32.0 + 1e-9


def test_equal_split_under_6_a_charges_nobody() -> None:
    small = site(10.0)  # 4 connectors: 2.5 A each, under the 6 A a car needs
    result = run(scenario(visit(T0, 3600, 5.0)), small, POLICIES["equal-split"](small))
    assert result.sessions[0].delivered_kwh == 0.0
    assert result.sessions[0].first_6a_s is None


def test_jain_index() -> None:
    assert jain_index([1.0, 1.0, 1.0]) == 1.0
    assert jain_index([1.0, 0.0]) == 0.5
    assert jain_index([]) == 1.0


def test_room_free_is_room_with_every_car_present_drawing_all_it_can() -> None:
    # a 20 A fuse; CP1 puts a one-phase car on site L1, CP2 (rotated) on site L2.  A 16 A car
    # on L1; a second car on L1 while it is there (6 + 6 A fit: room; 16 + 6 A do not: no
    # free room), which draws half its 32 A limit (16 A); a 10 A car on L2 (free); after the
    # first car left, another on L2 (free) and another on L1 beside the half-drawing one
    # (16 + 6 A: not free)
    where = site(20.0, rotations=("L1L2L3", "L2L3L1"))
    day = scenario(
        visit(T0, 3600, 5.0, amps=16.0, charger="CP1", connector=1),
        visit(T0 + 600, 7200, 5.0, amps=32.0, follows=0.5, charger="CP1", connector=2),
        visit(T0 + 900, 1800, 5.0, amps=10.0, charger="CP2", connector=1),
        visit(T0 + 4000, 1800, 5.0, amps=10.0, charger="CP2", connector=2),
        visit(T0 + 4200, 1800, 5.0, amps=10.0, charger="CP1", connector=1),
    )
    assert room_at_arrival(day, where) == {0: True, 1: True, 2: True, 3: True, 4: True}
    assert room_free_at_arrival(day, where) == {0: True, 1: False, 2: True, 3: True, 4: False}
    # the engine hands both facts to each session, the metrics a p95 over each set
    result = run(day, where, Uncontrolled(where))
    assert [s.room_free for s in result.sessions] == [True, False, True, True, False]
    got = figures(result)
    assert got.free_sessions == 3 and got.room_sessions == 5
    assert got.p95_first_6a_free_s == 0.0  # uncontrolled: 32 A is there from the start
