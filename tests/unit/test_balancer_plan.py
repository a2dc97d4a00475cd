"""The guarantee on hand-made states: the envelope, decreases first, increases only into room
already free, what is never written, and why a target waits."""

from __future__ import annotations

from dataclasses import replace

from charged.balancer.model import (
    BalancerParams,
    ChargerSpec,
    ConnectorState,
    Fuse,
    Site,
    WriteKind,
)
from charged.balancer.plan import plan

ONE = frozenset({0})
NOW = 1_000_000.0


def site(limit: float, n: int = 2) -> Site:
    specs = tuple(ChargerSpec(f"C{i}", connectors=(1,)) for i in range(n))
    return Site(Fuse("main", (limit, limit, limit), chargers=tuple(s.id for s in specs)), specs)


def car(cp: str, limit: float, **kw: object) -> ConnectorState:
    kw.setdefault("terminals", ONE)
    return ConnectorState((cp, 1), plugged=True, wants_current=True, limit=limit, **kw)  # type: ignore[arg-type]


def test_the_envelope_sums_worst_cases_per_fuse_phase() -> None:
    states = [car("C0", 10.0, pending=16.0), car("C1", 8.0, terminals=None)]
    result = plan(site(40), states, {("C0", 1): 16.0, ("C1", 1): 8.0}, NOW)
    assert result.envelope["main"] == (24.0, 8.0, 8.0)
    assert result.writes == () and result.over == ()


def test_a_decrease_goes_out_at_once_but_frees_room_only_once_followed() -> None:
    s = site(32)
    states = [car("C0", 32.0), car("C1", 0.0)]
    targets = {("C0", 1): 16.0, ("C1", 1): 16.0}
    first = plan(s, states, targets, NOW)
    assert [(w.key, w.kind) for w in first.writes] == [(("C0", 1), WriteKind.DECREASE)]
    assert first.deferred[("C1", 1)] == "waiting for room on main L1"
    # confirmed 10 s ago, the car not yet seen under it: still counted at 32
    settling = replace(states[0], limit=16.0, previous_limit=32.0, limit_since=NOW - 10)
    second = plan(s, [settling, states[1]], targets, NOW)
    assert second.writes == () and "waiting for room" in second.deferred[("C1", 1)]
    # a poll after the change shows the car at 16: the room is free
    followed = replace(settling, measured=(16.2, 0.0, 0.0), measured_at=NOW - 5)
    third = plan(s, [followed, states[1]], targets, NOW)
    assert [(w.key, w.limit) for w in third.writes] == [(("C1", 1), 16.0)]
    # or the settle time has passed
    late = plan(s, [settling, states[1]], targets, NOW + 60)
    assert [w.key for w in late.writes] == [("C1", 1)]


def test_an_unconfirmed_write_counts_at_the_higher_value_and_is_not_stacked() -> None:
    s = site(32)
    states = [car("C0", 8.0, pending=24.0), car("C1", 0.0)]
    result = plan(s, states, {("C0", 1): 16.0, ("C1", 1): 16.0}, NOW)
    assert result.deferred[("C0", 1)] == "waiting for the read-back of the last write"
    # 24 + 16 > 32: of the raise to 16 A, the 8 A that fit start the car now
    assert [(w.key, w.limit, w.kind) for w in result.writes] == [
        (("C1", 1), 8.0, WriteKind.INCREASE)
    ]
    assert ("C1", 1) not in result.deferred


def test_the_part_of_a_raise_that_fits_goes_out_when_it_is_worth_a_write() -> None:
    s = site(32)
    # 20 A counted for C0: C1's raise from 0 to 16 A fits 12 A of it, a start: sent
    states = [car("C0", 20.0), car("C1", 0.0)]
    result = plan(s, states, {("C0", 1): 20.0, ("C1", 1): 16.0}, NOW)
    assert [(w.key, w.limit) for w in result.writes] == [(("C1", 1), 12.0)]
    # C1 running at 10 A, raised to 16 A with 11 A free: 1 A is not worth a write (hysteresis)
    states = [car("C0", 21.0), car("C1", 10.0)]
    result = plan(s, states, {("C0", 1): 21.0, ("C1", 1): 16.0}, NOW)
    assert result.writes == () and "waiting for room" in result.deferred[("C1", 1)]
    # 3 A free above its 10 A: a 2 A step (the hysteresis) is
    states = [car("C0", 19.0), car("C1", 10.0)]
    result = plan(s, states, {("C0", 1): 19.0, ("C1", 1): 16.0}, NOW)
    assert [(w.key, w.limit) for w in result.writes] == [(("C1", 1), 13.0)]
    # 5 A free is not a start at 6 A: the car stays at 0
    states = [car("C0", 27.0), car("C1", 0.0)]
    result = plan(s, states, {("C0", 1): 27.0, ("C1", 1): 16.0}, NOW)
    assert result.writes == () and "waiting for room" in result.deferred[("C1", 1)]


def test_offline_pinned_and_unwritable_connectors_are_never_written() -> None:
    s = site(100, 4)
    states = [
        car("C0", 10.0, online=False),
        car("C1", 10.0, pinned=10.0),
        car("C2", 10.0, writable=False),
        car("C3", 10.0),
    ]
    targets = {(f"C{i}", 1): 20.0 for i in range(4)}
    result = plan(s, states, targets, NOW)
    assert [w.key for w in result.writes] == [("C3", 1)]
    # the offline one counts at its full 32 A on all phases
    assert result.envelope["main"] == (32 + 10 + 10 + 20, 32, 32)


def test_an_envelope_already_over_lets_only_decreases_out() -> None:
    s = site(40, 3)
    states = [car("C0", 32.0), car("C1", 32.0), car("C2", 0.0)]
    targets = {("C0", 1): 13.0, ("C1", 1): 13.0, ("C2", 1): 13.0}
    result = plan(s, states, targets, NOW)
    assert result.over == (("main", 0),)
    assert {w.kind for w in result.writes} == {WriteKind.DECREASE}
    assert ("C2", 1) in result.deferred


def test_a_vendor_outage_holds_increases_and_lets_decreases_out() -> None:
    s = site(100)
    states = [car("C0", 20.0), car("C1", 6.0)]
    targets = {("C0", 1): 10.0, ("C1", 1): 16.0}
    result = plan(s, states, targets, NOW, vendor_ok=False)
    assert [w.key for w in result.writes] == [("C0", 1)]
    assert result.deferred[("C1", 1)].startswith("vendor outage")


def test_the_write_budget_serves_decreases_first_then_the_lowest_limits() -> None:
    s = site(1000, 5)
    states = [car("C0", 6.0), car("C1", 0.0), car("C2", 30.0), car("C3", 20.0), car("C4", 8.0)]
    targets = {("C0", 1): 16.0, ("C1", 1): 16.0, ("C2", 1): 16.0, ("C3", 1): 16.0, ("C4", 1): 16.0}
    result = plan(s, states, targets, NOW, BalancerParams(max_writes_per_tick=3))
    assert [w.key for w in result.writes] == [("C2", 1), ("C3", 1), ("C1", 1)]
    assert result.deferred[("C0", 1)] == "write budget of 3 writes per tick used"


def test_limits_are_sent_as_whole_amperes_and_below_the_floor_as_a_pause() -> None:
    s = site(100)
    result = plan(s, [car("C0", 16.0), car("C1", 16.0)], {("C0", 1): 4.5, ("C1", 1): 20.7}, NOW)
    assert {(w.key, w.limit) for w in result.writes} == {(("C0", 1), 0.0), (("C1", 1), 20.0)}


def test_measured_mode_does_not_hold_increases_for_room() -> None:
    s = site(32)
    states = [car("C0", 32.0), car("C1", 0.0)]
    targets = {("C0", 1): 16.0, ("C1", 1): 16.0}
    result = plan(s, states, targets, NOW, BalancerParams(mode="measured"))
    assert {w.key for w in result.writes} == {("C0", 1), ("C1", 1)}


def test_a_limit_never_read_counts_at_full_and_is_not_written() -> None:
    s = site(40)
    states = [car("C0", 0.0), replace(car("C1", 0.0), limit=None)]
    result = plan(s, states, {("C0", 1): 8.0, ("C1", 1): 6.0}, NOW)
    assert [w.key for w in result.writes] == [("C0", 1)]
    assert result.envelope["main"][0] == 32 + 8
