"""The balancer in the daemon: one loop reading each tick's connector states, one pure
allocation and plan, one actuator.

Each tick's statuses arrive from the collector (:meth:`BalancerRuntime.on_tick`, which only
hands them over: a slow vendor never holds up the poll loop) and the loop takes the newest:

1. new ``control_action`` rows are folded into the pins (a person's limit is a fixed load);
2. the polls update what is known of every connector and its car (:mod:`.tracking`);
3. connectors whose setting is not known (all of them at start, any after a write whose
   outcome is unknown, any newly pinned, and every connector every ``reread_every`` ticks)
   are read back: what is found is adopted, and a value nobody in charged set is a person's
   (pinned: the balancer never fights a person);
4. :func:`~charged.balancer.allocate.allocate` gives the targets, :func:`~charged.balancer.
   plan.plan` the writes the guarantee lets out this tick (decreases first, increases only
   into room already free, none at all while the vendor is out);
5. ``active``: the :class:`~charged.balancer.actuator.Actuator` sends them through the audited
   control path (actor ``balancer``); ``shadow``: nothing is sent;
6. every connector's decision is a ``balancer_decision`` row through the batch writer, and the
   per fuse and phase limit, envelope and measured current are metrics.

Site meters: with a ``building`` source (:mod:`charged.meters`) each step asks it for what
else every metered fuse feeds at the tick's time (a fresh reading plus its headroom, or the
fallback of a stale meter) and runs the allocation and the plan on the site with that
subtracted from the fuses (:meth:`~charged.balancer.model.Site.with_other_load`): the pure
functions see a smaller fuse, nothing else.

Limits over time: with a ``schedule`` (:mod:`.schedule`) each step first puts every fuse at
the limit its weekly schedule has in force at the tick's time (local time of the site), then
subtracts the building's load from that.

Prices: with a ``prices`` signal (:class:`charged.prices.source.PriceBook`), a step in an
interval the price rule calls dear runs on the site with its root capped
(:func:`charged.prices.rule.capped_site`: the chargers together at most the rule's power, never
less than its per-connector minimum for every car that wants current); the transitions into
and out of a dear interval are logged once each.

Fail-safe: a charger the vendor's cloud load-balances (``isLoadbalanced``) is never driven
unless the site says the vendor's balancing is off for it; until the list of chargers has
been read every charger counts as not writable.  A charger that does not answer is offline
(counted at its full limits by the plan).  A tick in which no charger answered is a vendor
outage: nothing is raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import structlog

from charged.balancer.actuator import Actuator, Sent, SetConnector, Unless, WriteResult
from charged.balancer.allocate import allocate
from charged.balancer.failsafe import shadow_only
from charged.balancer.model import (
    DEFAULT_PARAMS,
    PHASE_NAMES,
    Allocation,
    BalancerMemory,
    BalancerParams,
    ConnectorKey,
    ConnectorState,
    Plan,
    Site,
    Write,
)
from charged.balancer.pins import AuditSource, PinBook
from charged.balancer.plan import plan
from charged.balancer.power_target import (
    Cap,
    TargetSpec,
    WindowState,
    advance,
    charger_cap,
    phase_caps,
)
from charged.balancer.recall import CarRecall
from charged.balancer.records import decision_rows, fuse_rows, power_window_row
from charged.balancer.schedule import LimitSchedule, limits_at
from charged.balancer.tracking import Tracked, settings_limit
from charged.chargeamps.errors import ChargeAmpsError
from charged.chargeamps.models import ChargePoint, ChargePointStatus, ConnectorSettings
from charged.clock import Clock
from charged.metrics import Metrics
from charged.prices.rule import PriceRule, capped_site
from charged.storage.writes import RowBatch

RuntimeMode = Literal["shadow", "active"]
READ_CONCURRENCY = 8
REREAD_EVERY = 20  # ticks between read-backs of every connector (outside changes)


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


class SettingsReader(SetConnector, Protocol):
    async def chargers(self) -> list[ChargePoint]: ...

    async def connector_settings(self, cp_id: str, connector_id: int) -> ConnectorSettings: ...


@dataclass(frozen=True, slots=True)
class TickInput:
    """One tick as the collector saw it."""

    time: float  # epoch seconds of the poll
    statuses: Mapping[str, ChargePointStatus]  # the chargers that answered
    asked: int  # chargers asked


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one balancer step decided and did (for tests and ``balance status``)."""

    time: float
    states: tuple[ConnectorState, ...]
    allocation: Allocation
    plan: Plan
    results: tuple[WriteResult, ...]
    vendor_ok: bool
    measured: Mapping[str, tuple[float, float, float]]  # per fuse, A per site phase
    site: Site  # as this step saw it: the fuses less the building's load
    power: PowerReport | None = None  # the power target's window and cap (None: no target)


Put = Callable[[RowBatch], Awaitable[None]]


def tick_input(
    tick_time: datetime, statuses: Mapping[str, ChargePointStatus], asked: int
) -> TickInput:
    """A collector tick (its poll time is naive UTC, as stored) as the balancer reads it."""
    return TickInput(tick_time.replace(tzinfo=UTC).timestamp(), dict(statuses), asked)


class BalancerRuntime:
    def __init__(
        self,
        site: Site,
        *,
        mode: RuntimeMode,
        controller: SettingsReader,
        audit_rows: AuditSource | None,
        put: Put,
        clock: Clock,
        params: BalancerParams = DEFAULT_PARAMS,
        metrics: Metrics | None = None,
        reread_every: int = REREAD_EVERY,
        logger: Any = None,
        recall: CarRecall | None = None,
        building: BuildingLoad | None = None,
        schedule: LimitSchedule | None = None,
        power_target: TargetSpec | None = None,
        window_recall: WindowRecall | None = None,
        tick_s: float = 30.0,
        prices: PriceSignal | None = None,
    ) -> None:
        self.site = site
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
        self.mode: RuntimeMode = mode
        self.params = params
        self._controller = controller
        self._actuator = Actuator(controller, max_writes=params.max_writes_per_tick)
        self._audit_rows = audit_rows
        self._put = put
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._reread_every = max(1, reread_every)
        self._log = logger or structlog.get_logger("charged.balancer")
        self.pins = PinBook()
        self._tracked: dict[ConnectorKey, Tracked] = {
            key: Tracked(key) for key in site.connector_keys()
        }
        self._shadow_only: dict[str, str] | None = None  # None: the list not read yet
        self._memory = BalancerMemory()
        self._steps = 0
        self._latest: TickInput | None = None
        self._arrived = asyncio.Event()
        self._done = asyncio.Condition()
        self._submitted = 0
        self._processed = 0
        self.last: StepReport | None = None
        self._warned_vendor: set[str] = set()
        self._recall = recall  # read once, at the first step

    # ------------------------------------------------------------ the loop

    def on_tick(self, tick: TickInput) -> None:
        """Hand over a tick's statuses (the newest wins if the loop is still busy)."""
        self._latest = tick
        self._submitted += 1
        self._arrived.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Step on every tick handed over until ``stop`` is set."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                arrived = asyncio.ensure_future(self._arrived.wait())
                try:
                    await asyncio.wait({arrived, stopping}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    arrived.cancel()
                if stop.is_set():
                    break
                self._arrived.clear()
                tick, self._latest = self._latest, None
                submitted = self._submitted
                if tick is not None:
                    try:
                        await self.step(tick)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        # a bug or a database hiccup must not end balancing for good: the
                        # next tick starts from what is read back, as after a restart
                        self._log.exception("balancer step failed; next tick tries again")
                        self._metrics.balancer_ticks.labels("failed").inc()
                async with self._done:
                    self._processed = submitted
                    self._done.notify_all()
        finally:
            stopping.cancel()

    async def idle(self) -> None:
        """Return once every tick handed over so far has been stepped (tests)."""
        async with self._done:
            await self._done.wait_for(lambda: self._processed >= self._submitted)

    # ------------------------------------------------------------ one step

    async def step(self, tick: TickInput) -> StepReport:
        started = time.process_time()
        now = tick.time
        p = self.params
        await self._fold_pins()
        vendor_ok = tick.asked == 0 or bool(tick.statuses)
        if self._recall is not None:
            await self._recall_cars()
        due = self._steps % self._reread_every == 0  # the first step, and every n-th
        if vendor_ok and (self._shadow_only is None or due):
            await self._read_chargers()
        self._observe(tick, now)
        if vendor_ok:
            await self._read_back(now, every=due)
        states = self._states(now)
        site = self._metered_site(now)
        power = None
        if self._target is not None:
            site, power = await self._power_target(self._target, site, states, now)
        if self._prices is not None:
            site = self._priced_site(self._prices, site, states, now)
        allocation = allocate(site, states, now, p, self._memory)
        self._memory = allocation.memory
        decided = plan(site, states, allocation.targets, now, p, vendor_ok=vendor_ok)
        results: tuple[WriteResult, ...] = ()
        if self.mode == "active" and decided.writes:
            await self._fold_pins()  # a person who just acted wins over this tick's plan
            writes = [w for w in decided.writes if self.pins.get(w.key) is None]
            results = tuple(await self._actuator.send(writes, self._unchanged_check))
            self._apply(results, self._clock.time())
        measured = self._measured(states)
        report = StepReport(
            now, tuple(states), allocation, decided, results, vendor_ok, measured, site, power
        )
        self.last = report
        self._steps += 1
        batch: dict[str, list[dict[str, Any]]] = {
            "balancer_decision": decision_rows(report, self.mode),
            "balancer_fuse": fuse_rows(report, self.site, self.mode),
        }
        if power is not None:
            batch["power_window"] = [power_window_row(report.time, power, self.mode)]
        await self._put(batch)
        self._record_metrics(report, time.process_time() - started)
        return report

    def _metered_site(self, now: float) -> Site:
        """The site at ``now``: each fuse at its scheduled limit, less the building's load
        (the same object as last step while nothing changed, so the site's index is built
        once)."""
        site = self.site
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
        caps = phase_caps(cap, site, states, self.params.min_current)
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
            if state.online and self.site.charger(state.key[0]) is not None
        )

    def _building_amps(self, now: float) -> float:
        """What the top fuse's meters read besides the chargers, summed over phases (A)."""
        if self._building is None:
            return 0.0
        root = self.site.root
        read = self.site.with_other_load(self._building.measured(now))
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
        return capped_site(site, states, prices.rule, now, settle_s=self.params.settle_s)

    async def _recall_cars(self) -> None:
        """Take back what an earlier run learned of the cars still plugged in."""
        recall, self._recall = self._recall, None
        assert recall is not None
        try:
            recalled = await recall.recall(self.site)
        except Exception as exc:
            self._log.warning(
                "could not read what was learned of the cars; learning them again",
                error=str(exc),
            )
            return
        for key, car in recalled.items():
            tracked = self._tracked.get(key)
            if tracked is not None:
                tracked.recall(car)
        if recalled:
            self._log.info("cars recalled from the database", connectors=len(recalled))

    async def _fold_pins(self) -> None:
        if self._audit_rows is None:
            return
        rows = await self._audit_rows.rows_after(self.pins.last_id)
        for key in self.pins.fold(rows):
            tracked = self._tracked.get(key)
            if tracked is not None:
                tracked.needs_read = True
                self._log.info(
                    "connector pinned" if self.pins.get(key) else "connector released",
                    charge_point_id=key[0],
                    connector_id=key[1],
                )

    async def _read_chargers(self) -> None:
        try:
            owned = await self._controller.chargers()
        except ChargeAmpsError as exc:
            self._log.warning("could not list the chargers; driving none yet", error=str(exc))
            return
        refused = shadow_only(self.site, owned)
        self._shadow_only = refused
        for cp_id, why in refused.items():
            if cp_id not in self._warned_vendor:
                self._warned_vendor.add(cp_id)
                self._log.warning("charger not driven", charge_point_id=cp_id, reason=why)

    def _writable(self, cp_id: str) -> bool:
        if self._shadow_only is None:
            return False  # the charger list was not read yet: drive nobody
        return self.site.charger(cp_id) is not None and cp_id not in self._shadow_only

    def _observe(self, tick: TickInput, now: float) -> None:
        vendor_out = tick.asked > 0 and not tick.statuses
        for key, tracked in self._tracked.items():
            status = tick.statuses.get(key[0])
            if status is None or status.status == "Offline":
                tracked.observe(None, online=False, now=now, vendor_out=vendor_out)
                continue
            connector = next(
                (c for c in status.connector_statuses if c.connector_id == key[1]), None
            )
            tracked.observe(
                connector, online=connector is not None, now=now, settle_s=self.params.settle_s
            )

    async def _read_back(self, now: float, *, every: bool) -> None:
        wanted = [t for t in self._tracked.values() if t.online and (t.needs_read or every)]
        if not wanted:
            return
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def read(tracked: Tracked) -> None:
            async with gate:
                try:
                    settings = await self._controller.connector_settings(*tracked.key)
                except ChargeAmpsError as exc:
                    self._log.info(
                        "could not read a connector's settings",
                        charge_point_id=tracked.key[0],
                        connector_id=tracked.key[1],
                        error=type(exc).__name__,
                    )
                    return
            self._adopt(tracked, settings, now)

        await asyncio.gather(*(read(t) for t in wanted))

    def _adopt(self, tracked: Tracked, settings: ConnectorSettings, now: float) -> None:
        self._learn_installation_current(tracked.key[0], settings.installation_current)
        value = settings_limit(settings, self.site.charger(tracked.key[0]))
        expected = {tracked.limit, tracked.pending}
        known = tracked.limit is not None
        if known and value not in expected and self.pins.get(tracked.key) is None:
            # nobody in charged set this: a person did, through the vendor's app
            self.pins.pin_outside(tracked.key)
            self._log.warning(
                "connector's limit changed outside charged: pinned until released",
                charge_point_id=tracked.key[0],
                connector_id=tracked.key[1],
                limit=value,
            )
        spec = self.site.charger(tracked.key[0])
        tracked.confirm(
            value,
            now,
            full=spec.connector_max if spec else self.params.max_current,
            settle_s=self.params.settle_s,
        )

    def _learn_installation_current(self, cp_id: str, amps: float | None) -> None:
        """A charger installed for less than the site says caps its connectors there: the
        allocation gives no more, and an offline one counts at no more (the charger itself
        never exceeds it)."""
        spec = self.site.charger(cp_id)
        if amps is None or spec is None or not 0 < amps < spec.installation_current:
            return
        self.site = self.site.with_installation_current(cp_id, amps)
        self._log.info("installation current read", charge_point_id=cp_id, amps=amps)

    def _states(self, now: float) -> list[ConnectorState]:
        p = self.params
        states = []
        for key, tracked in self._tracked.items():
            pin = self.pins.get(key)
            pinned = None
            if pin is not None:
                spec = self.site.charger(key[0])
                full = spec.connector_max if spec is not None else p.max_current
                asked = (
                    0.0
                    if pin.mode == "Off"
                    else min(full, pin.max_current if pin.max_current is not None else full)
                )
                if tracked.limit is None:
                    pinned = asked
                elif pin.since_row is None:
                    pinned = tracked.limit  # changed outside charged: the read-back is all
                else:
                    # the person's change may not have landed yet when its audit row is
                    # folded (the read-back still shows the old value): the higher counts
                    pinned = max(tracked.limit, asked)
            states.append(
                tracked.state(
                    now,
                    pinned=pinned,
                    writable=self._writable(key[0]),
                    min_current=p.min_current,
                    settle_s=p.settle_s,
                )
            )
        return states

    def _unchanged_check(self, write: Write) -> Unless | None:
        """Refuse a write to a connector whose setting is no longer what the balancer left
        there: someone set it since (the vendor's app): a person's limit, not to overwrite."""
        tracked = self._tracked[write.key]
        if tracked.limit is None:
            return None  # nothing known to compare with (the plan counts it at full)
        expected = {tracked.limit, tracked.pending}
        spec = self.site.charger(write.key[0])

        def check(before: ConnectorSettings) -> str | None:
            found = settings_limit(before, spec)
            if found in expected:
                return None
            return (
                f"changed outside charged: the limit reads {found:g} A, the balancer left "
                f"{tracked.limit:g} A; not overwritten (a person's limit)"
            )

        return check

    def _apply(self, results: Sequence[WriteResult], now: float) -> None:
        for result in results:
            tracked = self._tracked[result.write.key]
            self._metrics.balancer_writes.labels(result.sent.value).inc()
            sent = float(int(result.write.limit))  # what the actuator sent (whole amperes)
            if result.sent is Sent.CONFIRMED:
                tracked.confirm(sent, now, settle_s=self.params.settle_s)
            elif result.sent is Sent.UNKNOWN:
                tracked.pending = sent
                tracked.needs_read = True
            elif result.changed_outside:
                self.pins.pin_outside(tracked.key)
                tracked.needs_read = True
                self._log.warning(
                    "connector's limit changed outside charged: pinned until released",
                    charge_point_id=tracked.key[0],
                    connector_id=tracked.key[1],
                )
            elif result.sent is Sent.REFUSED and result.forbidden:
                tracked.refused = True
                self._log.warning(
                    "the vendor refuses the balancer's writes for this connector: shadow only",
                    charge_point_id=result.write.key[0],
                    connector_id=result.write.key[1],
                )

    # ------------------------------------------------------------ visibility

    def _measured(self, states: Sequence[ConnectorState]) -> dict[str, tuple[float, float, float]]:
        sums = {fuse.name: [0.0, 0.0, 0.0] for fuse in self.site.fuses()}
        for state in states:
            spec = self.site.charger(state.key[0])
            if spec is None or not state.online:
                continue
            site_currents = spec.rotation.currents_to_site(state.measured)
            for fuse in self.site.fuses_of(state.key[0]):
                for phase in range(3):
                    sums[fuse.name][phase] += site_currents[phase]
        return {name: (v[0], v[1], v[2]) for name, v in sums.items()}

    def _record_metrics(self, report: StepReport, cpu: float) -> None:
        m = self._metrics
        m.balancer_ticks.labels("ok" if report.vendor_ok else "vendor_out").inc()
        m.balancer_tick_cpu.observe(cpu)
        for fuse in report.site.fuses():  # the limits in force at the step
            envelope = report.plan.envelope.get(fuse.name, (0.0, 0.0, 0.0))
            measured = report.measured.get(fuse.name, (0.0, 0.0, 0.0))
            for phase, name in enumerate(PHASE_NAMES):
                m.balancer_fuse_limit.labels(fuse.name, name).set(fuse.limit[phase])
                m.balancer_fuse_envelope.labels(fuse.name, name).set(envelope[phase])
                m.balancer_fuse_measured.labels(fuse.name, name).set(measured[phase])
                m.balancer_fuse_capacity.labels(fuse.name, name).set(
                    report.site.capacity(fuse)[phase]
                )
        if report.power is not None:
            power = report.power
            m.power_target_watts.set(power.cap.target_w)
            m.power_window_energy_wh.set(power.window.energy_wh)
            m.power_site_watts.labels("chargers").set(power.chargers_w)
            m.power_site_watts.labels("building").set(power.building_w)
            m.power_month_peak_watts.set(power.window.month_peak_w)
            m.power_target_cap_amperes.set(power.cap_a)
            if power.window.last_mean_w is not None:
                m.power_window_last_mean_watts.set(power.window.last_mean_w)
        m.balancer_paused.set(len(report.allocation.paused))
        m.balancer_pinned.set(len(self.pins.pinned()))
        if self.mode == "shadow":
            m.balancer_writes.labels("shadow").inc(len(report.plan.writes))
