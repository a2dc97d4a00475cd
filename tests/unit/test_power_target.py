"""The power target's window accounting and cap, worked out by hand."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime

import pytest

from charged.balancer.model import ChargerSpec, ConnectorState, Fuse, Rotation, Site
from charged.balancer.power_target import (
    Cap,
    TargetSpec,
    WindowState,
    advance,
    charger_cap,
    drawn,
    month_of,
    phase_caps,
    split,
    start,
    target_in_force,
    window_start,
)

SPEC = TargetSpec(target_w=10_000.0, window_s=900.0, voltage=230.0)
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp()  # a quarter-hour's start


def test_windows_are_clock_slices() -> None:
    assert window_start(SPEC, T0) == T0
    assert window_start(SPEC, T0 + 899.9) == T0
    assert window_start(SPEC, T0 + 900) == T0 + 900
    hourly = TargetSpec(10_000.0, window_s=3600.0)
    assert window_start(hourly, T0 + 3599) == T0
    with pytest.raises(ValueError, match="900 or 3600"):
        TargetSpec(10_000.0, window_s=1800.0)


def test_the_energy_between_ticks_is_the_trapezoid() -> None:
    s = advance(SPEC, None, T0, 0.0)
    assert (s.window_start, s.energy_wh, s.month) == (T0, 0.0, "2026-01")
    s = advance(SPEC, s, T0 + 60, 7200.0)
    assert s.energy_wh == pytest.approx(60.0)  # (0 + 7200) / 2 W for a minute
    s = advance(SPEC, s, T0 + 120, 7200.0)
    assert s.energy_wh == pytest.approx(180.0)  # + 7200 W for a minute = 120 Wh


def test_the_cap_plans_the_rest_of_the_window_from_what_is_used() -> None:
    # 6 kW for the first 5 minutes: 500 Wh of the window's 2500 Wh
    s = advance(SPEC, advance(SPEC, None, T0, 6000.0), T0 + 300, 6000.0)
    assert s.energy_wh == pytest.approx(500.0)
    cap = charger_cap(SPEC, s, T0 + 300, building_w=4000.0, horizon_s=30.0)
    assert cap.budget_wh == pytest.approx(2000.0)
    assert cap.left_s == 600.0
    assert cap.allowed_w == pytest.approx(12_000.0)  # 2000 Wh over the last 10 minutes
    assert cap.amps == pytest.approx(8000.0 / 690.0)  # 12 kW - 4 kW over 3 x 230 V
    # a building taking all of it leaves 0, never less
    assert charger_cap(SPEC, s, T0 + 300, 15_000.0, 30.0).amps == 0.0


def test_a_spent_budget_is_a_cap_of_zero_and_the_windows_end_is_bounded() -> None:
    used = WindowState(T0, 2600.0, T0 + 600, 10_000.0, "2026-01")
    assert charger_cap(SPEC, used, T0 + 600, 0.0, 30.0).amps == 0.0
    # 10 s left of a window with 1000 Wh unused: over the next 30 s tick the cap also runs
    # into the next window, so it is the target at most (10 kW - 4 kW building)
    late = WindowState(T0, 1500.0, T0 + 890, 5000.0, "2026-01")
    cap = charger_cap(SPEC, late, T0 + 890, 4000.0, 30.0)
    assert cap.allowed_w == 10_000.0
    assert cap.amps == pytest.approx(6000.0 / 690.0)


def test_a_tick_past_the_windows_end_splits_the_interval() -> None:
    s = WindowState(T0, 1000.0, T0 + 840, 6000.0, "2026-01")
    s = advance(SPEC, s, T0 + 960, 12_000.0)
    # at the end (60 s in) the power is 9000 W: 125 Wh closes the old window, 175 Wh opens
    assert s.window_start == T0 + 900
    assert s.last_mean_w == pytest.approx(1125.0 * 4)  # 1125 Wh in a quarter-hour: 4.5 kW
    assert s.energy_wh == pytest.approx(175.0)
    assert s.month_peak_w == pytest.approx(4500.0)
    # a gap longer than max_gap_s is not guessed at: the same window keeps what it knew
    same = advance(SPEC, s, T0 + 960 + 700, 3000.0)
    assert same.gap and same.energy_wh == pytest.approx(175.0) and same.time == T0 + 1660
    # a later window starts empty; the unfinished one counts what it is known to have used
    s = dataclasses.replace(s, energy_wh=1500.0)  # a 6 kW mean at least: above the peak
    later = advance(SPEC, s, T0 + 960 + 1800, 3000.0)
    assert later.gap and later.energy_wh == 0.0 and later.month_peak_w == pytest.approx(6000.0)
    assert later.window_start == window_start(SPEC, T0 + 2760) == T0 + 2700


def test_the_monthly_mode_raises_the_target_to_the_months_peak() -> None:
    monthly = TargetSpec(10_000.0, monthly=True, timezone="Europe/Stockholm")
    peaked = WindowState(T0, 0.0, T0, 0.0, "2026-01", month_peak_w=12_000.0)
    assert target_in_force(monthly, peaked) == 12_000.0
    assert target_in_force(SPEC, peaked) == 10_000.0
    assert charger_cap(monthly, peaked, T0, 0.0, 30.0).allowed_w == 12_000.0
    assert target_in_force(monthly, replace_peak(peaked, 8000.0)) == 10_000.0


def replace_peak(state: WindowState, peak: float) -> WindowState:
    return dataclasses.replace(state, month_peak_w=peak)


def test_the_month_turns_at_local_midnight() -> None:
    zone = TargetSpec(10_000.0, monthly=True, timezone="Europe/Stockholm")
    jan_end = datetime(2026, 1, 31, 22, 45, tzinfo=UTC).timestamp()  # 23:45 CET
    assert month_of(zone, jan_end) == "2026-01"
    assert month_of(zone, jan_end + 900) == "2026-02"  # 00:00 CET on 1 February
    s = WindowState(jan_end - 900, 2000.0, jan_end - 30, 8000.0, "2026-01", month_peak_w=9000.0)
    s = advance(zone, s, jan_end + 30, 8000.0)  # closes the 22:30 window: 8.27 kW < peak
    assert s.last_mean_w == pytest.approx((2000.0 + 8000.0 * 30 / 3600) * 4)
    assert (s.month, s.month_peak_w) == ("2026-01", 9000.0)
    s = advance(zone, s, jan_end + 480, 8000.0)
    s = advance(zone, s, jan_end + 930, 8000.0)  # closes January's last window: a new month
    assert s.month == "2026-02" and s.month_peak_w == 0.0
    assert s.last_mean_w == pytest.approx(8000.0)


def test_a_car_following_the_cap_keeps_the_window_within_the_target() -> None:
    """30 s ticks, a 4 kW building, a car wanting 11 kW that follows the cap one tick late:
    every finished window's mean is under the target, and within 1 % of it."""
    building, car, state = 4000.0, 0.0, start(SPEC, T0, 4000.0)
    means = []
    for k in range(1, 4 * 30 + 1):
        now = T0 + 30 * k
        state = advance(SPEC, state, now, building + car)
        if state.last_mean_w is not None and state.window_start == now:
            means.append(state.last_mean_w)
        cap = charger_cap(SPEC, state, now, building, 30.0)
        car = min(11_000.0, cap.amps * 3 * 230.0)  # drawn from this tick to the next
    assert len(means) == 4
    assert all(m <= SPEC.target_w + 1e-6 for m in means)
    assert all(m >= 0.99 * SPEC.target_w for m in means[1:])


def test_the_split_cuts_every_phase_by_the_same_fraction_of_its_draw() -> None:
    # 390 A in all, drawn 300 / 150 / 150, room 198 each, a 6 A floor: 18 A of floors, the
    # other 372 A over what the phases want beyond them (192, 144, 144 of 480 A)
    caps = split(390.0, (300.0, 150.0, 150.0), (198.0, 198.0, 198.0), 6.0)
    assert caps == pytest.approx((6 + 372 * 192 / 480, 6 + 372 * 144 / 480, 6 + 372 * 144 / 480))
    assert caps == pytest.approx((154.8, 117.6, 117.6))
    assert sum(caps) == pytest.approx(390.0)  # the caps' power is the allowed power


def test_a_phase_drawing_nothing_keeps_the_floor() -> None:
    # 100 A, only L1 draws: L2 and L3 keep 6 A each for a car that arrives, L1 the other 88
    assert split(100.0, (200.0, 0.0, 0.0), (198.0, 198.0, 198.0), 6.0) == pytest.approx(
        (88.0, 6.0, 6.0)
    )
    # less than the floors: all three alike
    assert split(9.0, (200.0, 0.0, 0.0), (198.0, 198.0, 198.0), 6.0) == pytest.approx(
        (3.0, 3.0, 3.0)
    )
    assert split(0.0, (200.0, 0.0, 0.0), (198.0, 198.0, 198.0), 6.0) == (0.0, 0.0, 0.0)
    assert split(-5.0, (200.0, 0.0, 0.0), (198.0, 198.0, 198.0), 6.0) == (0.0, 0.0, 0.0)


def test_what_no_phase_wants_goes_where_the_fuse_has_room() -> None:
    # 300 A, drawn 100 / 50 / 0 (138 A beyond the floors), room 150 each: the phases get
    # what they draw (100, 50, 6), the other 144 A in proportion to the room left (50, 100,
    # 144 of 294 A)
    caps = split(300.0, (100.0, 50.0, 0.0), (150.0, 150.0, 150.0), 6.0)
    assert caps == pytest.approx((100 + 144 * 50 / 294, 50 + 144 * 100 / 294, 6 + 144 * 144 / 294))
    assert caps == pytest.approx((124.49, 98.98, 76.53), abs=0.01)
    assert sum(caps) == pytest.approx(300.0)


def test_a_phase_wants_no_more_than_its_fuse_has_room_for() -> None:
    # 400 A, L1 draws 300 but has room for 100: the rest goes to L2 and L3's room
    assert split(400.0, (300.0, 0.0, 0.0), (100.0, 200.0, 200.0), 6.0) == pytest.approx(
        (100.0, 150.0, 150.0)
    )
    # more than the fuse has room for: the rest alike on top (the fuse binds, not the cap)
    assert split(330.0, (300.0, 0.0, 0.0), (100.0, 100.0, 100.0), 6.0) == pytest.approx(
        (110.0, 110.0, 110.0)
    )


GARAGE = Site(
    Fuse("main", (200.0, 200.0, 200.0), chargers=("A", "B", "C")),
    (
        ChargerSpec("A", installation_current=16.0),
        ChargerSpec("B", rotation=Rotation.parse("L2L3L1")),
        ChargerSpec("C"),
    ),
)


def test_the_draw_is_what_the_sites_chargers_were_measured_drawing() -> None:
    states = [
        # 10 A on each terminal of A (identity rotation)
        ConnectorState(("A", 1), plugged=True, wants_current=True, measured=(10.0, 10.0, 10.0)),
        # B is wired L2L3L1: 16 A on its terminal L1 is on site L2, 1 A on its L3 on site L1
        ConnectorState(("B", 1), plugged=True, wants_current=True, measured=(16.0, 0.0, 0.0)),
        ConnectorState(("B", 2), plugged=True, measured=(0.0, 0.0, 1.0)),
        # an offline charger's last reading, and a charger not on the site: not counted
        ConnectorState(("C", 1), online=False, plugged=True, measured=(32.0, 0.0, 0.0)),
        ConnectorState(("X", 1), plugged=True, measured=(32.0, 32.0, 32.0)),
    ]
    assert drawn(GARAGE, states) == pytest.approx((11.0, 26.0, 10.0))


def test_the_caps_are_the_allowed_power_over_the_phases_in_tenths_of_an_ampere() -> None:
    # 20,700 W allowed to the chargers = 30 A a phase, 90 A in all; only a one-phase car
    # drawing 32 A on L1: the floors (6, 6, 6), L1 what it draws (32, 6, 6: 44 A), and the
    # 46 A left in proportion to the fuse's room left (168, 194, 194 of 556 A)
    cap = Cap(30.0, 90_000.0, 20_700.0, 1_000.0, 600.0)
    car = ConnectorState(("C", 1), plugged=True, wants_current=True, measured=(32.0, 0.0, 0.0))
    caps = phase_caps(cap, GARAGE, [car], 6.0)
    assert caps == (
        math.floor((32 + 46 * 168 / 556) * 10) / 10,
        math.floor((6 + 46 * 194 / 556) * 10) / 10,
        math.floor((6 + 46 * 194 / 556) * 10) / 10,
    )
    assert caps == (45.8, 22.0, 22.0)  # 89.8 A: 0.2 A lost to the rounding down
