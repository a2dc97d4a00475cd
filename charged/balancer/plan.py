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

from charged.balancer.envelope import counted_phases, full_limit, worst_case
from charged.balancer.index import index_of
from charged.balancer.model import (
    DEFAULT_PARAMS,
    PHASE_NAMES,
    BalancerParams,
    ChargerSpec,
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
    free, at most ``params.max_writes_per_tick`` writes.  ``vendor_ok=False`` (a vendor
    outage) lets decreases out and holds every increase.  In ``measured`` mode increases are
    not held for room (limits may oversubscribe).  Never reads a clock.
    """
    by_key = {s.key: s for s in states}
    index = index_of(site)
    load = [0.0] * len(index.capacity)  # the envelope, per fuse phase of the index
    counted: dict[ConnectorKey, tuple[float, tuple[int, ...]]] = {}
    for spec, keys in index.chargers:
        for key in keys:
            state = by_key.get(key)
            amps = worst_case(state, spec, now, settle_s=params.settle_s)
            capacities = index.of(spec.id, counted_phases(state, spec))
            counted[key] = (amps, capacities)
            for r in capacities:
                load[r] += amps
    capacity = index.capacity
    over: tuple[FusePhase, ...] = tuple(
        index.names[r] for r in range(len(load)) if load[r] > capacity[r] + EPSILON
    )

    deferred: dict[ConnectorKey, str] = {}
    decreases: list[Write] = []
    increases: list[Write] = []
    for key, target in targets.items():
        state = by_key.get(key)
        charger = site.charger(key[0])
        if state is None or charger is None or key not in counted:
            continue
        if not state.online or state.pinned is not None or not state.writable:
            continue  # the allocation counted it as a fixed load; nothing is sent
        value = _sendable(target, charger, params)
        if state.pending is not None:
            if value != state.pending:
                deferred[key] = "waiting for the read-back of the last write"
            continue
        if state.limit is None or value == state.limit:
            continue
        kind = WriteKind.DECREASE if value < state.limit else WriteKind.INCREASE
        (decreases if kind is WriteKind.DECREASE else increases).append(
            Write(key, value, state.limit, kind)
        )

    writes: list[Write] = []
    budget = params.max_writes_per_tick
    decreases.sort(key=lambda w: (-((w.previous or 0.0) - w.limit), w.key))
    increases.sort(key=lambda w: (w.previous or 0.0, w.key))
    for write in decreases:
        if len(writes) >= budget:
            deferred[write.key] = f"write budget of {budget} writes per tick used"
            continue
        writes.append(write)  # counted at the old value until followed: no envelope change
    for write in increases:
        if not vendor_ok:
            deferred[write.key] = "vendor outage: increases wait until the vendor answers"
            continue
        if len(writes) >= budget:
            deferred[write.key] = f"write budget of {budget} writes per tick used"
            continue
        amps, capacities = counted[write.key]
        extra = max(0.0, write.limit - amps)
        if params.mode == "guarantee":
            short = next((r for r in capacities if load[r] + extra > capacity[r] + EPSILON), None)
            if short is not None:
                name, phase = index.names[short]
                deferred[write.key] = f"waiting for room on {name} {PHASE_NAMES[phase]}"
                continue
        for r in capacities:
            load[r] += extra
        writes.append(write)
    envelope: dict[str, PhaseCurrents] = {}
    for n in range(0, len(load), 3):
        envelope[index.names[n][0]] = (load[n], load[n + 1], load[n + 2])
    return Plan(tuple(writes), deferred, envelope, over)


def _sendable(target: float, spec: ChargerSpec, params: BalancerParams) -> float:
    """The value the vendor takes: whole amperes, 0 or min_current..the connector's full."""
    value = float(math.floor(target + EPSILON))
    if value < params.min_current:
        return 0.0
    return min(value, full_limit(spec, params.max_current))
