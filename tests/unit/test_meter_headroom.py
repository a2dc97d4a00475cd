"""The headroom a meter's readings earn: the largest rise within the reaction time, remembered."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charged.meters.book import MeterBook, MeterSpec
from charged.meters.headroom import RiseHeadroom
from charged.metrics import Metrics

HOUR = 3600.0


def test_a_meter_slower_than_the_reaction_time_rises_by_its_steps() -> None:
    room = RiseHeadroom(2.0, reaction_s=90.0, window_s=24 * HOUR)
    for step, l1 in enumerate((10.0, 13.0, 12.0, 18.0, 17.5)):  # every 5 minutes
        room.observe(step * 300.0, (l1, 4.0, 4.0))
    # 10 → 13 is 3 A, 12 → 18 is 6 A; L2 and L3 never rose: the floor
    assert room.headroom(1200.0) == (6.0, 2.0, 2.0)


def test_a_fast_meter_rises_by_what_the_reaction_time_spans() -> None:
    room = RiseHeadroom(2.0, reaction_s=90.0, window_s=24 * HOUR)
    for second in range(600):  # 1 Hz; L1 ramps by 0.1 A/s for 300 s, then holds
        l1 = 10.0 + 0.1 * min(second, 300)
        room.observe(float(second), (l1, 5.0, 5.0))
    # the lowest reading of the 90 s before a reading on the ramp is 90 × 0.1 A below it
    assert room.headroom(600.0)[0] == pytest.approx(9.0)
    assert room.headroom(600.0)[1:] == (2.0, 2.0)


def test_a_rise_is_forgotten_once_it_leaves_the_window() -> None:
    room = RiseHeadroom(2.0, reaction_s=90.0, window_s=HOUR)
    room.observe(0.0, (10.0, 10.0, 10.0))
    room.observe(60.0, (20.0, 10.0, 10.0))  # +10 A
    room.observe(1800.0, (25.0, 10.0, 10.0))  # +5 A (the reading before: 20 A)
    assert room.headroom(HOUR + 59.0) == (10.0, 2.0, 2.0)
    assert room.headroom(HOUR + 61.0) == (5.0, 2.0, 2.0)  # the 10 A rise has left the hour
    assert room.headroom(1800.0 + HOUR + 1.0) == (2.0, 2.0, 2.0)


def test_falling_readings_earn_nothing_and_export_counts_from_zero() -> None:
    room = RiseHeadroom(1.0, reaction_s=90.0, window_s=HOUR)
    room.observe(0.0, (30.0, -5.0, 0.0))
    room.observe(30.0, (12.0, 3.0, 0.0))  # L1 falls; L2 leaves export: 0 → 3 A
    assert room.headroom(60.0) == (1.0, 3.0, 1.0)


def test_no_window_keeps_the_floor() -> None:
    room = RiseHeadroom(2.5, reaction_s=90.0, window_s=0.0)
    room.observe(0.0, (0.0, 0.0, 0.0))
    room.observe(30.0, (40.0, 40.0, 40.0))
    assert room.headroom(60.0) == (2.5, 2.5, 2.5)
    with pytest.raises(ValueError, match="reaction_s"):
        RiseHeadroom(2.0, reaction_s=0.0, window_s=HOUR)


def _rises_by_hand(
    readings: list[tuple[float, float]], reaction_s: float, window_s: float, now: float
) -> float:
    """The module's definition, read literally: every reading's rise over the lowest reading of
    the reaction time before it (or the reading just before), the largest in the window."""
    largest = 0.0
    for i, (time, amps) in enumerate(readings):
        before = [max(0.0, a) for t, a in readings[:i] if time - reaction_s <= t < time]
        if not before and i > 0:
            before = [max(0.0, readings[i - 1][1])]
        if before and time >= now - window_s:
            largest = max(largest, max(0.0, amps) - min(before))
    return largest


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.5, max_value=200.0), st.floats(min_value=-20.0, max_value=80.0)
        ),
        min_size=1,
        max_size=40,
    ),
    st.floats(min_value=1.0, max_value=300.0),
    st.floats(min_value=1.0, max_value=3000.0),
    st.floats(min_value=0.0, max_value=3000.0),
)
def test_the_deques_give_what_the_definition_says(
    gaps: list[tuple[float, float]], reaction_s: float, window_s: float, after: float
) -> None:
    readings, time = [], 0.0
    for gap, amps in gaps:
        time += gap
        readings.append((time, amps))
    room = RiseHeadroom(0.0, reaction_s=reaction_s, window_s=window_s)
    for t, amps in readings:
        room.observe(t, (amps, 0.0, 0.0))
    now = time + after
    by_hand = _rises_by_hand(readings, reaction_s, window_s, now)
    assert room.headroom(now)[0] == pytest.approx(by_hand)


def test_the_book_adds_the_learned_rise_and_shows_it() -> None:
    metrics = Metrics()
    spec = MeterSpec(
        "main",
        "mqtt",
        max_age_s=60.0,
        fallback=(25.0, 25.0, 25.0),
        headroom=2.0,
        learn_window_s=24 * HOUR,
        reaction_s=90.0,
    )
    book = MeterBook([spec], metrics=metrics)
    book.record("main", 1000.0, (10.0, 10.0, 10.0))
    assert book.loads(1000.0) == {"main": (12.0, 12.0, 12.0)}  # nothing learned yet: 2 A
    book.record("main", 1030.0, (17.0, 11.0, 10.0))  # L1 jumps by 7 A within the reaction
    assert book.loads(1030.0) == {"main": (24.0, 13.0, 12.0)}
    book.record("main", 1060.0, (12.0, 11.0, 10.0))
    assert book.loads(1060.0) == {"main": (19.0, 13.0, 12.0)}  # the 7 A are remembered
    assert book.measured(1060.0) == {"main": (12.0, 11.0, 10.0)}  # the power target's view
    sample = metrics.registry.get_sample_value(
        "charged_meter_headroom_amperes", {"fuse": "main", "phase": "L1"}
    )
    assert sample == 7.0
    assert book.loads(1030.0 + 24 * HOUR + 1.0)["main"] == (25.0, 25.0, 25.0)  # stale by then
