"""The price rule: which intervals are dear, and the site the allocation sees in them (pure).

An interval is *dear* when its price is above ``above`` (currency/kWh), or, ranked within its
calendar day, among the dearest ``share`` of that day's intervals (``ceil(share × n)`` of the
``n`` known; ties go to the earlier).  A moment without a known price is not dear: a missing
price never stops anyone charging.

In a dear interval the chargers together may draw at most ``cap_kw`` (split evenly over the
three phases at 230 V: ``cap_kw × 1000 / 690`` A per site phase) at the root fuse, but never so
little that a car is stranded: on every site phase the root keeps at least ``connector_min``
A for every car that wants current and may be driven (on the phases it is counted on, all
three until learned), plus what the allocation counts as fixed there (:func:`floor_a`).
The rule does not allocate: it hands :func:`charged.balancer.allocate.allocate` a site
whose root carries that much less
(:func:`capped_site` caps the root, :meth:`~charged.balancer.model.Site.with_caps`, under
any cap already there, a power target's), and the allocation and the guarantee do
the rest as they do for a meter.  The root's capacity never rises by the rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from charged.balancer.envelope import counted_phases, worst_case
from charged.balancer.model import DEFAULT_PARAMS, ConnectorState, PhaseCurrents, Site
from charged.config_site import PriceSettings
from charged.prices.series import PriceSeries, local_days

VOLTAGE = 230.0
DEFAULT_SHARE = 0.25  # neither dear_above nor dear_share given: the dearest quarter


@dataclass(frozen=True, slots=True)
class PriceRule:
    above: float | None = None  # dear: a price above this (currency/kWh)
    share: float | None = None  # dear: among the dearest share of the day's intervals
    cap_kw: float = 0.0  # what the chargers may draw together at the root when dear
    connector_min: float = 6.0  # A per phase every car keeps when dear (0: may pause)

    def __post_init__(self) -> None:
        if (self.above is None) == (self.share is None):
            raise ValueError("a price rule needs exactly one of above and share")
        if self.share is not None and not 0 < self.share < 1:
            raise ValueError(f"share must be between 0 and 1, got {self.share}")
        if self.cap_kw < 0 or self.connector_min < 0:
            raise ValueError("cap_kw and connector_min must be 0 or more")

    @property
    def cap_a(self) -> float:
        return self.cap_kw * 1000 / (3 * VOLTAGE)

    def describe(self) -> str:
        when = (
            f"above {self.above:g}/kWh"
            if self.above is not None
            else f"the dearest {100 * (self.share or 0):g} % of each day"
        )
        return f"{when}: at most {self.cap_kw:g} kW, {self.connector_min:g} A per car"


def rule_from_settings(settings: PriceSettings) -> PriceRule:
    share = settings.dear_share
    if settings.dear_above is None and share is None:
        share = DEFAULT_SHARE
    return PriceRule(
        above=settings.dear_above,
        share=share,
        cap_kw=settings.cap_kw,
        connector_min=settings.connector_min,
    )


DEFAULT_RULE = PriceRule(share=DEFAULT_SHARE)


class DearHours:
    """Which intervals of a series the rule calls dear (computed once per series)."""

    def __init__(self, series: PriceSeries, rule: PriceRule) -> None:
        self.series = series
        self.rule = rule
        dear = [False] * len(series)
        if rule.above is not None:
            dear = [p > rule.above for p in series.prices]
        else:
            share = rule.share or 0.0
            for members in local_days(series).values():
                count = math.ceil(share * len(members))
                ranked = sorted(members, key=lambda k: (-series.prices[k], k))
                for k in ranked[:count]:
                    dear[k] = True
        self._dear = dear

    def dear(self, t: float) -> bool:
        k = self.series.index_at(t)
        return k is not None and self._dear[k]

    def price(self, t: float) -> float | None:
        return self.series.price_at(t)


def floor_a(
    site: Site,
    states: Sequence[ConnectorState],
    connector_min: float,
    now: float,
    *,
    settle_s: float = DEFAULT_PARAMS.settle_s,
) -> PhaseCurrents:
    """A per site phase the root keeps in a dear interval: ``connector_min`` for every car
    that wants current and may be driven, on the phases it is counted on, and what the
    allocation counts as fixed (a pinned limit, a charger offline or not driven, a limit not
    read yet, a connector with no state: :func:`~charged.balancer.envelope.worst_case`), so
    that the fixed loads never squeeze a car below its minimum."""
    floor = [0.0, 0.0, 0.0]
    seen = set()
    for s in states:
        seen.add(s.key)
        spec = site.charger(s.key[0])
        if spec is None:
            continue
        if not s.online or s.pinned is not None or not s.writable or s.limit is None:
            amps = worst_case(s, spec, now, settle_s=settle_s)
        elif s.plugged and s.wants_current:
            amps = connector_min
        else:
            continue
        for p in counted_phases(s, spec):
            floor[p] += amps
    for key in site.connector_keys():
        spec = site.charger(key[0])
        if key not in seen and spec is not None:
            for p in range(3):
                floor[p] += worst_case(None, spec, now, settle_s=settle_s)
    return (floor[0], floor[1], floor[2])


def capped_site(
    site: Site,
    states: Sequence[ConnectorState],
    rule: PriceRule,
    now: float,
    *,
    settle_s: float = DEFAULT_PARAMS.settle_s,
) -> Site:
    """``site`` with its root capped for a dear interval (see the module docstring)."""
    root = site.root
    room = site.capacity(root)
    floor = floor_a(site, states, rule.connector_min, now, settle_s=settle_s)
    cap = rule.cap_a
    wanted = tuple(min(room[p], max(cap, floor[p])) for p in range(3))
    if wanted == room:
        return site
    caps = dict(site.caps)
    caps[root.name] = (wanted[0], wanted[1], wanted[2])  # at most any cap already there
    return site.with_caps(caps)
