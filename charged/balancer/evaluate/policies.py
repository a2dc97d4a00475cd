"""The baseline policies a garage could run instead of charged's balancer, behind one interface.

Each sees only what the vendor API shows (:mod:`~charged.balancer.evaluate.telemetry`) and
the site description, and returns the ``maxCurrent`` it wants per connector every tick:

- ``uncontrolled``: 32 A everywhere, always (shows whether the scenario binds at all).
- ``equal-split``: each fuse's capacity divided by the connectors below it, set once and never
  changed; phase-unaware (every connector is counted on every phase).  A share under 6 A is
  no charge at all (a car stops below 6 A), so it is 0.
- ``evcc-like``: as evcc's circuits work: one current per fuse, the sum of each connector's
  highest measured phase current (phase- and rotation-unaware), a greedy limiter: when a fuse
  is over, the latest arrivals give back first; when there is room, connectors are raised in
  order of arrival (first come, first served) into the room the readings show, and nobody is
  lowered to make room for a newcomer.  Idle connectors hold 0; a newcomer starts at 6 A.
- ``round-robin``: as ACN-Sim's RoundRobin: phase-aware (the site phases each car was seen to
  draw on, through its charger's rotation; all three until seen), recomputed every tick from
  zero, in order of arrival: everyone who wants current first gets 6 A while that is feasible,
  then 1 A more at a time in turn while feasible, up to 32 A (or the installation current).
  Feasible means the sum of the limits on every fuse phase is within its capacity; it does not
  order decreases before increases, nor count a changed limit as the higher of old and new.

- ``charged-price``: ``charged`` capped in the dear intervals of a price series (the daemon's
  ``prices:`` rule).
- ``charged`` and ``charged-measured``: the daemon's own balancer (the real tracking,
  allocation and guarantee, :mod:`~charged.balancer.evaluate.charged_policy`), in the plan's
  ``guarantee`` and ``measured`` modes.

Every fuse capacity is the site's (limit minus margin), the same for all policies.  With a
meter series, the policies that read the grid each tick (``evcc-like``, ``round-robin``,
charged's) see each fuse less what its meters read at the poll (the daemon's rule,
:meth:`~charged.balancer.model.Site.with_other_load`); ``evcc-like`` counts the highest phase
of it, as it counts the cars.  ``uncontrolled`` and ``equal-split`` never read anything.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from charged.balancer.evaluate.charged_policy import charged, charged_measured, charged_price
from charged.balancer.evaluate.observe import CarObserver, CarView
from charged.balancer.evaluate.target_policy import NAME as TARGET_POLICY
from charged.balancer.evaluate.target_policy import charged_target
from charged.balancer.evaluate.telemetry import CHARGING, Policy, Telemetry
from charged.balancer.model import (
    DEFAULT_PARAMS,
    MAX_CURRENT,
    MIN_CURRENT,
    BalancerParams,
    ConnectorKey,
    PhaseCurrents,
    Site,
)
from charged.balancer.power_target import TargetSpec
from charged.prices.rule import DearHours

ROUND_ROBIN_STEP = 1.0  # A per turn, as ACN-Sim's RoundRobin


class _SiteIndex:
    """The site as flat lists: fuse capacities, each connector's fuses, rotation and maximum."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.fuse_names = [f.name for f in site.fuses()]
        self.capacity = {f.name: site.capacity(f) for f in site.fuses()}
        self._empty = self.capacity
        self.shown: Mapping[str, PhaseCurrents] | None = None

        self.keys = list(site.connector_keys())
        self.fuses_of: dict[ConnectorKey, tuple[str, ...]] = {}
        self.max_of: dict[ConnectorKey, float] = {}
        self.below: dict[str, int] = {name: 0 for name in self.fuse_names}
        for key in self.keys:
            charger = site.charger(key[0])
            assert charger is not None
            names = tuple(f.name for f in site.fuses_of(key[0]))
            self.fuses_of[key] = names
            self.max_of[key] = min(MAX_CURRENT, charger.connector_max)
            for name in names:
                self.below[name] += 1

    def metered(self, building: Mapping[str, PhaseCurrents]) -> None:
        """Set ``capacity`` to the fuses less what the meters read (unchanged: kept)."""
        if building is self.shown:
            return
        self.shown = building
        if not building:
            self.capacity = self._empty
            return
        loaded = self.site.with_other_load(building)
        self.capacity = {f.name: loaded.capacity(f) for f in loaded.fuses()}

    def site_phases(self, key: ConnectorKey, terminals: frozenset[int]) -> frozenset[int]:
        charger = self.site.charger(key[0])
        assert charger is not None
        return charger.rotation.to_site(terminals)


class Uncontrolled:
    name = "uncontrolled"

    def __init__(self, site: Site) -> None:
        self._index = _SiteIndex(site)

    def initial_limit(self, key: ConnectorKey) -> float:
        return self._index.max_of[key]

    def decide(self, telemetry: Telemetry) -> Mapping[ConnectorKey, float]:
        return {}


class EqualSplit:
    name = "equal-split"

    def __init__(self, site: Site) -> None:
        index = _SiteIndex(site)
        self._limits: dict[ConnectorKey, float] = {}
        for key in index.keys:
            share = min(
                min(index.capacity[name]) / index.below[name] for name in index.fuses_of[key]
            )
            amps = min(float(math.floor(share)), index.max_of[key])
            self._limits[key] = amps if amps >= MIN_CURRENT else 0.0

    def initial_limit(self, key: ConnectorKey) -> float:
        return self._limits[key]

    def decide(self, telemetry: Telemetry) -> Mapping[ConnectorKey, float]:
        return {}


class EvccLike:
    name = "evcc-like"

    def __init__(self, site: Site) -> None:
        self._index = _SiteIndex(site)
        self._observer = CarObserver()

    def initial_limit(self, key: ConnectorKey) -> float:
        return 0.0

    def decide(self, telemetry: Telemetry) -> Mapping[ConnectorKey, float]:
        index, now = self._index, telemetry.time
        index.metered(telemetry.building)
        used = dict.fromkeys(index.fuse_names, 0.0)
        cars: list[tuple[float, ConnectorKey, CarView]] = []
        settings: dict[ConnectorKey, float] = {}
        drawn: dict[ConnectorKey, float] = {}
        for key, reading in telemetry.connectors.items():
            settings[key] = reading.setting
            view = self._observer.update(now, reading)
            highest = max(reading.currents) if reading.currents is not None else 0.0
            drawn[key] = highest
            for name in index.fuses_of[key]:
                used[name] += highest
            if view is not None:
                cars.append((view.plugged_since, key, view))
        cars.sort(key=lambda c: (c[0], c[1]))
        plugged = {key for _, key, _ in cars}
        # idle connectors hold 0 (evcc disables a charger without a car)
        out: dict[ConnectorKey, float] = {
            key: 0.0 for key, setting in settings.items() if setting and key not in plugged
        }
        # over a fuse: the latest arrivals give back first, by what they draw
        for _, key, _view in reversed(cars):
            excess = max(used[name] - min(index.capacity[name]) for name in index.fuses_of[key])
            if excess <= 0 or drawn[key] <= 0:
                continue
            lowered = float(math.floor(drawn[key] - excess))
            target = lowered if lowered >= MIN_CURRENT else 0.0
            give_back = drawn[key] - target
            for name in index.fuses_of[key]:
                used[name] -= give_back
            out[key] = target
        # room: first come, first served, into the room the readings show
        for _, key, view in cars:
            if key in out:
                continue
            setting = settings[key]
            if view.full:
                continue
            room = min(min(index.capacity[name]) - used[name] for name in index.fuses_of[key])
            if setting < MIN_CURRENT:
                if room >= MIN_CURRENT:
                    out[key] = MIN_CURRENT
                    for name in index.fuses_of[key]:
                        used[name] += MIN_CURRENT
                continue
            if reading_is_capped(telemetry, key, setting) and room >= 1.0:
                raised = min(index.max_of[key], float(math.floor(setting + room)))
                if raised > setting:
                    out[key] = raised
                    for name in index.fuses_of[key]:
                        used[name] += raised - setting
        return out


def reading_is_capped(telemetry: Telemetry, key: ConnectorKey, setting: float) -> bool:
    """The car draws about what it is allowed: it would take more (evcc raises only then)."""
    reading = telemetry.connectors[key]
    if reading.status != CHARGING or reading.currents is None:
        return True  # allowed but not drawing yet: the limit may still be acting
    return max(reading.currents) >= setting - 1.5


class RoundRobin:
    name = "round-robin"

    def __init__(self, site: Site) -> None:
        self._index = _SiteIndex(site)
        self._observer = CarObserver()
        self._memo: tuple[tuple[object, ...], dict[ConnectorKey, float]] | None = None

    def initial_limit(self, key: ConnectorKey) -> float:
        return 0.0

    def decide(self, telemetry: Telemetry) -> Mapping[ConnectorKey, float]:
        index, now = self._index, telemetry.time
        if telemetry.building is not index.shown:
            index.metered(telemetry.building)
            self._memo = None  # other capacities: schedule again
        queue: list[tuple[float, ConnectorKey, frozenset[int]]] = []
        for key, reading in telemetry.connectors.items():
            view = self._observer.update(now, reading)
            if view is not None and not view.full:
                phases = index.site_phases(key, view.counted_terminals)
                queue.append((view.plugged_since, key, phases))
        queue.sort(key=lambda q: (q[0], q[1]))
        signature = tuple((key, phases) for _, key, phases in queue)
        if self._memo is not None and self._memo[0] == signature:
            rates = self._memo[1]  # same cars, same phases: the same schedule
        else:
            rates = self._schedule([(key, phases) for _, key, phases in queue])
            self._memo = (signature, rates)
        return {key: rates.get(key, 0.0) for key in telemetry.connectors}

    def _schedule(
        self, queue: Sequence[tuple[ConnectorKey, frozenset[int]]]
    ) -> dict[ConnectorKey, float]:
        index = self._index
        load = {name: [0.0, 0.0, 0.0] for name in index.fuse_names}
        rates: dict[ConnectorKey, float] = {}

        def fits(key: ConnectorKey, phases: frozenset[int], amps: float) -> bool:
            for name in index.fuses_of[key]:
                cap, used = index.capacity[name], load[name]
                for p in phases:
                    if used[p] + amps > cap[p] + 1e-9:
                        return False
            return True

        def add(key: ConnectorKey, phases: frozenset[int], amps: float) -> None:
            for name in index.fuses_of[key]:
                used = load[name]
                for p in phases:
                    used[p] += amps
            rates[key] = rates.get(key, 0.0) + amps

        turns: deque[tuple[ConnectorKey, frozenset[int]]] = deque()
        for key, phases in queue:
            if index.max_of[key] >= MIN_CURRENT and fits(key, phases, MIN_CURRENT):
                add(key, phases, MIN_CURRENT)
                turns.append((key, phases))
        while turns:
            key, phases = turns.popleft()
            step = min(ROUND_ROBIN_STEP, index.max_of[key] - rates[key])
            if step > 0 and fits(key, phases, step):
                add(key, phases, step)
                turns.append((key, phases))
        return rates


POLICIES: dict[str, Callable[[Site], Policy]] = {
    "uncontrolled": Uncontrolled,
    "equal-split": EqualSplit,
    "evcc-like": EvccLike,
    "round-robin": RoundRobin,
    "charged": charged,
    "charged-measured": charged_measured,
}
PRICE_POLICY = "charged-price"  # needs a price series: made by make_policy alone


def make_policy(
    name: str,
    site: Site,
    params: BalancerParams = DEFAULT_PARAMS,
    prices: DearHours | None = None,
    *,
    target: TargetSpec | None = None,
) -> Policy:
    """The policy ``name`` on ``site``; charged's take the balancer's ``params`` (the
    baselines have none), ``charged-price`` the price series' dear hours too, and
    ``charged-target`` the site's power ``target`` (ValueError without either).  KeyError
    for an unknown name."""
    if name == PRICE_POLICY:
        return charged_price(site, params, prices)
    if name == TARGET_POLICY:
        return charged_target(site, params, target)
    if name == "charged":
        return charged(site, params)
    if name == "charged-measured":
        return charged_measured(site, params)
    return POLICIES[name](site)
