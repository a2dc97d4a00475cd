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

import math
from collections.abc import Iterable
from dataclasses import dataclass

from charged.balancer.envelope import counted_phases, full_limit, worst_case
from charged.balancer.index import index_of
from charged.balancer.model import (
    DEFAULT_PARAMS,
    Allocation,
    BalancerMemory,
    BalancerParams,
    ChargerSpec,
    ConnectorKey,
    ConnectorState,
    Decision,
    Reason,
    Site,
)
from charged.balancer.waterfill import Claim, water_fill

EPSILON = 1e-6


@dataclass(slots=True)
class _Car:
    """A connector whose car wants current, while the tick is decided."""

    key: ConnectorKey
    state: ConnectorState
    capacities: tuple[int, ...]  # indices of the fuse phases it draws on
    cap: float
    cap_reason: Reason
    phases: frozenset[int]  # the site phases it is counted on
    target: float = 0.0
    fair_target: float = 0.0  # the rounded share, before hysteresis
    fair: float = 0.0
    bottleneck: int | None = None
    admitted: bool = False


class _Room:
    """What is left of every fuse phase (numbered by :class:`~charged.balancer.index.SiteIndex`)."""

    def __init__(self, site: Site) -> None:
        index = index_of(site)
        self.names = index.names
        self.left = list(index.capacity)
        self.of = index.of
        self.chargers = index.chargers

    def take(self, capacities: tuple[int, ...], amps: float) -> None:
        left = self.left
        for r in capacities:
            left[r] -= amps

    def fits(self, capacities: tuple[int, ...], amps: float) -> bool:
        left, need = self.left, amps - EPSILON
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
    memory = memory if memory is not None else BalancerMemory()
    by_key = {s.key: s for s in states}
    room = _Room(site)
    decisions: dict[ConnectorKey, Decision] = {}
    cars: list[_Car] = []
    idle: list[tuple[ConnectorKey, ConnectorState, ChargerSpec, float]] = []
    order: list[ConnectorKey] = []  # the site's order, for the decisions

    for spec, keys in room.chargers:  # (a charger outside the tree is not the balancer's)
        full = full_limit(spec, params.max_current)
        for key in keys:
            order.append(key)
            state = by_key.get(key)
            phases = counted_phases(state, spec)
            fixed = _fixed_reason(state)
            if fixed is not None:
                load = worst_case(state, spec, now, settle_s=params.settle_s)
                room.take(room.of(spec.id, phases), load)
                target = _fixed_target(state, spec, fixed)
                decisions[key] = Decision(target, fixed, phases)
            elif state is not None and state.wants_current:
                cap, why = _car_cap(state, full, params)
                cars.append(_Car(key, state, room.of(spec.id, phases), cap, why, phases))
            elif state is not None:
                idle.append((key, state, spec, full))

    _admit(cars, room, now, params, memory)
    _share(cars, room, params)
    _round(cars, room)
    _hysteresis(cars, room, now, params, memory)
    for car in cars:
        bottleneck = room.names[car.bottleneck] if car.bottleneck is not None else None
        if not car.admitted:
            reason = Reason.PAUSED_FLOOR
        elif car.target != car.fair_target:
            reason = Reason.HELD
        elif car.bottleneck is not None:
            reason = Reason.FAIR_SHARE
        else:
            reason = car.cap_reason
        decisions[car.key] = Decision(car.target, reason, car.phases, bottleneck, car.fair)
    for key, state, spec, full in idle:
        decisions[key] = _arrival(state, spec, full, room, params)

    ordered = {key: decisions[key] for key in order if key in decisions}
    paused = tuple(c.key for c in cars if c.target < params.min_current)
    return Allocation(ordered, _remember(cars, memory, now, params), paused)


# ---------------------------------------------------------------- fixed loads


def _fixed_reason(state: ConnectorState | None) -> Reason | None:
    if state is None or not state.online:
        return Reason.OFFLINE
    if state.pinned is not None:
        return Reason.PINNED
    if not state.writable or state.limit is None:
        return Reason.NOT_WRITABLE  # (a limit never read: nothing to change from yet)
    return None


def _fixed_target(state: ConnectorState | None, spec: ChargerSpec, reason: Reason) -> float:
    """What a fixed connector is reported at: the limit it holds (full when not known)."""
    if reason is Reason.PINNED and state is not None and state.pinned is not None:
        return state.pinned
    if state is not None and state.limit is not None and reason is not Reason.OFFLINE:
        return state.limit
    return spec.connector_max


def _car_cap(state: ConnectorState, full: float, params: BalancerParams) -> tuple[float, Reason]:
    cap, why = full, Reason.CONNECTOR_MAX
    if state.car_max is not None:
        seen = max(params.min_current, state.car_max + params.car_max_headroom)
        if seen < cap:
            cap, why = seen, Reason.CAR_MAX
    return max(cap, params.min_current), why


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
    cars: list[_Car], room: _Room, now: float, params: BalancerParams, memory: BalancerMemory
) -> None:
    order = sorted(cars, key=lambda c: (*_turn(c, now, params, memory), c.key))
    for car in order:
        if room.fits(car.capacities, params.min_current):
            room.take(car.capacities, params.min_current)
            car.admitted = True


# ---------------------------------------------------------------- fair shares


def _share(cars: list[_Car], room: _Room, params: BalancerParams) -> None:
    """Water-fill what the floors left among the admitted cars."""
    admitted = [c for c in cars if c.admitted]
    claims = []
    for car in admitted:
        rate = 1.0 / len(car.phases) if params.fairness == "power" else 1.0
        extra = car.cap - params.min_current
        claims.append(Claim(car.capacities, extra / rate, rate))
    shares = water_fill(room.left, claims)
    for car, claim, share in zip(admitted, claims, shares, strict=True):
        extra = share.level * claim.rate
        car.fair = params.min_current + extra
        car.bottleneck = share.bottleneck
        room.take(car.capacities, extra)


def _round(cars: list[_Car], room: _Room) -> None:
    """Whole amperes: round down, then give freed amperes to the largest remainders."""
    for car in cars:
        if not car.admitted:
            continue
        car.target = math.floor(car.fair + EPSILON)
        room.take(car.capacities, car.target - car.fair)  # gives back the fraction
    by_remainder = sorted(
        (c for c in cars if c.admitted), key=lambda c: (-(c.fair - c.target), c.key)
    )
    for car in by_remainder:
        if car.target + 1 <= car.cap + EPSILON and room.fits(car.capacities, 1.0):
            room.take(car.capacities, 1.0)
            car.target += 1
    for car in cars:
        car.fair_target = car.target


# ---------------------------------------------------------------- hysteresis


def _hysteresis(
    cars: list[_Car], room: _Room, now: float, params: BalancerParams, memory: BalancerMemory
) -> None:
    """Keep the limit in force where a change is not worth a write (or not yet)."""
    for car in cars:
        current = car.state.pending if car.state.pending is not None else car.state.limit
        if current is None or car.target == current:
            continue
        if car.target > current:
            if current < params.min_current:
                continue  # a start: never held
            small = car.target - current < params.hysteresis
            changed = memory.changed_at.get(car.key)
            recent = changed is not None and now - changed < params.hold_s
            if small or recent:
                room.take(car.capacities, current - car.target)  # frees what it does not take
                car.target = current
        elif (
            car.target >= params.min_current
            and current - car.target < params.hysteresis
            and room.fits(car.capacities, current - car.target)
        ):
            # a small decrease, skipped only while every phase has the room for the old value
            room.take(car.capacities, current - car.target)
            car.target = current


# ---------------------------------------------------------------- arrivals


def _arrival(
    state: ConnectorState,
    spec: ChargerSpec,
    full: float,
    room: _Room,
    params: BalancerParams,
) -> Decision:
    """An idle connector: the arrival limit from spare room, else 0.

    Counted on all three phases until a car shows its own (no car: any may arrive).  A
    connector holding a full car is offered at least ``min_current``: less than that would
    read as a car held back and would call it back as wanting current."""
    phases = counted_phases(state, spec)
    offer = params.arrival_limit
    if offer > 0 and state.plugged:
        offer = max(offer, params.min_current)
    offer = min(math.floor(offer), full)
    capacities = room.of(spec.id, phases)
    if offer > 0 and room.fits(capacities, offer):
        room.take(capacities, offer)
        return _shared_decision(offer, Reason.ARRIVAL, phases)
    return _shared_decision(0.0, Reason.IDLE, phases)


_SHARED: dict[tuple[float, Reason, frozenset[int]], Decision] = {}


def _shared_decision(target: float, reason: Reason, phases: frozenset[int]) -> Decision:
    """One Decision value for each (target, reason, phases) of idle connectors: thousands of
    them are alike, and a frozen value may be shared."""
    key = (target, reason, phases)
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) > 1024:  # (arrival limits are few; bounded all the same)
            _SHARED.clear()
        found = _SHARED[key] = Decision(target, reason, phases)
    return found


# ---------------------------------------------------------------- memory


def _remember(
    cars: list[_Car], memory: BalancerMemory, now: float, params: BalancerParams
) -> BalancerMemory:
    running: dict[ConnectorKey, float] = {}
    waiting: dict[ConnectorKey, float] = {}
    changed: dict[ConnectorKey, float] = {}
    for car in cars:
        if car.target >= params.min_current:
            running[car.key] = memory.running_since.get(car.key, now)
        else:
            waiting[car.key] = memory.waiting_since.get(car.key, now)
        current = car.state.pending if car.state.pending is not None else car.state.limit
        if current is not None and car.target < current:
            changed[car.key] = now  # lowered: an increase waits hold_s (no see-saw)
        elif car.key in memory.changed_at:
            changed[car.key] = memory.changed_at[car.key]
    return BalancerMemory(running, waiting, changed)
