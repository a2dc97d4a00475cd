"""The poll loop: one tick every ``interval`` seconds, every charger asked concurrently.

The supervisor owns the schedule; fetching is the client's job and writing the writer's.  Ticks
sit on a fixed grid (``anchor + k × interval``) so they never drift; a tick that overruns makes
the loop skip the grid points it missed (counted) instead of starting two cycles at once.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

from charged.chargeamps.errors import (
    ApiError,
    AuthenticationError,
    ChargeAmpsError,
    PayloadError,
)
from charged.chargeamps.models import ChargePoint, ChargePointStatus
from charged.clock import Clock, SystemClock, sleep_or_stop
from charged.collector.availability import Availability, is_offline
from charged.collector.rows import (
    charge_point_rows,
    count_rows,
    db_time,
    offline_rows,
    status_rows,
)
from charged.metrics import Metrics
from charged.storage.writes import RowBatch


class StatusSource(Protocol):
    """What the supervisor needs of the vendor client."""

    async def owned_chargepoints(self, *, deadline: float | None = None) -> list[ChargePoint]: ...

    async def status(self, cp_id: str, *, deadline: float | None = None) -> ChargePointStatus: ...

    async def organisation_statuses(
        self, organisation_id: str, *, chargers: int = 1, deadline: float | None = None
    ) -> tuple[list[ChargePointStatus], list[str]]: ...


@dataclass(frozen=True, slots=True)
class TickResult:
    tick_time: datetime  # the poll time (naive UTC, whole seconds) stamped on every row
    asked: int
    ok: int
    failed: int
    rows: int
    duration: float
    skipped_before: int
    charging: int  # connectors reported Charging
    power_kw: float  # sum of chargingPowerKw over all connectors
    failures: dict[str, str] = field(default_factory=dict)  # charger id -> short reason
    # charger id -> the status it answered this tick (the chargers that answered), for a
    # consumer of the tick that acts on the chargers' states (e.g. a balancer)
    statuses: dict[str, ChargePointStatus] = field(default_factory=dict)
    # chargers that answered Offline: neither ok nor failed (in statuses, not in failures)
    offline: int = 0

    @property
    def vendor_outage(self) -> bool:
        """Every charger asked failed: the vendor (or the way to it) is down, not a charger."""
        return self.asked > 0 and self.failed == self.asked


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one charger's poll gave: its status and the rows queued for it."""

    status: ChargePointStatus
    rows: int = 0
    charging: int = 0
    power_kw: float = 0.0
    offline: bool = False


TickCallback = Callable[[TickResult], Awaitable[None] | None]


class NoChargersError(ChargeAmpsError):
    """The account owns no charger (or none passes the allow-list)."""


class Supervisor:
    def __init__(
        self,
        client: StatusSource,
        queue: asyncio.Queue[RowBatch],
        *,
        interval: float = 30.0,
        rediscover_every: int = 20,
        allow_list: Sequence[str] = (),
        deadline_fraction: float = 0.9,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        on_tick: TickCallback | None = None,
        logger: Any = None,
        organisation_id: str | None = None,
    ) -> None:
        """``organisation_id``: each tick asks for every charger's status in one call (v5's
        organisation statuses), and asks chargers one by one only when that call fails, or
        for a charger its answer leaves out."""
        self._client = client
        self._queue = queue
        self._interval = interval
        self._rediscover_every = rediscover_every
        self._allow = frozenset(allow_list)
        self._deadline_fraction = deadline_fraction
        self._clock = clock or SystemClock()
        self._metrics = metrics or Metrics()
        self._on_tick = on_tick
        # the latest tick time stored (this run's, or the database's at the start)
        self._latest_tick: datetime | None = None
        self._out_of_order = False  # warned about a clock step back, not yet past it
        self._log = logger or structlog.get_logger("charged.collector")
        self._charge_points: list[str] = []
        self._ticks_since_discovery: int | None = None
        self._pending_skipped = 0
        self._reported_failures: set[str] = set()
        self.ticks_run = 0
        self._organisation = organisation_id
        self._organisation_refused = False  # a 4xx: not asked again until the next discovery
        self._organisation_failing = False
        # this tick's statuses from the organisation call, and the ids it could not parse
        self._prefetched: dict[str, ChargePointStatus] = {}
        self._prefetch_broken: set[str] = set()
        self._availability = Availability(self._metrics, self._log)
        # metric children looked up once (at their first use, so /metrics lists the same
        # series as before), not per charger and tick: labels() is a locked lookup
        # (bench/README.md, "collector's CPU per charger")
        self._polled: dict[str, Any] = {}
        self._rows_queued: dict[str, Any] = {}

    @property
    def charge_points(self) -> list[str]:
        return list(self._charge_points)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set; the tick in flight finishes first."""
        anchor = self._clock.monotonic()
        k = 0
        while not stop.is_set():
            await self.tick(
                deadline=anchor + k * self._interval + self._interval * self._deadline_fraction
            )
            elapsed = self._clock.monotonic() - anchor
            next_k = max(k + 1, math.ceil(elapsed / self._interval - 1e-9))
            skipped = next_k - k - 1
            if skipped:
                self._pending_skipped += skipped
                self._metrics.ticks_skipped.inc(skipped)
                self._log.warning(
                    "tick overran its interval; skipping", skipped=skipped, interval=self._interval
                )
            k = next_k
            await sleep_or_stop(
                self._clock, anchor + k * self._interval - self._clock.monotonic(), stop
            )

    async def tick(self, *, deadline: float | None = None) -> TickResult:
        """One poll cycle: refresh the charger list when due, then every status at once."""
        started = self._clock.monotonic()
        if deadline is None:
            deadline = started + self._interval * self._deadline_fraction
        tick_time = db_time(self._clock.utcnow())
        self._check_tick_time(tick_time)
        await self._discover_if_due(deadline)
        ids = list(self._charge_points)
        await self._prefetch(ids, started, deadline)
        outcomes = await self._poll_all(ids, tick_time, deadline)
        ok = offline = rows = charging = 0
        power = 0.0
        failed: dict[str, str] = {}
        statuses: dict[str, ChargePointStatus] = {}
        changes: list[dict[str, Any]] = []
        for cp_id, outcome in zip(ids, outcomes, strict=True):
            if isinstance(outcome, str):
                failed[cp_id] = outcome
                continue
            statuses[cp_id] = outcome.status
            change = self._availability.observe(outcome.status, tick_time)
            if change is not None:
                changes.append(change)
            if outcome.offline:
                offline += 1
                continue
            ok += 1
            rows += outcome.rows
            charging += outcome.charging
            power += outcome.power_kw
        duration = self._clock.monotonic() - started
        result = TickResult(
            tick_time=tick_time,
            asked=len(ids),
            ok=ok,
            failed=len(failed),
            rows=rows,
            duration=duration,
            skipped_before=self._pending_skipped,
            charging=charging,
            power_kw=power,
            failures=failed,
            statuses=statuses,
            offline=offline,
        )
        self._pending_skipped = 0
        self._prefetched, self._prefetch_broken = {}, set()
        await self._put(self._cycle_rows(result, changes))
        self._record(result)
        if self._on_tick is not None:
            maybe = self._on_tick(result)
            if maybe is not None:
                await maybe
        return result

    async def _poll_all(
        self, ids: list[str], tick_time: datetime, deadline: float
    ) -> list[_Answer | str]:
        """Every charger at once; the polls end together.  A refused login (or a bug) in one
        cancels the others, so none goes on putting rows on the queue after the tick ended
        (during the shutdown it causes)."""
        try:
            async with asyncio.TaskGroup() as group:
                polls = [group.create_task(self._poll(cp, tick_time, deadline)) for cp in ids]
        except BaseExceptionGroup as failed:
            # callers handle one error (e.g. AuthenticationError): the first that ended it
            raise failed.exceptions[0] from None
        return [poll.result() for poll in polls]

    def remember_tick_time(self, stored: datetime) -> None:
        """A tick time the database holds (e.g. its latest at the start): a tick not after it
        is out of order."""
        if self._latest_tick is None or stored > self._latest_tick:
            self._latest_tick = stored

    def _check_tick_time(self, tick_time: datetime) -> None:
        """Warn (once per step) when the wall clock put this tick at or before one stored: the
        rows of a second already stored would be skipped as duplicates with no other trace."""
        latest = self._latest_tick
        if latest is not None and tick_time <= latest:
            self._metrics.ticks_out_of_order.inc()
            if not self._out_of_order:
                self._out_of_order = True
                self._log.warning(
                    "tick time is not after the latest tick stored: the wall clock stepped "
                    "back (check NTP); rows at a time already stored are skipped as "
                    "duplicates (charged_rows_duplicate_total)",
                    tick=f"{tick_time:%Y-%m-%dT%H:%M:%S}Z",
                    latest_stored=f"{latest:%Y-%m-%dT%H:%M:%S}Z",
                )
            return
        if self._out_of_order:
            self._out_of_order = False
            self._log.info("tick times are after the latest stored again")
        self._latest_tick = tick_time

    async def _discover_if_due(self, deadline: float) -> None:
        due = (
            self._ticks_since_discovery is None
            or self._ticks_since_discovery + 1 >= self._rediscover_every
            or not self._charge_points
        )
        if not due:
            assert self._ticks_since_discovery is not None
            self._ticks_since_discovery += 1
            return
        try:
            owned = await self._client.owned_chargepoints(deadline=deadline)
        except AuthenticationError:
            raise
        except ChargeAmpsError as exc:
            if not self._charge_points:
                raise
            # Keep polling the chargers we know; try the list again next tick.
            self._log.warning(
                "could not refresh the list of owned chargers; keeping the old one",
                error=str(exc),
                chargers=len(self._charge_points),
            )
            return
        chosen = [cp for cp in owned if not self._allow or cp.id in self._allow]
        if not chosen:
            hint = " that are in collector.charge_points" if self._allow else ""
            raise NoChargersError(f"the account owns no chargers{hint}; nothing to poll")
        if self._allow:
            missing = sorted(self._allow - {cp.id for cp in owned})
            if missing:
                self._log.warning(
                    "charge points in collector.charge_points are not owned", missing=missing
                )
        before = set(self._charge_points)
        self._charge_points = [cp.id for cp in chosen]
        self._availability.keep_only(self._charge_points)
        self._ticks_since_discovery = 0
        self._organisation_refused = False  # try the organisation call again
        if set(self._charge_points) != before:
            self._log.info("chargers discovered", chargers=len(self._charge_points))
        await self._put(charge_point_rows(chosen))

    async def _poll(self, cp_id: str, tick_time: datetime, deadline: float) -> _Answer | str:
        """Rows of one charger queued → what it answered; a failure → the reason."""
        try:
            status = await self._status(cp_id, deadline)
        except AuthenticationError:
            raise
        except PayloadError:
            self._count_polled("malformed")
            return "malformed payload"
        except ChargeAmpsError as exc:
            self._count_polled("failed")
            return type(exc).__name__ + (f": {exc}"[:200] if str(exc) else "")
        if is_offline(status):
            # an answer, so not a failure; but no reading either, so not ok
            self._count_polled("offline")
            await self._put(offline_rows(status))
            return _Answer(status, offline=True)
        self._count_polled("ok")
        batch = status_rows(status, tick_time)
        await self._put(batch)
        charging = sum(1 for c in status.connector_statuses if c.charging)
        power = sum(c.charging_power_kw or 0.0 for c in status.connector_statuses)
        return _Answer(status, count_rows(batch), charging, power)

    def _count_polled(self, result: str) -> None:
        counter = self._polled.get(result)
        if counter is None:
            counter = self._polled[result] = self._metrics.chargers_polled.labels(result)
        counter.inc()

    async def _prefetch(self, ids: Sequence[str], started: float, deadline: float) -> None:
        """Every charger's status in one organisation call, when configured; on failure the
        chargers are asked one by one (with the rest of the tick's time: the call gets half
        of it at most)."""
        org = self._organisation
        if org is None or self._organisation_refused or not ids:
            return
        try:
            statuses, broken = await self._client.organisation_statuses(
                org, chargers=len(ids), deadline=started + (deadline - started) / 2
            )
        except AuthenticationError:
            raise
        except ChargeAmpsError as exc:
            self._metrics.organisation_polls.labels("failed").inc()
            refused = isinstance(exc, ApiError)  # 4xx: wrong id, no right to it, or v4
            if refused:
                self._organisation_refused = True
            if not self._organisation_failing or refused:
                self._log.warning(
                    "organisation statuses failed; asking each charger instead"
                    + (" until the next discovery of chargers" if refused else ""),
                    organisation_id=org,
                    error=str(exc)[:200],
                    hint="check api.organisation_id (and api.version: v5)" if refused else None,
                )
            self._organisation_failing = True
            return
        self._metrics.organisation_polls.labels("ok").inc()
        if self._organisation_failing:
            self._log.info("organisation statuses answer again", organisation_id=org)
            self._organisation_failing = False
        wanted = set(ids)
        self._prefetched = {s.id: s for s in statuses if s.id in wanted}
        self._prefetch_broken = set(broken) & wanted

    async def _status(self, cp_id: str, deadline: float) -> ChargePointStatus:
        """The charger's status: from this tick's organisation call, or asked on its own."""
        found = self._prefetched.get(cp_id)
        if found is not None:
            return found
        if cp_id in self._prefetch_broken:
            raise PayloadError(f"organisation statuses: the entry of {cp_id} is malformed")
        return await self._client.status(cp_id, deadline=deadline)

    async def _put(self, batch: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        # A full queue makes us wait here: backpressure, never a silent drop.
        await self._queue.put(batch)
        for table, rows in batch.items():
            counter = self._rows_queued.get(table)
            if counter is None:
                counter = self._rows_queued[table] = self._metrics.rows_queued.labels(table)
            counter.inc(len(rows))
        self._metrics.queue_depth.set(self._queue.qsize())

    def _cycle_rows(
        self, result: TickResult, changes: list[dict[str, Any]]
    ) -> dict[str, list[dict[str, Any]]]:
        batch: dict[str, list[dict[str, Any]]] = {
            "poll_cycle": [
                {
                    "tick_time": result.tick_time,
                    "chargers_asked": result.asked,
                    "chargers_ok": result.ok,
                    "chargers_failed": result.failed,
                    "chargers_offline": result.offline,
                    "rows": result.rows,
                    "duration_s": round(result.duration, 3),
                    "skipped_ticks": result.skipped_before,
                }
            ]
        }
        if result.failures:
            batch["poll_gap"] = [
                {"tick_time": result.tick_time, "charge_point_id": cp, "reason": reason[:256]}
                for cp, reason in result.failures.items()
            ]
        if changes:
            batch["charge_point_availability"] = changes
        return batch

    def _record(self, result: TickResult) -> None:
        self.ticks_run += 1
        outcome = "ok" if not result.failed else ("failed" if not result.ok else "partial")
        self._metrics.ticks.labels(outcome).inc()
        self._metrics.tick_duration.observe(result.duration)
        if result.ok or result.offline:  # the vendor answered for some charger
            self._metrics.last_tick_success.set(self._clock.time())
        self._metrics.vendor_outage.set(1 if result.vendor_outage else 0)
        failing = set(result.failures)
        recovered = self._reported_failures - failing
        if recovered:
            self._log.info("chargers answering again", chargers=sorted(recovered))
        self._reported_failures = failing
        self._log.info(
            "tick",
            tick=result.tick_time.isoformat() + "Z",
            ok=result.ok,
            failed=result.failed,
            offline=result.offline,
            rows=result.rows,
            duration_s=round(result.duration, 3),
            **({"skipped": result.skipped_before} if result.skipped_before else {}),
        )
