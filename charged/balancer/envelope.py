"""The most a connector may draw at this moment, whatever its car does (pure).

The allocation counts fixed loads (offline, pinned, unwritable connectors) at this value and
the guarantee sums it per fuse phase: it is what makes "under the fuse" hold between polls.
"""

from __future__ import annotations

from charged.balancer.model import (
    ALL_TERMINALS,
    MAX_CURRENT,
    MIN_CURRENT,
    ChargerSpec,
    ConnectorState,
)

# a reading this close above a lowered limit still shows the car following it (meter noise)
FOLLOW_TOLERANCE = 0.5
# ... and a reading this far under it at most: a car that followed draws near its limit
FOLLOW_BELOW = 2.0


def full_limit(spec: ChargerSpec | None, max_current: float = MAX_CURRENT) -> float:
    """The highest limit the balancer gives a connector: 32 A, the charger's installation
    current and the configured ``max_current``, whichever is lowest."""
    top = spec.connector_max if spec is not None else MAX_CURRENT
    return min(top, max_current)


def counted_phases(state: ConnectorState | None, spec: ChargerSpec | None) -> frozenset[int]:
    """The site phases a connector is counted on: its car's terminals through the charger's
    rotation; all three while the car's terminals are not known (or no car is plugged), and
    while its charger does not answer (the car seen may have left and another come)."""
    if state is None or spec is None or not state.online or state.terminals is None:
        return ALL_TERMINALS  # (all three terminals land on all three site phases)
    key = (spec.rotation.site_phases, state.terminals)
    found = _SITE_PHASES.get(key)
    if found is None:  # at most 6 rotations x 7 sets of terminals
        found = _SITE_PHASES[key] = spec.rotation.to_site(state.terminals)
    return found


_SITE_PHASES: dict[tuple[tuple[int, int, int], frozenset[int]], frozenset[int]] = {}


def settling(state: ConnectorState, now: float, settle_s: float) -> bool:
    """A confirmed decrease the car may not have followed yet.

    A car takes up to a minute to follow a lowered limit.  Until ``settle_s`` has passed, or
    a poll taken after the change shows the car at or under the new limit (tracking only
    offers such a poll as evidence when the car drew more than that before), the old value
    still counts."""
    if state.previous_limit is None or state.limit is None or state.limit_since is None:
        return False
    if state.previous_limit <= state.limit or now - state.limit_since >= settle_s:
        return False
    # evidence is a car drawing *near* the new limit, not merely under it: a car that pauses
    # itself (SuspendedEV, a taper) reads under any limit while its charger may not have the
    # new one yet; and a pause (under 6 A) is never taken as followed before settle_s
    drawn = max(state.measured)
    followed = (
        state.measured_at is not None
        and state.measured_at > state.limit_since
        and state.limit >= MIN_CURRENT
        and state.limit - FOLLOW_BELOW <= drawn <= state.limit + FOLLOW_TOLERANCE
    )
    return not followed


def worst_case(
    state: ConnectorState | None, spec: ChargerSpec | None, now: float, *, settle_s: float
) -> float:
    """A per phase this connector may draw now, on each of its counted phases.

    Unknown (no state, charger offline, limit never read): the most its charger allows
    (the configured ``max_current`` binds only what the balancer sends).  Otherwise the
    highest of the confirmed limit, a value sent but not confirmed, a pinned limit, and the
    previous limit while a decrease settles."""
    if state is None or not state.online or state.limit is None:
        return spec.connector_max if spec is not None else MAX_CURRENT
    value = state.limit
    if state.pending is not None:
        value = max(value, state.pending)
    if state.pinned is not None:
        value = max(value, state.pinned)
    previous = state.previous_limit
    if previous is not None and previous > value and settling(state, now, settle_s):
        value = previous  # (settling is asked only where it would change the answer)
    return value
