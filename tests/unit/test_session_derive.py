"""derive_session on hand-made polls: durations, phases, power, gaps, the vendor's values."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from charged.sessions.derive import Poll, VendorSession, derive_session, detect_phases, gap_spans

T0 = datetime(2026, 1, 5, 8, 0, 0)
ONE_PHASE = {"L1": (15.0, 230.0), "L2": (0.001, 230.0), "L3": (0.001, 231.0)}
THREE_PHASE = {"L1": (15.0, 230.0), "L2": (15.0, 229.0), "L3": (15.0, 231.0)}


def polls(
    statuses: str,
    phases: dict[str, tuple[float, float]],
    *,
    every: int = 30,
    skip: frozenset[int] = frozenset(),
) -> list[Poll]:
    """One poll per character ('C' charging, 'I' connected), every ``every`` s, some skipped."""
    out = []
    energy = 0.0
    for i, code in enumerate(statuses):
        charging = code == "C"
        if i not in skip:
            out.append(
                Poll(
                    time=T0 + timedelta(seconds=every * i),
                    status="Charging" if charging else "Connected",
                    energy_kwh=round(energy, 6),
                    power_kw=None,
                    phases=phases if charging else {},
                    row_id=i + 1,
                    session_type="OnePhase",
                    start_time=T0,
                )
            )
        if charging:
            energy += sum(c * v for c, v in phases.values()) * every / 3_600_000
    return out


def test_a_car_that_stays_plugged_in_after_full_has_its_idle_time_after_charging() -> None:
    session = polls("C" * 40 + "I" * 60, ONE_PHASE)
    end = T0 + timedelta(seconds=30 * 100)  # the first poll without the session
    facts = derive_session(session, next_poll=end)
    assert facts.charging_s == 40 * 30
    assert facts.idle_after_s == 60 * 30
    assert facts.connected_s == 100 * 30
    assert facts.end_time == end and facts.start_time == T0
    assert (facts.gap_count, facts.gap_s) == (0, 0.0)
    assert facts.polls == 100 and facts.last_status_id == 100


def test_power_is_current_times_voltage_over_the_phases_and_integrates_to_the_counter() -> None:
    facts = derive_session(polls("C" * 40 + "I" * 5, THREE_PHASE), next_poll=None)
    watts = 15 * 230 + 15 * 229 + 15 * 231
    assert facts.peak_power_w == pytest.approx(watts)
    assert facts.mean_power_w == pytest.approx(watts)
    assert facts.energy_from_power_kwh == pytest.approx(watts * 40 * 30 / 3_600_000)
    assert facts.observed_energy_kwh == pytest.approx(facts.energy_from_power_kwh, rel=1e-5)
    assert facts.energy_kwh == pytest.approx(facts.observed_energy_kwh)


def test_phases_are_detected_from_the_currents() -> None:
    assert derive_session(polls("C" * 10, ONE_PHASE), next_poll=None).phases == 1
    assert derive_session(polls("C" * 10, THREE_PHASE), next_poll=None).phases == 3
    # polls of a pulsing or paused car (all phases ≈ 0) tell nothing
    quiet = {"L1": (0.2, 230.0), "L2": (0.2, 230.0), "L3": (0.2, 230.0)}
    assert detect_phases(polls("CCC", quiet) + polls("C", ONE_PHASE)) == 1
    # no measurements at all: the vendor's sessionType is the fallback
    assert derive_session(polls("III", {}), next_poll=None).phases == 1


def test_a_polling_gap_is_marked_and_counted_neither_charging_nor_idle() -> None:
    session = polls("C" * 30 + "I" * 30, ONE_PHASE, skip=frozenset(range(10, 20)))  # 5 min unseen
    facts = derive_session(session, next_poll=T0 + timedelta(seconds=60 * 30))
    assert facts.gap_count == 1
    assert facts.gap_s == pytest.approx(10 * 30)
    assert facts.charging_s == 20 * 30  # the 10 polls never seen are not assumed charging
    assert facts.idle_after_s == 30 * 30
    assert facts.charging_s + facts.idle_after_s + facts.gap_s == facts.connected_s
    # no power is assumed across the gap either
    watts = sum(c * v for c, v in ONE_PHASE.values())
    assert facts.energy_from_power_kwh == pytest.approx(watts * 20 * 30 / 3_600_000)
    assert gap_spans([p.time for p in session], 30) == [
        (T0 + timedelta(seconds=9 * 30), T0 + timedelta(seconds=20 * 30))
    ]


def test_a_session_begun_before_the_first_poll_marks_the_unseen_start_as_a_gap() -> None:
    session = polls("C" * 10, ONE_PHASE)
    vendor = VendorSession(start=T0 - timedelta(hours=1), end=None, energy_kwh=9.5)
    facts = derive_session(session, next_poll=None, vendor=vendor)
    assert facts.start_time == T0 - timedelta(hours=1)
    assert facts.gap_count == 1 and facts.gap_s == 3600
    assert facts.energy_kwh == 9.5  # the vendor's figure wins over the counter


def test_the_vendor_end_replaces_the_estimate_from_the_next_poll() -> None:
    session = polls("C" * 10 + "I" * 10, ONE_PHASE)
    estimate = derive_session(session, next_poll=T0 + timedelta(seconds=600))
    vendor_end = T0 + timedelta(seconds=19 * 30 + 12)
    exact = derive_session(
        session,
        next_poll=T0 + timedelta(seconds=600),
        vendor=VendorSession(start=T0, end=vendor_end, energy_kwh=None),
    )
    assert estimate.end_time == T0 + timedelta(seconds=600)
    assert exact.end_time == vendor_end
    assert exact.idle_after_s == 9 * 30 + 12
    assert exact.energy_kwh == estimate.energy_kwh  # no vendor energy: the counter's


def test_a_running_session_counts_up_to_its_latest_poll() -> None:
    facts = derive_session(polls("C" * 10, ONE_PHASE), next_poll=None)
    assert facts.end_time is None
    assert facts.charging_s == 9 * 30
    assert facts.connected_s == 9 * 30


def test_a_session_only_the_vendor_knows_keeps_its_figures() -> None:
    vendor = VendorSession(
        start=T0, end=T0 + timedelta(hours=2), energy_kwh=4.2, session_type="ThreePhase"
    )
    facts = derive_session([], next_poll=None, vendor=vendor)
    assert (facts.start_time, facts.end_time, facts.energy_kwh) == (
        T0,
        T0 + timedelta(hours=2),
        4.2,
    )
    assert facts.phases == 3 and facts.polls == 0 and facts.connected_s == 7200


# ---------------------------------------------------------------- the end, and the next session


def test_the_end_is_the_first_poll_without_the_session() -> None:
    session = polls("C" * 10, ONE_PHASE)  # last poll at T0 + 270 s
    assert derive_session(session, next_poll=T0 + timedelta(seconds=300)).end_time == T0 + (
        timedelta(seconds=300)
    )


def test_the_end_is_capped_by_the_next_session_on_the_connector() -> None:
    # the collector was away for an hour; the next car plugged in 20 min after the last poll
    # of this one: the session cannot have lasted until the first poll after the gap
    session = polls("C" * 10, ONE_PHASE)
    last = session[-1].time
    next_start = last + timedelta(minutes=20)
    facts = derive_session(
        session, next_poll=last + timedelta(hours=1), next_start=next_start, interval=30
    )
    assert facts.end_time == next_start
    assert facts.connected_s == (next_start - T0).total_seconds()
    # what the polls did not see is a gap, not charging
    assert facts.gap_count == 1 and facts.charging_s < 11 * 30


def test_a_next_start_before_the_last_poll_does_not_cut_what_the_polls_saw() -> None:
    session = polls("C" * 10, ONE_PHASE)
    last = session[-1].time
    facts = derive_session(
        session, next_poll=last + timedelta(seconds=30), next_start=last - timedelta(seconds=5)
    )
    assert facts.end_time == last


def test_the_vendors_end_is_taken_as_it_is() -> None:
    session = polls("C" * 10, ONE_PHASE)
    vendor_end = session[-1].time + timedelta(minutes=5)
    vendor = VendorSession(start=T0, end=vendor_end, energy_kwh=1.0)
    facts = derive_session(
        session,
        next_poll=session[-1].time + timedelta(minutes=30),
        next_start=session[-1].time + timedelta(minutes=1),
        vendor=vendor,
    )
    assert facts.end_time == vendor_end
