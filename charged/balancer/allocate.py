"""The allocation: max-min fair targets per connector under every fuse phase (pure)."""

from __future__ import annotations

from collections.abc import Iterable

from charged.balancer.model import (
    DEFAULT_PARAMS,
    Allocation,
    BalancerMemory,
    BalancerParams,
    ConnectorState,
    Site,
)


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
    the unit ``params.fairness``) under every fuse's per-phase capacity (limit - margin), each
    connector's 32 A and installation current and the car's own learned maximum.  When a
    bottleneck cannot give everyone ``params.min_current`` some are paused (0), chosen so that
    nobody waits forever (``memory``).  Pinned, offline and unwritable connectors are fixed
    loads.  Idle connectors get ``params.arrival_limit`` from room nobody else needs.  Small
    changes are held back (hysteresis).  Never reads a clock, never raises for a feasible site.
    """
    raise NotImplementedError("landing in the next commit")
