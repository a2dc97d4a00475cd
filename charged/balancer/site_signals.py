"""The site a balancer step runs on: the configured fuses shaped by the signals of the moment.

Site meters: with a ``building`` source (:mod:`charged.meters`) each step asks it for what
else every metered fuse feeds at the tick's time (a fresh reading plus its headroom, or the
fallback of a stale meter) and runs the allocation and the plan on the site with that
subtracted from the fuses (:meth:`~charged.balancer.model.Site.with_other_load`): the pure
functions see a smaller fuse, nothing else.

Limits over time: with a ``schedule`` (:mod:`.schedule`) each step first puts every fuse at
the limit its weekly schedule has in force at the tick's time (local time of the site), then
subtracts the building's load from that.

Power target: with a ``power_target`` (:mod:`.power_target`) the rolling window is advanced
with the chargers' measured currents and the building's meter, and the top fuse is capped so
that the window's mean stays under the target.

Prices: with a ``prices`` signal (:class:`charged.prices.source.PriceBook`), a step in an
interval the price rule calls dear runs on the site with its root capped
(:func:`charged.prices.rule.capped_site`: the chargers together at most the rule's power, never
less than its per-connector minimum for every car that wants current); the transitions into
and out of a dear interval are logged once each.

The order is fixed: schedule, building, power target, prices.  Each stage returns the same
:class:`~charged.balancer.model.Site` object as at the last step while nothing changed, so
the allocation's index of the site is built once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from charged.balancer.model import BalancerParams, ConnectorState, Site
from charged.balancer.power_target import (
    Cap,
    TargetSpec,
    WindowState,
    advance,
    charger_cap,
    phase_caps,
)
from charged.balancer.schedule import LimitSchedule, limits_at
from charged.prices.rule import PriceRule, capped_site


class BuildingLoad(Protocol):
    """What else the metered fuses feed besides the chargers (charged.meters.MeterBook)."""

    def loads(self, now: float) -> Mapping[str, tuple[float, float, float]]: ...

    # as read, without the headroom (the building's power for the power target)
    def measured(self, now: float) -> Mapping[str, tuple[float, float, float]]: ...


class WindowRecall(Protocol):
    """The power target's window as the previous run left it (power_window rows)."""

    async def recall(self, spec: TargetSpec) -> WindowState | None: ...


@dataclass(frozen=True, slots=True)
class PowerReport:
    """The power target at a step: the window as advanced to it, and the cap it set."""

    window: WindowState
    cap: Cap
    cap_a: float  # the mean of the three phases' caps (the allowed chargers' power / 3 V)
    caps: tuple[float, float, float]  # the caps put on the top fuse (A, rounded down to 0.1 A)
    chargers_w: float
    building_w: float
    window_s: float


class PriceSignal(Protocol):
    """Whether charging is capped for the price now (charged.prices.source.PriceBook)."""

    rule: PriceRule

    def dear(self, now: float) -> bool: ...


class SiteSignals:
    """The building, the schedule, the power target and the prices, applied to ``site``."""

    def __init__(
        self,
        site: Site,
        *,
        params: BalancerParams,
        logger: Any,
        building: BuildingLoad | None = None,
        schedule: LimitSchedule | None = None,
        power_target: TargetSpec | None = None,
        window_recall: WindowRecall | None = None,
        tick_s: float = 30.0,
        prices: PriceSignal | None = None,
    ) -> None:
        self._site = site
        self._params = params
        self._log = logger
        self._prices = prices
        self._dear = False
        self._building = building
        self._schedule = schedule or None  # an empty schedule is none
        self._target = power_target
        self._window_recall = window_recall  # read once, at the first step with a target
        self._window: WindowState | None = None
        self._tick_s = tick_s  # how long a cap stays in force: until the next tick
        self._capped_now = site
        self._site_now = site  # the site less the building's load at the last step

    async def shape(
        self, states: Sequence[ConnectorState], now: float
    ) -> tuple[Site, PowerReport | None]:
        """The site for a step at ``now``, and the power target's report (None: no target)."""
        site = self._metered_site(now)
        power = None
        if self._target is not None:
            site, power = await self._power_target(self._target, site, states, now)
        if self._prices is not None:
            site = self._priced_site(self._prices, site, states, now)
        return site, power

    def _metered_site(self, now: float) -> Site:
        """The site at ``now``: each fuse at its scheduled limit, less the building's load
        (the same object as last step while nothing changed, so the site's index is built
        once)."""
        site = self._site
        if self._schedule is not None:
            site = site.with_limits(limits_at(self._schedule, now))
        if self._building is not None:
            site = site.with_other_load(self._building.loads(now))
        if site != self._site_now:
            self._site_now = site
        return self._site_now

    async def _power_target(
        self, spec: TargetSpec, site: Site, states: Sequence[ConnectorState], now: float
    ) -> tuple[Site, PowerReport]:
        """Advance the window with the site's power at ``now`` (the chargers' measured
        currents and the building's meter) and cap the chargers under the top fuse."""
        if self._window_recall is not None:
            recall, self._window_recall = self._window_recall, None
            try:
                self._window = await recall.recall(spec)
            except Exception as exc:
                self._log.warning(
                    "could not read the power target's window back; starting a new one",
                    error=str(exc),
                )
            if self._window is not None:
                self._log.info(
                    "power target's window recalled",
                    energy_wh=round(self._window.energy_wh, 1),
                    month_peak_w=round(self._window.month_peak_w),
                )
        chargers_w = self._charger_amps(states) * spec.voltage
        building_w = self._building_amps(now) * spec.voltage
        self._window = advance(spec, self._window, now, chargers_w + building_w)
        if self._window.gap:
            self._log.warning(
                "power target: ticks too far apart; the gap's energy is not known",
                max_gap_s=spec.max_gap_s,
            )
        cap = charger_cap(spec, self._window, now, building_w, self._tick_s)
        caps = phase_caps(cap, site, states, self._params.min_current)
        capped = site.with_caps({site.root.name: caps})
        if capped != self._capped_now:
            self._capped_now = capped
        return self._capped_now, PowerReport(
            self._window, cap, round(sum(caps) / 3, 2), caps, chargers_w, building_w, spec.window_s
        )

    def _charger_amps(self, states: Sequence[ConnectorState]) -> float:
        """The chargers' measured currents, summed over connectors and phases (A)."""
        return sum(
            sum(state.measured)
            for state in states
            if state.online and self._site.charger(state.key[0]) is not None
        )

    def _building_amps(self, now: float) -> float:
        """What the top fuse's meters read besides the chargers, summed over phases (A)."""
        if self._building is None:
            return 0.0
        root = self._site.root
        read = self._site.with_other_load(self._building.measured(now))
        return sum(read.other_load_of(root))

    def _priced_site(
        self, prices: PriceSignal, site: Site, states: Sequence[ConnectorState], now: float
    ) -> Site:
        dear = prices.dear(now)
        if dear != self._dear:
            self._dear = dear
            if dear:
                self._log.info("dear price: charging capped", rule=prices.rule.describe())
            else:
                self._log.info("price no longer dear: charging not capped")
        if not dear:
            return site
        return capped_site(site, states, prices.rule, now, settle_s=self._params.settle_s)
