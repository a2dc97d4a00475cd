"""charged's own balancer as an evaluation policy: the real allocation, guarantee and tracking.

Nothing of the balancer is re-implemented here.  Every tick does what the daemon's step
(:meth:`charged.balancer.runtime.BalancerRuntime.step`) does with the same pieces:

1. each connector's reading becomes the vendor's :class:`~charged.chargeamps.models.
   ConnectorStatus` and goes to :meth:`Tracked.observe <charged.balancer.tracking.Tracked.
   observe>` (which learns the car's terminals, its own maximum and whether it is full);
2. a connector whose setting is not known (at start, after a write) is *read back*: the
   setting the telemetry shows goes to :meth:`Tracked.confirm`; as in the daemon, every
   connector is read again every :data:`~charged.balancer.runtime.REREAD_EVERY` ticks;
3. :func:`~charged.balancer.allocate.allocate` (with the :class:`BalancerMemory` of the
   previous tick) gives the targets, :func:`~charged.balancer.plan.plan` the writes the
   guarantee lets out;
4. the writes are returned to the engine and stay *pending* in the tracking until the next
   poll reads them back.  The daemon confirms a write at once when the vendor answers: there
   a decrease starts settling a tick earlier, and the next poll (the car still following a
   raise) is observed under the new limit, from which the tracking learns a car's maximum
   too low (bench/README.md, "Where charged loses"); here that poll is observed under the
   old limit.

With a meter series the allocation and the plan run on the site less what the meters read
plus a headroom (:meth:`Site.with_other_load <charged.balancer.model.Site.with_other_load>`),
as the daemon's ``site.meters`` do with their defaults: the largest rise the meter showed
within one reaction (a tick plus ``settle_s``) in the last :data:`LEARN_WINDOW_S`, at least
:data:`METER_HEADROOM_A` (:class:`charged.meters.headroom.RiseHeadroom`, fed every poll).

With a price series, ``charged-price`` is ``charged`` whose allocation and plan run, in the
intervals the site file's price rule (``prices:``) calls dear, on the site with its root
capped as the daemon caps it (:func:`charged.prices.rule.capped_site`).

``charged`` runs ``mode: guarantee``; ``charged-measured`` the plan's ``mode: measured``
(increases are not held for room), with the same allocation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from charged.balancer.allocate import allocate
from charged.balancer.evaluate.telemetry import ConnectorTelemetry, Telemetry
from charged.balancer.model import (
    DEFAULT_PARAMS,
    PHASE_NAMES,
    BalancerMemory,
    BalancerParams,
    ConnectorKey,
    ConnectorState,
    PhaseCurrents,
    Site,
)
from charged.balancer.plan import plan
from charged.balancer.runtime import REREAD_EVERY
from charged.balancer.tracking import Tracked
from charged.chargeamps.models import ConnectorStatus, Measurement
from charged.config_service import CollectorSettings
from charged.config_site import MeterSettings
from charged.meters.headroom import RiseHeadroom
from charged.prices.rule import DearHours, capped_site

VOLTAGE = 230.0  # what a reading's voltage says; nothing here reads it
# site.meters' defaults: the floor of the headroom and how long a rise is remembered
METER_HEADROOM_A = MeterSettings.model_fields["headroom_a"].default
LEARN_WINDOW_S = MeterSettings.model_fields["headroom_learn_h"].default * 3600.0
DEFAULT_TICK_S = CollectorSettings.model_fields["interval"].default


def connector_status(reading: ConnectorTelemetry) -> ConnectorStatus:
    """What the vendor's status call would have said of the connector at this poll."""
    measurements: tuple[Measurement, ...] = ()
    if reading.currents is not None:
        measurements = tuple(
            Measurement(phase=name, current=amps, voltage=VOLTAGE)
            for name, amps in zip(PHASE_NAMES, reading.currents, strict=True)
        )
    start = reading.session_start
    return ConnectorStatus(
        charge_point_id=reading.key[0],
        connector_id=reading.key[1],
        total_consumption_kwh=reading.session_energy_kwh,
        charging_power_kw=None,
        session_type=None,
        status=reading.status,
        measurements=measurements,
        start_time=None if start is None else datetime.fromtimestamp(start, UTC),
        end_time=None,
        # the engine's sessions have no number; a session's start names it on its connector
        session_id=None if start is None else int(start),
    )


class StatusCache:
    """:func:`connector_status` with what repeats from poll to poll built once.

    An idle connector reads the same every tick, and a charging car draws the same currents
    for hours: the statuses, the measurement tuples and the session start times are kept, by
    value (every one of them frozen), so a tick of 60 connectors builds only what changed.
    The result is equal to :func:`connector_status` of the same reading."""

    def __init__(self) -> None:
        # per connector: the last reading, what of it the status shows, and the status
        self._status: dict[
            ConnectorKey, tuple[ConnectorTelemetry, tuple[object, ...], ConnectorStatus]
        ] = {}
        self._measurements: dict[tuple[float, float, float], tuple[Measurement, ...]] = {}
        self._starts: dict[float, datetime] = {}

    def __call__(self, reading: ConnectorTelemetry) -> ConnectorStatus:
        cached = self._status.get(reading.key)
        if cached is not None and cached[0] is reading:
            return cached[2]  # (the engine hands an idle connector the same reading)
        currents, start = reading.currents, reading.session_start
        ident = (reading.status, currents, reading.session_energy_kwh, start)
        if cached is not None and cached[1] == ident:
            self._status[reading.key] = (reading, ident, cached[2])
            return cached[2]
        measurements: tuple[Measurement, ...] = ()
        if currents is not None:
            found = self._measurements.get(currents)
            if found is None:
                found = tuple(
                    Measurement(phase=name, current=amps, voltage=VOLTAGE)
                    for name, amps in zip(PHASE_NAMES, currents, strict=True)
                )
                self._measurements[currents] = found
            measurements = found
        start_time = None
        if start is not None:
            start_time = self._starts.get(start)
            if start_time is None:
                start_time = self._starts[start] = datetime.fromtimestamp(start, UTC)
        # (positional, in ConnectorStatus's order: a charging car's energy grows every tick,
        # and by keyword costs a quarter more; the tests compare it with connector_status)
        status = ConnectorStatus(
            reading.key[0],
            reading.key[1],
            reading.session_energy_kwh,  # total_consumption_kwh
            None,  # charging_power_kw
            None,  # session_type
            reading.status,
            measurements,
            start_time,
            None,  # end_time
            None if start is None else int(start),  # session_id
        )
        self._status[reading.key] = (reading, ident, status)
        return status


class ChargedPolicy:
    """The daemon's balancer, stepped by the engine instead of the collector."""

    name = "charged"

    def __init__(
        self, site: Site, params: BalancerParams = DEFAULT_PARAMS, prices: DearHours | None = None
    ) -> None:
        self.site = site
        self.params = params
        self.prices = prices
        self.name = "charged" if params.mode == "guarantee" else f"charged-{params.mode}"
        if prices is not None:
            self.name += "-price"
        self._tracked = {key: Tracked(key) for key in site.connector_keys()}
        self._full = {}
        for key in site.connector_keys():
            spec = site.charger(key[0])
            assert spec is not None
            self._full[key] = spec.connector_max
        self._memory = BalancerMemory()
        self._steps = 0
        self._status = StatusCache()
        self._rises: dict[str, RiseHeadroom] = {}
        self._previous: float | None = None  # the time of the poll before, once metered
        # the site less the building, and the readings and headroom it was built from
        self._metered: tuple[Mapping[str, PhaseCurrents], object, Site] | None = None

    def initial_limit(self, key: ConnectorKey) -> float:
        # what the baselines that drive limits start from too: nothing is drawn before the
        # balancer's first tick (and the first read-back counts it at full for settle_s)
        return 0.0

    def decide(self, telemetry: Telemetry) -> Mapping[ConnectorKey, float]:
        now, p = telemetry.time, self.params
        settle_s, min_current = p.settle_s, p.min_current
        reread = self._steps % REREAD_EVERY == 0
        readings, status_of = telemetry.connectors, self._status
        for key, tracked in self._tracked.items():
            reading = readings.get(key)
            if reading is None:
                tracked.observe(None, online=False, now=now)
                continue
            tracked.observe(status_of(reading), online=True, now=now, settle_s=settle_s)
            if tracked.needs_read or tracked.pending is not None or reread:
                tracked.confirm(reading.setting, now, full=self._full[key], settle_s=settle_s)
        states = [
            t.state(now, pinned=None, writable=True, min_current=min_current, settle_s=settle_s)
            for t in self._tracked.values()
        ]
        site = self.site_at(telemetry, states)
        if self.prices is not None and self.prices.dear(now):
            site = capped_site(site, states, self.prices.rule, now, settle_s=p.settle_s)
        allocation = allocate(site, states, now, p, self._memory)
        self._memory = allocation.memory
        decided = plan(site, states, allocation.targets, now, p)
        out: dict[ConnectorKey, float] = {}
        for write in decided.writes:
            # confirmed at once, as the daemon's read-back after the write does
            # (runtime._apply): the cloud holds the new value, the car follows it later
            self._tracked[write.key].confirm(
                write.limit, now, full=self._full[write.key], settle_s=p.settle_s
            )
            out[write.key] = write.limit
        self._steps += 1
        return out

    def site_at(self, telemetry: Telemetry, states: Sequence[ConnectorState] = ()) -> Site:
        """The site less what the meters read plus their headroom, rebuilt only when either
        changed (``states``: the tick's connectors, for a subclass's caps)."""
        building = telemetry.building
        if not building:
            return self.site
        now = telemetry.time
        rooms: dict[str, PhaseCurrents] = {}
        for fuse, amps in building.items():
            rises = self._rises.get(fuse)
            if rises is None:
                # a rise goes unanswered for a tick (the engine's, seen between two polls)
                # and settle_s
                tick = DEFAULT_TICK_S if self._previous is None else now - self._previous
                reaction_s = tick + self.params.settle_s
                rises = RiseHeadroom(
                    METER_HEADROOM_A, reaction_s=reaction_s, window_s=LEARN_WINDOW_S
                )
                self._rises[fuse] = rises
            rises.observe(now, amps)
            rooms[fuse] = rises.headroom(now)
        self._previous = now
        cached = self._metered
        if cached is None or cached[0] is not building or cached[1] != rooms:
            loads: dict[str, PhaseCurrents] = {}
            for fuse, amps in building.items():
                a, b, c = (max(0.0, x) + r for x, r in zip(amps, rooms[fuse], strict=True))
                loads[fuse] = (a, b, c)
            cached = self._metered = (building, rooms, self.site.with_other_load(loads))
        return cached[2]


def charged(site: Site, params: BalancerParams = DEFAULT_PARAMS) -> ChargedPolicy:
    return ChargedPolicy(site, replace(params, mode="guarantee"))


def charged_measured(site: Site, params: BalancerParams = DEFAULT_PARAMS) -> ChargedPolicy:
    return ChargedPolicy(site, replace(params, mode="measured"))


def charged_price(
    site: Site, params: BalancerParams = DEFAULT_PARAMS, prices: DearHours | None = None
) -> ChargedPolicy:
    if prices is None:
        raise ValueError("charged-price needs a price series (--prices)")
    return ChargedPolicy(site, replace(params, mode="guarantee"), prices)
