"""The guarantee: which writes may go out this tick without any fuse phase at risk (pure).

The invariant: for every fuse and site phase, the sum of the connectors' worst cases
(:func:`charged.balancer.envelope.worst_case`: what each may draw before the next poll, old
and new limit alike until the car has followed) stays within its capacity
(``Site.capacity``: limit - margin - the building's metered load).  A write can
only raise a worst case when it is an increase, and an increase is let out only into room
the envelope already has: so once the envelope fits, it keeps fitting, whatever the 30-s
loop, the cloud's delays and the order in which chargers apply the writes.

What this rests on (docs/balancer.md): a car draws on the terminals it was seen drawing on
and does not move to others between polls (until known, all three are counted); a car
follows a lowered limit within ``settle_s``; the charger never lets a car draw more than its
limit; the margin covers the meters' error and what the chargers draw themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from charged.balancer.envelope import worst_case
from charged.balancer.index import index_of
from charged.balancer.model import (
    DEFAULT_PARAMS,
    PHASE_NAMES,
    BalancerParams,
    ConnectorKey,
    ConnectorState,
    FusePhase,
    PhaseCurrents,
    Plan,
    Site,
    Write,
    WriteKind,
)

EPSILON = 1e-6


def plan(
    site: Site,
    states: Iterable[ConnectorState],
    targets: Mapping[ConnectorKey, float],
    now: float,
    params: BalancerParams = DEFAULT_PARAMS,
    *,
    vendor_ok: bool = True,
) -> Plan:
    """The writes to send this tick towards ``targets`` (usually ``Allocation.targets``).

    The *envelope* of a fuse phase is the sum, over the connectors it feeds, of the most each
    may draw there: the higher of the confirmed limit, a pending (unconfirmed) value and a
    decrease still settling; the connector's full limit when its limit is unknown or its
    charger offline; a pinned limit as it is; on every site phase of the terminals its car
    uses (all three when unknown).  In ``guarantee`` mode no write this function returns can
    make an envelope exceed a fuse's capacity (``Site.capacity``) on any phase: decreases go out
    first (they free room only once confirmed and settled), increases only into room already
    free (where only part of a raise fits, that part goes out when it starts a car at >= 6 A
    or is a step of at least ``params.hysteresis``), at most ``params.max_writes_per_tick``
    writes.  ``vendor_ok=False`` (a vendor
    outage) lets decreases out and holds every increase.  In ``measured`` mode increases are
    not held for room (limits may oversubscribe).  Never reads a clock.
    """
    by_key = {s.key: s for s in states}
    index = index_of(site)
    capacity, names = index.capacity, index.names
    settle_s, floor, max_current = params.settle_s, params.min_current, params.max_current
    per_set: dict[int, float] = {}  # the envelope summed per set of fuse phases, first
    sets: dict[int, tuple[int, ...]] = {}
    deferred: dict[ConnectorKey, str] = {}
    # (key, value, in force, worst case, fuse phases): Writes are built for what goes out
    decreases: list[tuple[ConnectorKey, float, float, float, tuple[int, ...]]] = []
    increases: list[tuple[ConnectorKey, float, float, float, tuple[int, ...]]] = []
    memo, target_of = index.counted_memo, targets.get
    for spec, connector_max, keys in index.ranked:
        cp_id = spec.id
        full = connector_max if connector_max < max_current else max_current  # (full_limit)
        for key, _ in keys:
            state = by_key.get(key)
            amps = worst_case(state, spec, now, settle_s=settle_s)
            # (counted_phases: all three while the charger does not answer)
            terminals = state.terminals if state is not None and state.online else None
            found = memo.get((cp_id, terminals))
            _, capacities, number = found if found is not None else index.counted(spec, terminals)
            if number in per_set:
                per_set[number] += amps
            else:
                per_set[number], sets[number] = amps, capacities

            target = target_of(key)
            if target is None or state is None:
                continue
            if not state.online or state.pinned is not None or not state.writable:
                continue  # the allocation counted it as a fixed load; nothing is sent
            # what the vendor takes: whole amperes, 0 or min_current..the connector's full
            value = float(math.floor(target + EPSILON))
            value = 0.0 if value < floor else (full if value > full else value)
            if state.pending is not None:
                if value != state.pending:
                    deferred[key] = WAITING_FOR_READ_BACK
                continue
            if state.limit is None or value == state.limit:
                continue
            change = (key, value, state.limit, amps, capacities)
            (decreases if value < state.limit else increases).append(change)
    load = [0.0] * len(capacity)  # the envelope, per fuse phase of the index
    for number, amps in per_set.items():
        for r in sets[number]:
            load[r] += amps
    over: tuple[FusePhase, ...] = tuple(
        names[r] for r in range(len(load)) if load[r] > capacity[r] + EPSILON
    )

    writes: list[Write] = []
    budget = params.max_writes_per_tick
    over_budget = f"write budget of {budget} writes per tick used"
    decreases.sort(key=lambda w: (w[1] - w[2], w[0]))  # the largest decrease first
    increases.sort(key=lambda w: (w[2], w[0]))  # the lowest limit in force first
    for key, value, previous, _, _ in decreases:
        if len(writes) >= budget:
            deferred[key] = over_budget
            continue
        # counted at the old value until followed: no envelope change
        writes.append(Write(key, value, previous, WriteKind.DECREASE))
    waiting_for_room: dict[int, str] = {}
    guarantee, step = params.mode == "guarantee", params.hysteresis
    for key, value, previous, amps, capacities in increases:
        if not vendor_ok:
            deferred[key] = VENDOR_OUTAGE
            continue
        if len(writes) >= budget:
            deferred[key] = over_budget
            continue
        extra = value - amps if value > amps else 0.0
        if guarantee:
            short, room = -1, extra
            for r in capacities:
                free = capacity[r] + EPSILON - load[r]
                if free < room:
                    short, room = r, free
            if short >= 0:
                # the part that fits, in whole amperes, when it is a start (>= 6 A) or a
                # step worth a write: room freed a little at a time is used as it comes,
                # instead of the whole raise waiting until all of it is free
                part = float(math.floor(amps + room))
                rise = part - previous
                if part >= floor and rise > 0 and (previous < floor or rise >= step):
                    value, extra, short = part, max(0.0, part - amps), -1
            if short >= 0:
                why = waiting_for_room.get(short)
                if why is None:
                    name, phase = names[short]
                    why = waiting_for_room[short] = (
                        f"waiting for room on {name} {PHASE_NAMES[phase]}"
                    )
                deferred[key] = why
                continue
        for r in capacities:
            load[r] += extra
        writes.append(Write(key, value, previous, WriteKind.INCREASE))
    envelope: dict[str, PhaseCurrents] = {}
    for n in range(0, len(load), 3):
        envelope[names[n][0]] = (load[n], load[n + 1], load[n + 2])
    return Plan(tuple(writes), deferred, envelope, over)


WAITING_FOR_READ_BACK = "waiting for the read-back of the last write"
VENDOR_OUTAGE = "vendor outage: increases wait until the vendor answers"
