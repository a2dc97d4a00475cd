"""The fleet model on its own: ids, determinism, vehicles, sessions, the closed loop."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import pytest

from charged.clock import FakeClock
from charged.simulator import STEP, Fleet
from charged.simulator.charger_state import ConnectorReading
from charged.simulator.connector import Connector

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86_400.0


def make_fleet(chargers: int = 4, seed: int = 1, start: float = START + 8 * 3600) -> Fleet:
    return Fleet(chargers=chargers, seed=seed, clock=FakeClock(start), start_time=start)


def snapshot(fleet: Fleet) -> list[tuple[str, int, str, int | None, float, object]]:
    rows = []
    for cp_id in fleet.charge_point_ids():
        cp = fleet.get(cp_id)
        assert cp is not None
        for c in cp.connectors:
            r = c.reading()
            rows.append(
                (
                    cp_id,
                    c.connector_id,
                    r.status,
                    r.session.id if r.session else None,
                    round(r.session.energy_kwh, 9) if r.session else 0.0,
                    r.currents,
                )
            )
    return rows


def charging_connector(fleet: Fleet, min_amps: float = 8.0) -> Connector:
    """A connector whose vehicle is in bulk charging (well above the taper current)."""
    for _ in range(2000):
        for cp in fleet.charge_points():
            fleet.get(cp.id)
            for c in cp.connectors:
                r = c.reading()
                if r.status == "Charging" and r.currents and r.currents[0] > min_amps:
                    return c
        fleet.advance(300)
    raise AssertionError("no vehicle charging in the fleet")


def test_ids_look_like_the_vendors_and_are_unique() -> None:
    ids = make_fleet(chargers=500).charge_point_ids()
    assert len(ids) == len(set(ids)) == 500
    assert all(re.fullmatch(r"\d{10}[A-Z]", i) for i in ids), ids[:5]


def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    a, b, c = make_fleet(seed=5), make_fleet(seed=5), make_fleet(seed=6)
    assert a.charge_point_ids() == b.charge_point_ids() != c.charge_point_ids()
    for fleet in (a, b):
        fleet.advance(5 * 3600)
    assert snapshot(a) == snapshot(b)


def test_result_does_not_depend_on_how_often_it_is_asked() -> None:
    once, often = make_fleet(seed=9), make_fleet(seed=9)
    once.advance(12 * 3600)
    for _ in range(int(12 * 3600 / 7)):  # asked every 7 s: off the model's 10-s grid
        often.advance(7)
        often.get(often.charge_point_ids()[0])
    often.advance(12 * 3600 - int(12 * 3600 / 7) * 7)
    assert snapshot(once) == snapshot(often)
    cp = once.charge_point_ids()[0]
    assert once.sessions(cp) == often.sessions(cp)


def test_fleet_time_follows_the_clock_times_speed() -> None:
    clock = FakeClock(START)
    fleet = Fleet(chargers=1, seed=1, clock=clock, speed=60.0, start_time=START)
    assert fleet.now() == START

    asyncio.run(clock.advance(10))
    assert fleet.now() == START + 600
    fleet.advance(30)
    assert fleet.now() == START + 630
    with pytest.raises(ValueError, match="cannot go back"):
        fleet.advance(-1)


def test_only_the_asked_charger_is_stepped() -> None:
    fleet = make_fleet(chargers=3)
    fleet.advance(3600)
    first, second, _ = fleet.charge_points()
    fleet.get(first.id)
    assert all(c.t == START + 8 * 3600 + 3600 for c in first.connectors)
    assert all(c.t == START + 8 * 3600 for c in second.connectors)


def test_vehicles_over_two_days_behave_as_in_the_field_study() -> None:
    fleet = make_fleet(chargers=3, seed=2)
    seen: dict[int, list[str]] = {}
    energy: dict[int, list[float]] = {}
    currents: list[tuple[int, tuple[float, float, float]]] = []
    voltages: list[float] = []
    for _ in range(int(2 * DAY / 60)):
        fleet.advance(60)
        for cp in fleet.charge_points():
            fleet.get(cp.id)
            for c in cp.connectors:
                r: ConnectorReading = c.reading()
                voltages.extend(r.voltages)
                if r.session is None:
                    assert r.status in ("Available", "Connected")
                    continue
                statuses = seen.setdefault(r.session.id, [])
                if not statuses or statuses[-1] != r.status:
                    statuses.append(r.status)
                energy.setdefault(r.session.id, []).append(r.session.energy_kwh)
                if r.currents is not None:
                    currents.append((r.session.phases, r.currents))
    assert len(seen) >= 6
    for statuses in seen.values():
        assert statuses in (["Charging", "Connected"], ["Connected"], ["Charging"]), statuses
    for series in energy.values():
        assert series == sorted(series)  # energy only grows within a session
    assert all(225 <= v <= 235 for v in voltages)
    one_phase = [i for phases, i in currents if phases == 1]
    three_phase = [i for phases, i in currents if phases == 3]
    assert one_phase and three_phase
    assert all(l2 == l3 == 0.001 for _, l2, l3 in one_phase)
    bulk = {round(i[0]) for i in one_phase if i[0] > 5}
    assert bulk <= {9, 15} and bulk, bulk
    assert all(i[0] == i[1] == i[2] for i in three_phase)
    assert {round(i[0]) for i in three_phase if i[0] > 5} == {15}
    # near full: pulses of ≈3.5 A and ≈0 A
    taper = [i[0] for _, i in currents if i[0] < 5]
    assert any(3.3 <= a <= 3.7 for a in taper) and any(a == 0.0 for a in taper)


def test_sessions_end_with_4_to_6_kwh_and_energy_resets() -> None:
    fleet = make_fleet(chargers=4, seed=4)
    fleet.advance(2 * DAY)
    finished = [
        s for cp in fleet.charge_point_ids() for s in fleet.sessions(cp) if s.end is not None
    ]
    assert len(finished) >= 8
    fresh = [s for s in finished if s.start > fleet.start_time]  # not warm-started
    assert fresh
    for s in fresh:
        assert 4.0 <= s.energy_kwh <= 6.1, s
        assert 0.4 * 3600 <= s.charging_seconds <= 3.5 * 3600, s
        assert s.end is not None and s.end - s.start == s.charging_seconds + s.idle_seconds
        assert s.session_type == ("ThreePhase" if s.phases == 3 else "OnePhase")
    ids = [s.session_id for s in finished]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    # a connector without a vehicle reads no session and no energy
    idle = [c for cp in fleet.charge_points() for c in cp.connectors if c.vehicle is None]
    assert idle and all(c.reading().session is None for c in idle)


def test_more_arrivals_in_the_morning_than_at_night() -> None:
    fleet = make_fleet(chargers=40, seed=8, start=START)
    fleet.advance(2 * DAY)
    hours = Counter(
        int(s.start // 3600) % 24
        for cp in fleet.charge_point_ids()
        for s in fleet.sessions(cp)
        if s.start > fleet.start_time
    )
    morning = sum(hours[h] for h in (7, 8, 9))
    night = sum(hours[h] for h in (1, 2, 3))
    assert morning > 4 * night, hours


def test_limit_caps_the_current_at_once_and_low_limits_stop_it() -> None:
    fleet = make_fleet(chargers=6, seed=3)
    c = charging_connector(fleet, min_amps=12)
    c.settings.max_current = 10
    r = c.reading()
    assert r.status == "Charging" and r.currents is not None
    assert max(r.currents) <= 10 and r.currents[0] > 9
    energy = c.session.energy_kwh if c.session else 0.0
    fleet.advance(600)
    fleet.get(c.charge_point.id)
    r = c.reading()
    # still charging (the seed's vehicle is far from full), and still under the cap
    assert r.status == "Charging" and r.currents is not None
    assert max(r.currents) <= 10 and r.currents[0] > 9
    # 10 minutes at under 10 A on at most three phases
    assert c.session is not None
    assert 0 < c.session.energy_kwh - energy <= 3 * 10 * 235 / 1000 * 600 / 3600 + 1e-9

    for low in (5.0, 0.0):
        c.settings.max_current = low
        r = c.reading()
        assert (r.status, r.currents) == ("Connected", None)
    before = c.session.energy_kwh
    fleet.advance(600)
    fleet.get(c.charge_point.id)
    assert c.session is not None and c.session.energy_kwh == before  # paused: no energy


def test_mode_off_drops_to_zero_and_on_resumes() -> None:
    fleet = make_fleet(chargers=6, seed=3)
    c = charging_connector(fleet)
    c.settings.mode = "Off"
    assert c.reading().currents is None and c.reading().power_kw == 0.0
    c.settings.mode = "On"
    r = c.reading()
    assert r.status == "Charging" and r.currents is not None and r.currents[0] > 5


def test_charge_point_limit_caps_its_connectors() -> None:
    fleet = make_fleet(chargers=6, seed=3)
    c = charging_connector(fleet, min_amps=12)
    c.charge_point.settings.max_current = 8
    r = c.reading()
    assert r.currents is not None and max(r.currents) <= 8


def test_remote_stop_ends_the_session_and_remote_start_opens_one() -> None:
    fleet = make_fleet(chargers=6, seed=3)
    c = charging_connector(fleet)
    assert c.session is not None
    stopped = c.session.id
    assert c.remote_stop()
    r = c.reading()
    assert (r.status, r.session) == ("Connected", None)
    assert fleet.sessions(c.charge_point.id, c.connector_id)[-1].session_id == stopped
    assert fleet.sessions(c.charge_point.id, c.connector_id)[-1].end == c.t
    assert c.remote_start()
    assert c.session is not None and c.session.id != stopped
    assert c.reading().status == "Charging"


def test_step_is_ten_fleet_seconds() -> None:
    # the reported state moves on a fixed grid: requests between grid points see the same
    fleet = make_fleet(chargers=2, seed=3)
    c = charging_connector(fleet)
    fleet.get(c.charge_point.id)
    t = c.t
    fleet.advance(STEP - (fleet.now() - t) - 0.5)
    fleet.get(c.charge_point.id)
    assert c.t == t
    fleet.advance(1)
    fleet.get(c.charge_point.id)
    assert c.t == t + STEP


def test_bad_arguments_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="speed must be positive"):
        Fleet(chargers=1, seed=1, clock=FakeClock(), speed=0)
    with pytest.raises(ValueError, match="chargers must not be negative"):
        Fleet(chargers=-1, seed=1, clock=FakeClock())
