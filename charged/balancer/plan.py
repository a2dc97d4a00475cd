"""The guarantee: which writes may go out this tick without any fuse phase at risk (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from charged.balancer.model import (
    DEFAULT_PARAMS,
    BalancerParams,
    ConnectorKey,
    ConnectorState,
    Plan,
    Site,
)


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
    make an envelope exceed a fuse's capacity (limit - margin) on any phase: decreases go out
    first (they free room only once confirmed and settled), increases only into room already
    free, at most ``params.max_writes_per_tick`` writes.  ``vendor_ok=False`` (a vendor
    outage) lets decreases out and holds every increase.  In ``measured`` mode increases are
    not held for room (limits may oversubscribe).  Never reads a clock.
    """
    raise NotImplementedError("landing in the next commit")
