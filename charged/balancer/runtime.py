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

The site each step runs on — the fuses at their scheduled limits, less the building's load,
under the power target's cap and the price rule's — is shaped by
:class:`~charged.balancer.site_signals.SiteSignals`: the pure functions see smaller fuses,
nothing else.

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
    TargetSpec,
)
from charged.balancer.recall import CarRecall
from charged.balancer.records import decision_rows, fuse_rows, power_window_row
from charged.balancer.schedule import LimitSchedule
from charged.balancer.site_signals import (
    BuildingLoad,
    PowerReport,
    PriceSignal,
    SiteSignals,
    WindowRecall,
)
from charged.balancer.tracking import Tracked, settings_limit
from charged.chargeamps.errors import ChargeAmpsError
from charged.chargeamps.models import ChargePoint, ChargePointStatus, ConnectorSettings
from charged.clock import Clock
from charged.metrics import Metrics
from charged.storage.writes import RowBatch

RuntimeMode = Literal["shadow", "active"]
READ_CONCURRENCY = 8
REREAD_EVERY = 20  # ticks between read-backs of every connector (outside changes)


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
        self._signals = SiteSignals(
            site,
            params=params,
            logger=self._log,
            building=building,
            schedule=schedule,
            power_target=power_target,
            window_recall=window_recall,
            tick_s=tick_s,
            prices=prices,
        )
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
        site, power = await self._signals.shape(states, now)
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
