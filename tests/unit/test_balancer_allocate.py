"""The allocation on hand-made sites: fair shares, the 6 A floor by turns, fixed loads,
whole amperes, hysteresis and arrivals, each checked against numbers worked out by hand."""

from __future__ import annotations

from dataclasses import replace

from charged.balancer.allocate import allocate
from charged.balancer.model import (
    BalancerMemory,
    BalancerParams,
    ChargerSpec,
    ConnectorState,
    Fuse,
    Reason,
    Rotation,
    Site,
)

ONE = frozenset({0})
THREE = frozenset({0, 1, 2})
NOW = 1_000_000.0


def site(limit: float, *chargers: ChargerSpec, margin: float = 0.0) -> Site:
    return Site(
        Fuse("main", (limit, limit, limit), chargers=tuple(c.id for c in chargers)),
        chargers,
        margin,
    )


def car(
    cp: str,
    c: int = 1,
    *,
    limit: float = 16.0,
    terminals: frozenset[int] | None = ONE,
    **kw: object,
) -> ConnectorState:
    return ConnectorState(
        (cp, c), plugged=True, wants_current=True, terminals=terminals, limit=limit, **kw
    )  # type: ignore[arg-type]


def idle(cp: str, c: int = 2, *, limit: float = 0.0, **kw: object) -> ConnectorState:
    return ConnectorState((cp, c), limit=limit, **kw)  # type: ignore[arg-type]


def chargers(n: int, **kw: object) -> list[ChargerSpec]:
    return [ChargerSpec(f"C{i}", connectors=(1,), **kw) for i in range(n)]  # type: ignore[arg-type]


def test_two_cars_on_one_phase_share_it_equally() -> None:
    a, b = chargers(2)
    result = allocate(site(32, a, b), [car("C0"), car("C1")], NOW)
    assert result.targets == {("C0", 1): 16, ("C1", 1): 16}
    for d in result.decisions.values():
        assert d.reason is Reason.FAIR_SHARE and d.bottleneck == ("main", 0)


def test_rotations_put_one_phase_cars_on_different_phases_each_getting_its_full() -> None:
    a = ChargerSpec("C0", connectors=(1,))
    b = ChargerSpec("C1", rotation=Rotation.parse("L2L3L1"), connectors=(1,))
    result = allocate(site(32, a, b), [car("C0"), car("C1")], NOW)
    assert result.targets == {("C0", 1): 32, ("C1", 1): 32}
    assert result.decisions[("C1", 1)].site_phases == {1}
    assert result.decisions[("C0", 1)].reason is Reason.CONNECTOR_MAX


def test_a_car_taking_less_leaves_the_rest_to_the_others() -> None:
    a, b = chargers(2)
    result = allocate(site(32, a, b), [car("C0", car_max=10.0), car("C1")], NOW)
    # the slow car's cap is what it took + 2 A headroom
    assert result.targets == {("C0", 1): 12, ("C1", 1): 20}
    assert result.decisions[("C0", 1)].reason is Reason.CAR_MAX


def test_installation_current_and_max_current_cap_a_connector() -> None:
    a = ChargerSpec("C0", installation_current=10, connectors=(1,))
    b = ChargerSpec("C1", connectors=(1,))
    result = allocate(site(100, a, b), [car("C0"), car("C1")], NOW, BalancerParams(max_current=25))
    assert result.targets == {("C0", 1): 10, ("C1", 1): 25}


def test_below_the_floor_some_cars_are_paused_and_the_rest_get_whole_amperes() -> None:
    specs = chargers(8)
    states = [car(s.id, limit=0.0) for s in specs]
    result = allocate(site(40, *specs), states, NOW)
    given = sorted(result.targets.values(), reverse=True)
    # 6 cars fit at 6 A (36 A); the 4 A left go an ampere at a time; two wait at 0
    assert given == [7, 7, 7, 7, 6, 6, 0, 0]
    assert len(result.paused) == 2
    for key in result.paused:
        assert result.decisions[key].reason is Reason.PAUSED_FLOOR
        assert result.memory.waiting_since[key] == NOW


def test_a_long_waiter_takes_the_slot_of_a_car_that_ran_long_but_not_a_fresh_one() -> None:
    a, b, c = chargers(3)
    params = BalancerParams(min_run_s=1800, max_wait_s=900)
    states = [car("C0", limit=6.0), car("C1", limit=6.0), car("C2", limit=0.0)]
    # C0 started an hour ago, C1 ten minutes ago; C2 has waited 20 minutes
    memory = BalancerMemory(
        running_since={("C0", 1): NOW - 3600, ("C1", 1): NOW - 600},
        waiting_since={("C2", 1): NOW - 1200},
    )
    result = allocate(site(12, a, b, c), states, NOW, params, memory)
    assert result.targets == {("C0", 1): 0, ("C1", 1): 6, ("C2", 1): 6}
    assert result.paused == (("C0", 1),)
    assert result.memory.waiting_since[("C0", 1)] == NOW
    # C2 runs once its 6 A is in force, not when it is decided: until then it keeps its
    # wait (a raise held for room must not send it to the back of the queue)
    assert ("C2", 1) not in result.memory.running_since
    assert result.memory.waiting_since[("C2", 1)] == NOW - 1200
    held = allocate(site(12, a, b, c), states, NOW + 30, params, result.memory)
    assert held.memory.waiting_since[("C2", 1)] == NOW - 1200
    in_force = [car("C0", limit=0.0), car("C1", limit=6.0), car("C2", limit=6.0)]
    later = allocate(site(12, a, b, c), in_force, NOW + 60, params, held.memory)
    assert later.memory.running_since[("C2", 1)] == NOW + 60
    assert ("C2", 1) not in later.memory.waiting_since
    # a waiter of 5 minutes does not displace anyone
    memory = replace(memory, waiting_since={("C2", 1): NOW - 300})
    result = allocate(site(12, a, b, c), states, NOW, params, memory)
    assert result.paused == (("C2", 1),)


def test_offline_pinned_and_unwritable_connectors_are_fixed_loads() -> None:
    specs = [ChargerSpec(f"C{i}", connectors=(1,)) for i in range(4)]
    states = [
        car("C0", limit=10.0, online=False),  # counted at its full 32 A on all three phases
        car("C1", limit=0.0),
        replace(car("C2", limit=8.0), pinned=8.0),
        replace(car("C3", limit=5.0), writable=False),
    ]
    result = allocate(site(60, *specs), states, NOW)
    d = result.decisions
    assert (d[("C0", 1)].reason, d[("C0", 1)].target) == (Reason.OFFLINE, 32)
    assert (d[("C2", 1)].reason, d[("C2", 1)].target) == (Reason.PINNED, 8)
    assert (d[("C3", 1)].reason, d[("C3", 1)].target) == (Reason.NOT_WRITABLE, 5)
    # L1: 60 - 32 - 8 - 5 = 15 for the one car that is ours
    assert d[("C1", 1)].target == 15


def test_a_connector_without_a_state_counts_as_offline_at_its_full_limit() -> None:
    a, b = chargers(2)
    result = allocate(site(40, a, b), [car("C1", limit=0.0)], NOW)
    assert result.decisions[("C0", 1)].reason is Reason.OFFLINE
    assert result.targets[("C1", 1)] == 8


def test_nested_fuses_each_phase_is_kept() -> None:
    specs = chargers(3)
    row = Fuse("row", (16, 16, 16), chargers=("C1", "C2"))
    tree = Site(Fuse("main", (40, 40, 40), children=(row,), chargers=("C0",)), tuple(specs))
    states = [car(s.id, limit=0.0) for s in specs]
    result = allocate(tree, states, NOW)
    assert result.targets == {("C0", 1): 24, ("C1", 1): 8, ("C2", 1): 8}
    assert result.decisions[("C1", 1)].bottleneck == ("row", 0)


def test_power_fairness_gives_a_three_phase_car_a_third_of_the_amperes() -> None:
    a, b = chargers(2)
    states = [car("C0", limit=0.0), car("C1", limit=0.0, terminals=THREE)]
    current = allocate(site(32, a, b), states, NOW)
    assert current.targets == {("C0", 1): 16, ("C1", 1): 16}
    power = allocate(site(32, a, b), states, NOW, BalancerParams(fairness="power"))
    # the floor first (6 + 6), then the 20 A left of L1 split 3:1 in power: 15 + 5
    assert power.targets == {("C0", 1): 21, ("C1", 1): 11}


def test_small_increases_and_increases_soon_after_a_decrease_are_held() -> None:
    a, b = chargers(2)
    s = site(32, a, b)
    # fair is 16/16; C0 holds 15: +1 A is below the 2 A hysteresis
    result = allocate(s, [car("C0", limit=15.0), car("C1", limit=16.0)], NOW)
    assert result.decisions[("C0", 1)].reason is Reason.HELD
    assert result.targets[("C0", 1)] == 15
    # C0 holds 10, lowered 60 s ago: +6 A waits for hold_s
    memory = BalancerMemory(changed_at={("C0", 1): NOW - 60})
    result = allocate(s, [car("C0", limit=10.0), car("C1", limit=16.0)], NOW, memory=memory)
    assert result.targets[("C0", 1)] == 10
    later = allocate(s, [car("C0", limit=10.0), car("C1", limit=16.0)], NOW + 400, memory=memory)
    assert later.targets[("C0", 1)] == 16
    # a start from 0 is never held
    result = allocate(s, [car("C0", limit=0.0), car("C1", limit=16.0)], NOW, memory=memory)
    assert result.targets[("C0", 1)] == 16


def test_a_small_decrease_is_kept_back_only_while_the_fuse_has_the_room() -> None:
    a, b = chargers(2)
    s = site(33, a, b)
    # fair 16 + 17 (one remainder ampere); C1 holding 17 is kept; C0 at 17 must come down
    result = allocate(s, [car("C0", limit=17.0), car("C1", limit=17.0)], NOW)
    assert sum(result.targets.values()) <= 33
    assert sorted(result.targets.values()) == [16, 17]


def test_a_lowered_car_is_remembered_for_the_hold() -> None:
    a, b = chargers(2)
    result = allocate(site(32, a, b), [car("C0", limit=32.0), car("C1", limit=0.0)], NOW)
    assert result.targets == {("C0", 1): 16, ("C1", 1): 16}
    assert result.memory.changed_at == {("C0", 1): NOW}


def test_idle_connectors_get_the_arrival_limit_from_spare_room_only() -> None:
    a = ChargerSpec("C0")
    s = site(12, a)
    six = BalancerParams(arrival_limit=6)
    result = allocate(s, [idle("C0", 1), idle("C0", 2)], NOW, six)
    assert result.targets == {("C0", 1): 6, ("C0", 2): 6}
    assert {d.reason for d in result.decisions.values()} == {Reason.ARRIVAL}
    busy = allocate(s, [car("C0", 1, limit=0.0), idle("C0", 2)], NOW, six)
    assert busy.targets == {("C0", 1): 12, ("C0", 2): 0}
    assert busy.decisions[("C0", 2)].reason is Reason.IDLE
    none = allocate(s, [idle("C0", 1), idle("C0", 2)], NOW)  # the default: none
    assert set(none.targets.values()) == {0}


def test_a_charger_outside_the_tree_is_not_the_balancers() -> None:
    placed, loose = ChargerSpec("C0", connectors=(1,)), ChargerSpec("C9", connectors=(1,))
    s = Site(Fuse("main", (20, 20, 20), chargers=("C0",)), (placed, loose))
    result = allocate(s, [car("C0", limit=0.0), car("C9", limit=0.0)], NOW)
    assert result.targets == {("C0", 1): 20}


def test_the_margin_is_kept_below_every_fuse() -> None:
    a, b = chargers(2)
    result = allocate(site(32, a, b, margin=2), [car("C0"), car("C1")], NOW)
    assert result.targets == {("C0", 1): 15, ("C1", 1): 15}
