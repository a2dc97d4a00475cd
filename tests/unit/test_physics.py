"""The simulator's physics: cars, late limits, rotations, the fuse tree and the ground truth."""

from __future__ import annotations

import pytest

from charged.simulator.grid import Fuse, Grid, GridSpec, grid_from_mapping, single_fuse
from charged.simulator.physics import Car, Physics, Visit


def physics(spec: GridSpec, delay: tuple[int, int] = (0, 0), *, record: bool = False) -> Physics:
    return Physics(Grid(spec, 0, record=record), limit_delay=delay)


def test_uncontrolled_overload_is_counted_in_ampere_seconds_and_seconds() -> None:
    p = physics(single_fuse(40))
    p.add_plug("A", 1, limit=32, visits=[Visit(10, 4000, Car(1, 16, 50.0))])
    p.add_plug("A", 2, limit=32, visits=[Visit(20, 4000, Car(3, 16, 50.0))])
    # follows half its limit: 0.5 x 32 = 16 A
    p.add_plug("B", 1, limit=32, visits=[Visit(30, 4000, Car(1, 32, 50.0, 0.5))])
    p.advance_to(100)
    truth = p.grid.truth()
    l1 = truth.of("main", "L1")
    assert (l1.current, l1.peak) == (48.0, 48.0)
    assert l1.seconds_above == 70  # from 30 to 100
    assert l1.ampere_seconds_above == pytest.approx(70 * 8)
    assert truth.of("main", "L2").current == 16.0
    assert truth.of("main", "L2").ampere_seconds_above == 0.0


def test_a_changed_limit_acts_after_the_delay_in_the_order_set() -> None:
    p = physics(single_fuse(100), delay=(30, 60))
    plug = p.add_plug("A", 1, limit=32, visits=[Visit(0, 10_000, Car(3, 32, 100.0))])
    p.advance_to(100)
    at = p.set_limit("A", 1, 10)
    assert 130 <= at <= 160
    p.advance_to(at - 1)
    assert plug.currents() == (32.0, 32.0, 32.0)  # still the old limit
    second = p.set_limit("A", 1, 20)
    assert second >= at
    p.advance_to(at)
    assert plug.currents() == (10.0, 10.0, 10.0)
    p.advance_to(second)
    assert plug.currents() == (20.0, 20.0, 20.0)


def test_below_six_amperes_a_car_stops_and_resumes_when_allowed() -> None:
    p = physics(single_fuse(100))
    plug = p.add_plug("A", 1, limit=5, visits=[Visit(0, 10_000, Car(1, 16, 10.0))])
    p.advance_to(10)
    assert p.status(plug) == "Connected" and plug.currents() == (0.0, 0.0, 0.0)
    p.set_limit("A", 1, 6)
    p.advance_to(11)
    assert p.status(plug) == "Charging" and plug.currents()[0] == 6.0


def test_energy_taper_and_full_are_what_the_car_wanted() -> None:
    p = physics(single_fuse(100))
    car = Car(1, 10, 1.0, taper_kwh=0.2)
    plug = p.add_plug("A", 1, limit=32, visits=[Visit(0, 20_000, car)])
    # 10 A x 230 V = 2.3 kW until 0.8 kWh, then 3.5 A (0.805 kW) for 0.2 kWh
    bulk = 0.8 / 2.3 * 3600
    p.advance_to(int(bulk) + 2)
    assert plug.currents()[0] == 3.5
    p.advance_to(20_000 - 1)
    session = p.session_now(plug)
    assert session is not None
    assert session.energy_kwh == pytest.approx(1.0)
    assert p.status(plug) == "Connected"
    taper = 0.2 / 0.805 * 3600
    assert session.charging_seconds == pytest.approx(bulk + taper, abs=3)
    ended = []
    plug.on_session_end = ended.append
    p.advance_to(20_000)
    assert p.status(plug) == "Available"
    assert ended[0].end == 20_000 and ended[0].energy_kwh == pytest.approx(1.0)


def test_rotation_puts_a_one_phase_car_on_the_site_phase_of_terminal_l1() -> None:
    spec = GridSpec(Fuse("main", (100, 100, 100), chargers=("A", "B")), {"B": "L3L1L2"})
    p = physics(spec)
    p.add_plug("A", 1, limit=16, visits=[Visit(0, 1000, Car(1, 16, 10.0))])
    p.add_plug("B", 1, limit=10, visits=[Visit(0, 1000, Car(1, 16, 10.0))])
    p.add_plug("B", 2, limit=7, visits=[Visit(0, 1000, Car(2, 16, 10.0))])
    p.advance_to(1)
    truth = p.grid.truth()
    # A: L1; B terminal L1 -> site L3 (10 + 7), terminal L2 -> site L1 (7)
    assert [truth.of("main", ph).current for ph in ("L1", "L2", "L3")] == [23.0, 0.0, 17.0]


def test_nested_fuses_carry_their_chargers_and_the_root_carries_everyone() -> None:
    spec = grid_from_mapping(
        {
            "fuse": {
                "name": "main",
                "limit": 50,
                "chargers": ["C"],
                "children": [{"name": "row", "limit": [20, 25, 25], "chargers": ["A"]}],
            }
        }
    )
    p = physics(spec)
    p.add_plug("A", 1, limit=16, visits=[Visit(0, 100, Car(1, 16, 10.0))])
    p.add_plug("A", 2, limit=16, visits=[Visit(0, 100, Car(1, 16, 10.0))])
    p.add_plug("C", 1, limit=16, visits=[Visit(0, 100, Car(3, 16, 10.0))])
    p.add_plug("D", 1, limit=16, visits=[Visit(0, 100, Car(1, 16, 10.0))])  # unplaced: root
    p.advance_to(10)
    truth = p.grid.truth()
    assert truth.of("row", "L1").current == 32.0
    assert truth.of("row", "L1").ampere_seconds_above == pytest.approx(10 * 12)
    assert truth.of("main", "L1").current == 64.0
    assert truth.of("main", "L2").current == 16.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"fuse": {"name": "m", "limit": 10}, "rotation": {}}, "unknown key 'rotation'"),
        ({"fuse": {"name": "m", "limit": [1, 2]}}, "give one number or three"),
        ({"fuse": {"name": "m", "limit": 10}, "rotations": {"A": "L1L1L2"}}, "rotation of A"),
        (
            {
                "fuse": {
                    "name": "m",
                    "limit": 9,
                    "chargers": ["A"],
                    "children": [{"name": "s", "limit": 9, "chargers": ["A"]}],
                }
            },
            "charger A is under both m and s",
        ),
    ],
)
def test_a_bad_site_is_one_line_naming_it(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        grid_from_mapping(data)


def test_per_second_samples_when_recording() -> None:
    p = physics(single_fuse(100), record=True)
    p.add_plug("A", 1, limit=16, visits=[Visit(2, 5, Car(1, 16, 10.0))])
    p.advance_to(7)
    assert p.grid.samples("main", "L1") == [0, 0, 16, 16, 16, 0, 0]


def test_remote_stop_and_start() -> None:
    p = physics(single_fuse(100))
    plug = p.add_plug("A", 1, limit=16, visits=[Visit(0, 1000, Car(1, 16, 10.0))])
    p.advance_to(10)
    assert p.stop_session("A", 1)
    assert p.status(plug) == "Connected" and plug.session is None
    p.advance_to(20)
    assert p.start_session("A", 1)
    assert p.status(plug) == "Charging"
    assert plug.session is not None and plug.session.number == 1


def test_a_month_of_sixty_connectors_steps_on_a_thirty_second_loop() -> None:
    # Speed is measured in bench/; here: a month of ticks and limit changes runs, and the
    # truth is counted up to the last tick.
    p = physics(single_fuse(200), delay=(30, 60))
    month = 30 * 86400
    for cp in range(30):
        for cid in (1, 2):
            visits = [
                Visit(day * 86400 + 3600 * (7 + cp % 3), day * 86400 + 3600 * 15, Car(1, 16, 20))
                for day in range(30)
            ]
            p.add_plug(f"C{cp}", cid, limit=16, visits=visits)
    for tick in range(0, month, 30):
        p.advance_to(tick)
        if tick % 600 == 0:
            for cp in range(0, 30, 7):
                p.set_limit(f"C{cp}", 1, 6 + (tick // 600) % 10)
    assert p.grid.truth().until == month - 30
