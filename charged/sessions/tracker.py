"""SessionTracker: keeps charging_session up to date beside the collector.

Every ``interval`` seconds it folds the connector_status rows stored since its last pass into
sessions (:meth:`SessionTracker.update`); every ``reconcile_every`` seconds it asks the
vendor's chargingsessions endpoint for each charger and stores its start, end and energy as
the authoritative values (:meth:`SessionTracker.reconcile`).  It reads only what the writer
committed, so it knows nothing of the collector's queue and can run in another process too.

Where it resumes: rows are taken in ``connector_status.id`` order, not by poll time, so rows
that arrive late (a spool replayed after a database outage) are still folded in.  That relies
on ids growing in commit order, which holds with the collector's single writer.  After a
restart it resumes after the highest row id any stored session was derived from; the rows
after it are folded in again, which changes nothing (upserts on the natural key).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from charged.chargeamps.errors import ChargeAmpsError
from charged.chargeamps.models import ChargingSession
from charged.clock import Clock, SystemClock, sleep_or_stop
from charged.metrics import Metrics
from charged.sessions.derive import SessionFacts, VendorSession, derive_session
from charged.sessions.store import (
    SessionKey,
    StoredSession,
    load_polls,
    naive_utc,
    next_poll_after,
    next_session_start,
    open_sessions,
    resume_after,
    sessions_running_into,
    status_rows_after,
    stored_sessions,
    upsert_facts,
    upsert_vendor,
)
from charged.storage.schema import charge_point_status, charging_session

# The power integral and the energy counter disagree by more than this share (and by more
# than MISMATCH_MIN_KWH) on a session without gaps: counted and logged, as a sign of a
# misreported voltage or phase.
MISMATCH_SHARE = 0.10
MISMATCH_MIN_KWH = 0.2
# How far the vendor's clock may be from ours when its session start bounds a search.
VENDOR_CLOCK_SKEW = timedelta(hours=1)


class SessionSource(Protocol):
    """The part of ChargeAmpsClient the tracker uses."""

    async def charging_sessions(
        self,
        cp_id: str,
        connector_id: int | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        max_count: int | None = None,
        deadline: float | None = None,
    ) -> list[ChargingSession]: ...


@dataclass(frozen=True)
class SessionMetrics:
    sessions_written: Counter
    reconciles: Counter
    energy_mismatches: Counter


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, SessionMetrics] = weakref.WeakKeyDictionary()


def session_metrics(metrics: Metrics) -> SessionMetrics:
    """The tracker's metrics on the process registry (made once per registry)."""
    registry = metrics.registry
    found = _METRICS.get(registry)
    if found is None:
        found = SessionMetrics(
            sessions_written=Counter(
                "charged_sessions_written",
                "charging_session rows written (derived from polls or reconciled)",
                ["source"],
                registry=registry,
            ),
            reconciles=Counter(
                "charged_session_reconciles",
                "Per-charger chargingsessions requests by outcome",
                ["result"],
                registry=registry,
            ),
            energy_mismatches=Counter(
                "charged_session_energy_mismatches",
                "Finished sessions whose ∑ I×V×Δt and energy counter disagree",
                registry=registry,
            ),
        )
        _METRICS[registry] = found
    return found


class SessionTracker:
    def __init__(
        self,
        engine: AsyncEngine,
        client: SessionSource | None,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        interval: float = 30.0,
        update_every: float | None = None,
        reconcile_every: float = 900.0,
        lookback: float = 7 * 86400.0,
        batch_rows: int = 5000,
        logger: Any = None,
    ) -> None:
        """``interval`` is the collector's poll interval (what a gap is measured against);
        ``update_every`` how often :meth:`run` folds new polls in (default: every poll)."""
        update_every = interval if update_every is None else update_every
        if interval <= 0 or update_every <= 0 or reconcile_every <= 0 or lookback <= 0:
            raise ValueError(
                "interval, update_every, reconcile_every and lookback must be positive"
            )
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
        self._engine = engine
        self._client = client
        self._clock = clock or SystemClock()
        self._metrics = session_metrics(metrics or Metrics())
        self._interval = interval
        self._update_every = update_every
        self._reconcile_every = reconcile_every
        self._lookback = timedelta(seconds=lookback)
        self._batch_rows = batch_rows
        self._log = logger or structlog.get_logger("charged.sessions")
        self._after: int | None = None  # connector_status.id folded in so far
        self._reconciled_until: dict[str, datetime] = {}
        self._failing: set[str] = set()
        self._chargers_known = 0  # chargers the last reconciliation found stored

    # ---------------------------------------------------------------- the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Update every ``update_every`` s, reconcile every ``reconcile_every`` s, until ``stop``.

        A failing database or vendor API is logged once when it starts failing and once when
        it recovers; the loop goes on.  Cancellation is never swallowed.
        """
        next_reconcile = self._clock.monotonic()
        while not stop.is_set():
            started = self._clock.monotonic()
            await self._guarded("update", self.update)
            if self._client is not None and self._clock.monotonic() >= next_reconcile:
                await self._guarded("reconcile", self.reconcile)
                if self._chargers_known:  # else no charger is stored yet: try next pass
                    next_reconcile = self._clock.monotonic() + self._reconcile_every
            await sleep_or_stop(
                self._clock, self._update_every - (self._clock.monotonic() - started), stop
            )

    async def _guarded(self, what: str, step: Callable[[], Awaitable[int]]) -> None:
        try:
            await step()
        except Exception as exc:
            if what not in self._failing:
                self._failing.add(what)
                self._log.warning(
                    f"session {what} failing; retrying every pass",
                    error=f"{type(exc).__name__}: {str(exc)[:200]}",
                )
            return
        if what in self._failing:
            self._failing.discard(what)
            self._log.info(f"session {what} recovered")

    # ---------------------------------------------------------------- from the polls

    async def update(self) -> int:
        """Fold the connector_status rows stored since the last pass into sessions.

        The new rows are read in batches (ids and keys only), then every session they touch
        is refreshed once, in one transaction: refreshing per batch re-derived a long session
        once per batch it appeared in, which at 10,000 chargers kept a core busy.  Returns
        how many session rows were written.
        """
        if self._after is None:
            async with self._engine.connect() as conn:
                self._after = await resume_after(conn)
        earliest: dict[SessionKey, datetime] = {}
        connectors: set[tuple[str, int]] = set()
        last_id = self._after
        async with self._engine.connect() as conn:
            while True:
                batch = await status_rows_after(conn, last_id, self._batch_rows)
                for ref in batch.refs:
                    connectors.add((ref.charge_point_id, ref.connector_id))
                    if ref.session_id is None:
                        continue
                    key = (ref.charge_point_id, ref.connector_id, ref.session_id)
                    if key not in earliest or ref.time < earliest[key]:
                        earliest[key] = ref.time
                # paged on the ids read, not on the rows kept: a batch of rows that name no
                # connector neither ends the pass early nor holds it at the same place
                if batch.last_id is not None:
                    last_id = batch.last_id
                if batch.read < self._batch_rows:
                    break
        if last_id == self._after:
            return 0
        async with self._engine.begin() as conn:
            # a running session ends with a row that no longer carries its id
            keys = set(earliest) | {
                k for k in await open_sessions(conn) if (k[0], k[1]) in connectors
            }
            stored = await stored_sessions(conn, keys)
            for key in sorted(keys):
                await self._refresh(conn, key, stored.get(key), earliest.get(key))
        self._after = last_id  # only once the sessions are committed
        if keys:
            self._metrics.sessions_written.labels("polls").inc(len(keys))
        return len(keys)

    async def _refresh(
        self,
        conn: AsyncConnection,
        key: SessionKey,
        stored: StoredSession | None,
        earliest: datetime | None,
    ) -> SessionFacts:
        bounds = [t for t in (stored.first_poll if stored else None, earliest) if t is not None]
        if not bounds and stored is not None and stored.vendor and stored.vendor.start:
            # never polled yet: its polls, if any, cannot come before the vendor's start
            bounds = [stored.vendor.start - VENDOR_CLOCK_SKEW]
        polls = await load_polls(conn, key, min(bounds) if bounds else None)
        next_poll = await next_poll_after(conn, key[0], key[1], polls[-1].time) if polls else None
        next_start = await next_session_start(conn, key, polls[-1].time) if polls else None
        vendor = stored.vendor if stored else None
        facts = derive_session(
            polls,
            next_poll=next_poll,
            next_start=next_start,
            vendor=vendor,
            interval=self._interval,
        )
        await upsert_facts(conn, key, facts, self._now())
        if facts.end_time is not None and (stored is None or stored.end_time is None):
            self._check_energy(key, facts)
        return facts

    def _check_energy(self, key: SessionKey, facts: SessionFacts) -> None:
        derived, counter = facts.energy_from_power_kwh, facts.observed_energy_kwh
        if derived is None or counter is None or facts.gap_count:
            return
        difference = abs(derived - counter)
        if difference > MISMATCH_MIN_KWH and difference > MISMATCH_SHARE * max(counter, derived):
            self._metrics.energy_mismatches.inc()
            self._log.warning(
                "session energy: current × voltage disagrees with the energy counter",
                charge_point=key[0],
                connector=key[1],
                session=key[2],
                from_power_kwh=round(derived, 3),
                counter_kwh=round(counter, 3),
            )

    # ---------------------------------------------------------------- from the vendor

    async def reconcile(self) -> int:
        """Store the vendor's start, end and energy for recent sessions of every charger.

        Asks each known charger for its sessions since the earliest one not yet confirmed
        (or since the last pass), one charger at a time: this is the slow, polite path.
        Returns how many sessions were reconciled.
        """
        if self._client is None:
            return 0
        now = self._now()
        floor = now - self._lookback
        cs = charging_session
        async with self._engine.connect() as conn:
            chargers = list(
                (await conn.execute(select(charge_point_status.c.id).order_by("id"))).scalars()
            )
            pending = {
                r.charge_point_id: r.since
                for r in await conn.execute(
                    select(cs.c.charge_point_id, func.min(cs.c.start_time).label("since"))
                    .where(
                        (cs.c.reconciled_at.is_(None) | cs.c.vendor_end.is_(None))
                        & (cs.c.start_time >= floor)
                    )
                    .group_by(cs.c.charge_point_id)
                )
            }
        self._chargers_known = len(chargers)
        margin = timedelta(seconds=4 * self._interval)
        reconciled = 0
        for cp in chargers:
            candidates = [
                t
                for t in (pending.get(cp), self._reconciled_until.get(cp, now - 2 * margin))
                if t is not None
            ]
            since = max(floor, min(candidates) - margin)
            try:
                sessions = await self._client.charging_sessions(cp, start=since, end=now)
            except ChargeAmpsError as exc:
                self._metrics.reconciles.labels("failed").inc()
                self._log.info("chargingsessions not read", charge_point=cp, error=str(exc))
                continue
            self._metrics.reconciles.labels("ok").inc()
            reconciled += await self._store_vendor(sessions, now)
            self._reconciled_until[cp] = now
        if reconciled:
            self._metrics.sessions_written.labels("vendor").inc(reconciled)
        return reconciled

    async def _store_vendor(self, sessions: list[ChargingSession], now: datetime) -> int:
        if not sessions:
            return 0
        async with self._engine.begin() as conn:
            keys = [(s.charge_point_id, s.connector_id, s.id) for s in sessions]
            for key, session in zip(keys, sessions, strict=True):
                vendor = VendorSession(
                    start=naive_utc(session.start_time),
                    end=naive_utc(session.end_time),
                    energy_kwh=session.total_consumption_kwh,
                    session_type=session.session_type,
                    rfid=session.rfid,
                    user_id=session.user_id,
                )
                await upsert_vendor(conn, key, vendor, now)
            # and the sessions they show ended earlier than the polls could tell
            before = [
                earlier
                for key, session in zip(keys, sessions, strict=True)
                if session.start_time is not None
                for earlier in await sessions_running_into(
                    conn, key, naive_utc(session.start_time) or session.start_time
                )
            ]
            stored = await stored_sessions(conn, [*keys, *before])
            for key in [*keys, *before]:
                await self._refresh(conn, key, stored.get(key), None)
        return len(sessions)

    def _now(self) -> datetime:
        now = naive_utc(self._clock.utcnow())
        assert now is not None
        return now
