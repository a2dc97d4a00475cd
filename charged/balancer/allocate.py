"""The allocation: max-min fair targets per connector under every fuse phase (pure).

One tick, in order:

1. *Fixed loads.*  Offline, pinned and unwritable connectors are not ours to change: each is
   counted at the most it may draw now (:func:`charged.balancer.envelope.worst_case`) on its
   phases, under every fuse above it.  What is left of each fuse phase is the capacity the
   cars that want current share.
2. *The floor.*  A car given less than 6 A stops charging, so every car admitted gets at
   least ``min_current``; where a bottleneck cannot give everyone that, cars are admitted in
   turn order (:func:`_turn`) and the rest are paused (0) until their turn comes: a car that
   started keeps its slot ``min_run_s``, a car waiting ``max_wait_s`` goes before one that ran
   longer, so nobody waits forever.
3. *Fair shares.*  Above the floor the admitted cars share what is left by water-filling
   (:mod:`charged.balancer.waterfill`), each capped by 32 A, its charger's installation current
   and what its car was seen to take (+ headroom).  ``fairness: power`` shares A x phases.
4. *Whole amperes.*  The vendor takes integers: shares are rounded down, then what rounding
   freed is handed out an ampere at a time to the largest remainders where every phase of the
   car has the room.
5. *Hysteresis.*  An increase smaller than ``hysteresis`` is not sent, nor one within
   ``hold_s`` of a decrease (no see-saw); a small decrease is kept back only while the fuses
   have the room for it.
6. *Arrivals.*  Idle connectors (no car, or a full one) get ``arrival_limit`` from room nobody
   else uses, so that a car plugged in starts at once; 0 where there is none.

The targets respect every fuse phase (fixed loads + targets <= its capacity,
limit - margin - the building's load: ``Site.capacity``) whenever the
fixed loads do; the guarantee (:mod:`charged.balancer.plan`) decides when each may be sent.
"""

from __future__ import annotations

import gc
import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from charged.balancer.envelope import worst_case
from charged.balancer.index import SiteIndex, index_of
from charged.balancer.model import (
    DEFAULT_PARAMS,
    Allocation,
    BalancerMemory,
    BalancerParams,
    ConnectorKey,
    ConnectorState,
    Decision,
    Reason,
    Site,
)
from charged.balancer.waterfill import Claim, water_fill

# Reason's members, bound once: each lookup on the class is a Python call in 3.11 (0.25 us,
# several per car and tick)
_OFFLINE = Reason.OFFLINE
_PINNED = Reason.PINNED
_NOT_WRITABLE = Reason.NOT_WRITABLE
_CONNECTOR_MAX = Reason.CONNECTOR_MAX
_CAR_MAX = Reason.CAR_MAX
_ARRIVAL = Reason.ARRIVAL
_IDLE = Reason.IDLE
_PAUSED_FLOOR = Reason.PAUSED_FLOOR
_HELD = Reason.HELD
_FAIR_SHARE = Reason.FAIR_SHARE

EPSILON = 1e-6
# a fuse phase whose floors all fit with this much to spare admits its cars without turns
LOOSE_MARGIN = 1e-3

Capacities = tuple[int, ...]  # the fuse phases (SiteIndex numbers) a connector loads


@dataclass(slots=True, eq=False)
class _Group:
    """The cars of a tick on the same fuse phases with the same cap: max-min fairness gives
    them one share, so they are filled as one claim (a row of a hundred connectors is a few
    claims, not a hundred)."""

    capacities: Capacities  # indices of the fuse phases its cars draw on
    cap: float  # the most each may be given
    phases: frozenset[int]  # the site phases they are counted on
    number: int  # the same for the same fuse phases (SiteIndex.counted)
    members: list[_Car]
    fair: float = 0.0  # the unrounded share of each admitted car
    bottleneck: int | None = None  # the fuse phase that stopped it (None: its cap)
    rest: float = 0.0  # what rounding down took off the share (<= 0)


@dataclass(slots=True)
class _Car:
    """A connector whose car wants current, while the tick is decided."""

    key: ConnectorKey
    state: ConnectorState
    group: _Group
    cap_reason: Reason
    rank: int  # its key's place in sorted order (SiteIndex.ranked)
    target: float = 0.0
    fair_target: float = 0.0  # the rounded share, before hysteresis
    admitted: bool = False


def _take(left: list[float], capacities: Capacities, amps: float) -> None:
    for r in capacities:
        left[r] -= amps


def _fits(left: list[float], capacities: Capacities, amps: float) -> bool:
    need = amps - EPSILON
    for r in capacities:  # noqa: SIM110 -- a loop: all() of a generator costs 2x per tick
        if left[r] < need:
            return False
    return True


def allocate(
    site: Site,
    states: Iterable[ConnectorState],
    now: float,
    params: BalancerParams = DEFAULT_PARAMS,
    memory: BalancerMemory | None = None,
) -> Allocation:
    """The target limit of every connector of ``site`` at time ``now``, and why.

    ``states`` are the connectors as last polled (with the limits in force and what was
    learned of their cars); a connector of the site without a state counts as offline.
    ``memory`` is the previous tick's ``Allocation.memory`` (None: a fresh start).

    Connectors that want current share what the fuses leave max-min fairly (water-filling in
    the unit ``params.fairness``) under every fuse's per-phase capacity (``Site.capacity``:
    limit - margin - the building's metered load), each
    connector's 32 A and installation current and the car's own learned maximum.  When a
    bottleneck cannot give everyone ``params.min_current`` some are paused (0), chosen so that
    nobody waits forever (``memory``).  Pinned, offline and unwritable connectors are fixed
    loads.  Idle connectors get ``params.arrival_limit`` from room nobody else needs.  Small
    changes are held back (hysteresis).  Never reads a clock, never raises for a feasible site.
    """
    # The tick builds tens of thousands of short-lived objects at a big site; a collection
    # it triggers walks the whole heap (a third of a 10,000-connector tick, measured), and
    # nothing the tick builds outlives it in a cycle (see the end of _allocate), so the
    # collector waits until the tick is done.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _allocate(site, states, now, params, memory)
    finally:
        if was_enabled:
            gc.enable()


def _allocate(
    site: Site,
    states: Iterable[ConnectorState],
    now: float,
    params: BalancerParams,
    memory: BalancerMemory | None,
) -> Allocation:
    memory = memory if memory is not None else BalancerMemory()
    index = index_of(site)
    left = list(index.capacity)  # what is left of every fuse phase
    # one entry per connector in the site's order, each replaced by its decision below
    decisions: dict[ConnectorKey, Decision] = dict.fromkeys(index.keys)  # type: ignore[assignment]
    tick = _classify(index, {s.key: s for s in states}, left, decisions, now, params)
    admitted = _admit(tick.groups, left, now, params, memory)
    _share(admitted, left, params)
    _round(admitted, left)
    _hysteresis(tick.cars, left, now, params, memory)
    remembered, paused = _decide(tick.cars, index, decisions, memory, now, params)
    _arrivals(tick.idle, left, decisions, params)
    for group in tick.groups.values():
        group.members.clear()  # a car and its group refer to each other: no cycle outlives us
    return Allocation(decisions, remembered, paused)


# ---------------------------------------------------------------- fixed loads

_Idle = tuple[ConnectorKey, ConnectorState, frozenset[int], Capacities, float]
# the groups of one tick by (fuse phases' number, cap)
_Groups = dict[tuple[int, float], _Group]
# groups and their admitted cars
_Admitted = list[tuple[_Group, list[_Car]]]


class _Tick(NamedTuple):
    cars: list[_Car]  # wanting current, in the site's order
    groups: _Groups  # the same cars, grouped
    idle: list[_Idle]  # no car, or a full one


def _classify(
    index: SiteIndex,
    by_key: dict[ConnectorKey, ConnectorState],
    left: list[float],
    decisions: dict[ConnectorKey, Decision],
    now: float,
    params: BalancerParams,
) -> _Tick:
    """Fixed loads are decided and taken from ``left`` here; the cars that want current and
    the idle connectors are returned."""
    tick = _Tick([], {}, [])
    cars, groups, idle = tick
    floor, headroom = params.min_current, params.car_max_headroom
    counted, memo = index.counted, index.counted_memo
    max_current = params.max_current
    for spec, connector_max, keys in index.ranked:  # (placed chargers only)
        full = connector_max if connector_max < max_current else max_current  # (full_limit)
        cp_id = spec.id
        for key, rank in keys:
            state = by_key.get(key)
            if state is None or not state.online:
                phases, capacities, _ = counted(spec, None)
                load = worst_case(state, spec, now, settle_s=params.settle_s)
                _take(left, capacities, load)
                decisions[key] = Decision(connector_max, _OFFLINE, phases)
                continue
            found = memo.get((cp_id, state.terminals))
            phases, capacities, number = (
                found if found is not None else counted(spec, state.terminals)
            )
            if state.pinned is not None or not state.writable or state.limit is None:
                reason = _PINNED if state.pinned is not None else _NOT_WRITABLE
                load = worst_case(state, spec, now, settle_s=params.settle_s)
                _take(left, capacities, load)
                decisions[key] = Decision(_fixed_target(state, connector_max), reason, phases)
            elif state.wants_current:
                cap, why = full, _CONNECTOR_MAX
                if state.car_max is not None:
                    seen = state.car_max + headroom
                    if seen < floor:
                        seen = floor
                    if seen < cap:
                        cap, why = seen, _CAR_MAX
                if cap < floor:
                    cap = floor
                group = groups.get((number, cap))
                if group is None:
                    group = groups[(number, cap)] = _Group(capacities, cap, phases, number, [])
                car = _Car(key, state, group, why, rank)
                cars.append(car)
                group.members.append(car)
            else:
                idle.append((key, state, phases, capacities, full))
    return tick


def _fixed_target(state: ConnectorState, connector_max: float) -> float:
    """What a pinned or unwritable connector is reported at: the limit it holds (its
    pin; full when not known)."""
    if state.pinned is not None:
        return state.pinned
    return state.limit if state.limit is not None else connector_max


# ---------------------------------------------------------------- the floor, by turns


def _turn(
    car: _Car, now: float, params: BalancerParams, memory: BalancerMemory
) -> tuple[float, ...]:
    """The order in which cars are admitted at the floor (smaller first).

    0. running (allowed >= 6 A) for less than ``min_run_s``: a start is not undone at once;
    1. paused for ``max_wait_s`` or more, longest first: a waiter's turn has come;
    2. running for longer, the most recently started first;
    3. the other waiters, longest first.
    """
    running = (car.state.limit or 0.0) >= params.min_current
    if running:
        since = memory.running_since.get(car.key, now)
        return (0.0, -since) if now - since < params.min_run_s else (2.0, -since)
    since = memory.waiting_since.get(car.key, now)
    return (1.0, since) if now - since >= params.max_wait_s else (3.0, since)


def _admit(
    groups: _Groups, left: list[float], now: float, params: BalancerParams, memory: BalancerMemory
) -> _Admitted:
    """Give the floor to every car there is room for, in turn order; the groups with their
    admitted cars.

    Turns matter only under a fuse phase that cannot give every car its floor (*tight*).
    A car whose fuse phases are all loose fits whatever the others do, so it is admitted
    at once, and only the cars under a tight one are sorted and admitted one by one: the
    result is that of admitting everyone in turn order, at a fraction of the cost."""
    floor = params.min_current
    demand = [0.0] * len(left)
    for group in groups.values():
        need = len(group.members) * floor
        for r in group.capacities:
            demand[r] += need
    tight = [d > room - LOOSE_MARGIN for d, room in zip(demand, left, strict=True)]
    admitted: _Admitted = []
    in_turn: list[_Car] = []
    for group in groups.values():
        members = group.members
        if any(tight[r] for r in group.capacities):
            in_turn += members
            continue
        _take(left, group.capacities, len(members) * floor)
        admitted.append((group, members))
        for car in members:
            car.admitted = True
    in_turn.sort(key=lambda c: (*_turn(c, now, params, memory), c.key))
    some: dict[_Group, list[_Car]] = {}
    for car in in_turn:
        capacities = car.group.capacities
        if _fits(left, capacities, floor):
            _take(left, capacities, floor)
            car.admitted = True
            found = some.get(car.group)
            if found is None:
                some[car.group] = [car]
            else:
                found.append(car)
    admitted += some.items()
    return admitted


# ---------------------------------------------------------------- fair shares


def _share(admitted: _Admitted, left: list[float], params: BalancerParams) -> None:
    """Water-fill what the floors left among the admitted cars, a claim per group."""
    floor = params.min_current
    claims = []
    rates = []
    for group, members in admitted:
        rate = 1.0 / len(group.phases) if params.fairness == "power" else 1.0
        rates.append(rate)
        claims.append(Claim(group.capacities, (group.cap - floor) / rate, rate * len(members)))
    shares = water_fill(left, claims)
    for (group, members), rate, share in zip(admitted, rates, shares, strict=True):
        # (level x the car's own rate: groups stopped by the same fuse get the same float)
        extra = share.level * rate
        group.fair = floor + extra
        group.bottleneck = share.bottleneck
        _take(left, group.capacities, extra * len(members))


def _round(admitted: _Admitted, left: list[float]) -> None:
    """Whole amperes: round down, then give freed amperes to the largest remainders."""
    can_rise: list[_Car] = []
    for group, members in admitted:
        fair = group.fair
        target = math.floor(fair + EPSILON)
        _take(left, group.capacities, (target - fair) * len(members))  # gives back fractions
        group.rest = target - fair
        for car in members:
            car.target = car.fair_target = target
    # room only shrinks from here: a group under its cap without an ampere free on each of
    # its fuse phases now gets none later, and need not be sorted
    for group, members in admitted:
        if members[0].target + 1 <= group.cap + EPSILON and _fits(left, group.capacities, 1.0):
            can_rise += members
    # the largest remainder first, ties by key: two stable sorts on plain numbers
    can_rise.sort(key=_RANK)
    can_rise.sort(key=_REST)
    full: set[int] = set()  # fuse phase sets without an ampere left (it only shrinks)
    for car in can_rise:
        group = car.group
        if group.number in full:
            continue
        if _fits(left, group.capacities, 1.0):
            _take(left, group.capacities, 1.0)
            car.target = car.fair_target = car.target + 1
        else:
            full.add(group.number)


_RANK = operator.attrgetter("rank")
_REST = operator.attrgetter("group.rest")


# ---------------------------------------------------------------- hysteresis


def _hysteresis(
    cars: list[_Car], left: list[float], now: float, params: BalancerParams, memory: BalancerMemory
) -> None:
    """Keep the limit in force where a change is not worth a write (or not yet)."""
    floor, hysteresis = params.min_current, params.hysteresis
    changed_at = memory.changed_at
    for car in cars:
        state = car.state
        current = state.pending if state.pending is not None else state.limit
        if current is None or car.target == current:
            continue
        if car.target > current:
            if current < floor:
                continue  # a start: never held
            small = car.target - current < hysteresis
            changed = changed_at.get(car.key)
            recent = changed is not None and now - changed < params.hold_s
            if small or recent:
                _take(
                    left, car.group.capacities, current - car.target
                )  # frees what it does not take
                car.target = current
        elif (
            car.target >= floor
            and current - car.target < hysteresis
            and _fits(left, car.group.capacities, current - car.target)
        ):
            # a small decrease, skipped only while every phase has the room for the old value
            _take(left, car.group.capacities, current - car.target)
            car.target = current


# ---------------------------------------------------------------- arrivals


def _arrivals(
    idle: list[_Idle],
    left: list[float],
    decisions: dict[ConnectorKey, Decision],
    params: BalancerParams,
) -> None:
    """Idle connectors: the arrival limit from spare room, else 0.

    Counted on all three phases until a car shows its own (no car: any may arrive).  A
    connector holding a full car is offered at least ``min_current``: less than that would
    read as a car held back and would call it back as wanting current."""
    offer = params.arrival_limit
    offer_plugged = max(offer, params.min_current) if offer > 0 else offer
    no_room: set[tuple[Capacities, float]] = set()  # (room only shrinks: no later fit either)
    for key, state, phases, capacities, full in idle:
        amps: float = math.floor(offer_plugged if state.plugged else offer)
        if amps > full:
            amps = full
        if amps > 0 and (capacities, amps) not in no_room:
            if _fits(left, capacities, amps):
                _take(left, capacities, amps)
                decisions[key] = _shared_decision(amps, _ARRIVAL, phases)
                continue
            no_room.add((capacities, amps))
        found = _IDLE_DECISIONS.get(phases)
        decisions[key] = found if found is not None else _shared_decision(0.0, _IDLE, phases)


# one Decision value for each (target, reason, phases) of idle connectors: thousands of them
# are alike, and a frozen value may be shared
_SHARED: dict[tuple[float, Reason, frozenset[int]], Decision] = {}
_IDLE_DECISIONS: dict[frozenset[int], Decision] = {}  # the same for 0 A, IDLE, by phases


def _shared_decision(target: float, reason: Reason, phases: frozenset[int]) -> Decision:
    key = (target, reason, phases)
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) > 1024:  # (arrival limits are few; bounded all the same)
            _SHARED.clear()
        found = _SHARED[key] = Decision(target, reason, phases)
        if reason is _IDLE and target == 0.0 and len(_IDLE_DECISIONS) < 64:
            _IDLE_DECISIONS[phases] = found
    return found


# ---------------------------------------------------------------- decisions and memory


def _decide(
    cars: list[_Car],
    index: SiteIndex,
    decisions: dict[ConnectorKey, Decision],
    memory: BalancerMemory,
    now: float,
    params: BalancerParams,
) -> tuple[BalancerMemory, tuple[ConnectorKey, ...]]:
    """Every car's decision into ``decisions``; the memory for the next tick and the cars
    paused."""
    names, floor = index.names, params.min_current
    running: dict[ConnectorKey, float] = {}
    waiting: dict[ConnectorKey, float] = {}
    changed: dict[ConnectorKey, float] = {}
    paused: list[ConnectorKey] = []
    running_since, waiting_since = memory.running_since.get, memory.waiting_since.get
    changed_at = memory.changed_at
    for car in cars:
        key, target = car.key, car.target
        if not car.admitted:
            reason = _PAUSED_FLOOR
        elif target != car.fair_target:
            reason = _HELD
        elif car.group.bottleneck is not None:
            reason = _FAIR_SHARE
        else:
            reason = car.cap_reason
        group = car.group
        if car.admitted:
            fair = group.fair
            bottleneck = names[group.bottleneck] if group.bottleneck is not None else None
        else:
            fair, bottleneck = 0.0, None
        decisions[key] = Decision(target, reason, group.phases, bottleneck, fair)
        state = car.state
        if target >= floor and state.limit is not None and state.limit >= floor:
            running[key] = running_since(key, now)
        else:
            # a car given its 6 A keeps its wait until the 6 A is in force: an increase the
            # guarantee holds for room would otherwise restart its wait every tick, and it
            # might never reach max_wait_s
            waiting[key] = waiting_since(key, now)
            if target < floor:
                paused.append(key)
        current = state.pending if state.pending is not None else state.limit
        if current is not None and target < current:
            changed[key] = now  # lowered: an increase waits hold_s (no see-saw)
        elif key in changed_at:
            changed[key] = changed_at[key]
    return BalancerMemory(running, waiting, changed), tuple(paused)
