"""``charged-target``: charged's balancer with the site's power target, as an evaluation policy.

The same steps as ``charged`` (:class:`~charged.balancer.evaluate.charged_policy.
ChargedPolicy`), and before the allocation the same cap the daemon puts on the top fuse
(:mod:`charged.balancer.power_target`): the window's energy from what the policy is shown at
every poll — the connectors' currents and the meters' readings, times the target's voltage —
the rest of the window planned from it, split over the phases by the tick's states.  The
target comes from the site file's ``site.power_target`` (and ``site.timezone`` for the
month), as ``charged run`` reads it.

Its window means are judged by the engine's ground truth (the root fuse's energy per slot,
:mod:`.power`), not by what the policy measured: a poll sees the currents of one instant, so
the two differ by what changes between polls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from charged.balancer.evaluate.charged_policy import ChargedPolicy
from charged.balancer.evaluate.telemetry import Telemetry
from charged.balancer.model import DEFAULT_PARAMS, BalancerParams, ConnectorState, Site
from charged.balancer.power_target import TargetSpec, WindowState, advance, charger_cap, phase_caps

NAME = "charged-target"
DEFAULT_POLL_S = 30.0  # the cap's horizon before a second poll shows the interval


class ChargedTargetPolicy(ChargedPolicy):
    def __init__(self, site: Site, params: BalancerParams, target: TargetSpec) -> None:
        super().__init__(site, replace(params, mode="guarantee"))
        self.name = NAME
        self.target = target
        self.window: WindowState | None = None
        self.caps: list[tuple[float, float, float]] = []  # every poll's caps (A per phase)
        self._last: float | None = None

    def site_at(self, telemetry: Telemetry, states: Sequence[ConnectorState] = ()) -> Site:
        site = super().site_at(telemetry, states)
        spec, now = self.target, telemetry.time
        chargers_a = math.fsum(
            sum(reading.currents)
            for reading in telemetry.connectors.values()
            if reading.currents is not None
        )
        building_a = 0.0
        if telemetry.building:
            read = self.site.with_other_load(telemetry.building)
            building_a = sum(read.other_load_of(self.site.root))
        horizon = DEFAULT_POLL_S if self._last is None else max(1.0, now - self._last)
        self._last = now
        building_w = building_a * spec.voltage
        self.window = advance(spec, self.window, now, chargers_a * spec.voltage + building_w)
        cap = charger_cap(spec, self.window, now, building_w, horizon)
        caps = phase_caps(cap, site, states, self.params.min_current)
        self.caps.append(caps)
        return site.with_caps({site.root.name: caps})


def charged_target(
    site: Site, params: BalancerParams = DEFAULT_PARAMS, target: TargetSpec | None = None
) -> ChargedTargetPolicy:
    if target is None:
        raise ValueError(
            f"{NAME} needs a power target: add site.power_target (target_kw, window_min) to "
            "the site file"
        )
    return ChargedTargetPolicy(site, params, target)
