"""The numbers behind the figures, read from the database (no matplotlib here).

Every series is a list of naive-UTC poll times with one value per time; ``None`` is a value
that was not measured.  Power is taken as in the sessions: ∑ current × voltage over the phases
of a poll, the vendor's chargingPowerKw when a poll has no measurements.  A day of the whole
garage is aggregated by the database (one row per tick and phase), not in Python.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from charged.sessions.derive import PHASES
from charged.sessions.store import load_polls
from charged.storage.rollup import BUCKET, bucket_of
from charged.storage.schema import (
    charging_session,
    connector_status,
    connector_status_rollup,
    control_action,
    measurement,
    measurement_rollup,
    poll_cycle,
)

Row = dict[str, Any]
QUARTER_H = BUCKET.total_seconds() / 3600.0  # a rollup's quarter hour, in hours
LIMIT_FIELD = "maxCurrent"


@dataclass
class SessionSeries:
    session: Row  # the charging_session row
    times: list[datetime] = field(default_factory=list)
    energy_kwh: list[float | None] = field(default_factory=list)
    power_w: list[float | None] = field(default_factory=list)
    phase_currents: dict[str, list[float | None]] = field(default_factory=dict)
    # True: the raw polls are gone (retention.raw_days) and the series is the rollups' per
    # quarter hour (times are the quarter hours' starts; see session_series)
    from_rollups: bool = False


@dataclass
class GarageSeries:
    """The garage at each tick.  At a tick where a charger was not read the totals are not
    known: ``power_w`` and ``phase_currents`` are None there, and ``partial_power_w`` holds
    what the chargers that were read drew (None at every complete tick)."""

    times: list[datetime]
    power_w: list[float | None]
    phase_currents: dict[str, list[float | None]]
    failed_ticks: list[datetime]  # ticks where at least one charger was not read
    partial_power_w: list[float | None] = field(default_factory=list)
    chargers_failed: dict[datetime, tuple[int, int]] = field(
        default_factory=dict
    )  # (failed, asked)


async def find_sessions(
    conn: AsyncConnection,
    *,
    charger: str | None = None,
    connector: int | None = None,
    session_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Row]:
    """charging_session rows matching the filters, overlapping [since, until), oldest first."""
    cs = charging_session
    query = select(cs)
    if charger is not None:
        query = query.where(cs.c.charge_point_id == charger)
    if connector is not None:
        query = query.where(cs.c.connector_id == connector)
    if session_id is not None:
        query = query.where(cs.c.session_id == session_id)
    if until is not None:
        query = query.where(cs.c.start_time < until)
    if since is not None:
        query = query.where(or_(cs.c.end_time.is_(None), cs.c.end_time >= since))
    result = await conn.execute(query.order_by(cs.c.start_time, cs.c.id))
    return [dict(r._mapping) for r in result]


async def session_series(conn: AsyncConnection, session: Row) -> SessionSeries:
    """The session's polls: energy counter, power and per-phase currents at each.

    The polls are read and their power taken exactly as the session's own figures are
    (:func:`~charged.sessions.store.load_polls`, :attr:`Poll.power_w`): ∑ current ×
    voltage, the vendor's ``chargingPowerKw`` on a poll without measurements.  A poll that is
    not charging and has neither is 0 W (the vendor measures only while charging); a charging
    poll with neither is unknown (None), drawn as a break, never as 0.

    A session whose polls the retention deleted (``retention.raw_days``) is read from the
    rollups instead, per quarter hour from the one of its first poll to the one of its
    last: power is the quarter hour's energy over its 15 minutes, a phase's current its mean
    over the connector's polls of that quarter hour, and the energy at each quarter hour's
    start the sum of the quarter hours before it (measured, not the vendor's counter).  The
    first and last quarter hours may hold a little of the connector's previous or next
    session: the rollups do not tell sessions apart.
    """
    series = SessionSeries(session)
    first, last = session["first_poll"], session["last_poll"]
    if first is None or last is None:
        return series
    key = (session["charge_point_id"], int(session["connector_id"]), int(session["session_id"]))
    polls = [p for p in await load_polls(conn, key, first) if p.time <= last]
    series.phase_currents = {p: [] for p in PHASES}
    if not polls:
        return await _session_from_rollups(conn, series, first, last)
    for poll in polls:
        series.times.append(poll.time)
        series.energy_kwh.append(poll.energy_kwh)
        power = poll.power_w
        series.power_w.append(0.0 if power is None and not poll.charging else power)
        for p in PHASES:
            if p in poll.phases:
                current: float | None = poll.phases[p][0]
            elif poll.phases or not poll.charging:
                current = 0.0  # measured on other phases only, or nothing flowing
            else:
                current = None  # charging, but no phase was measured
            series.phase_currents[p].append(current)
    return series


async def _session_from_rollups(
    conn: AsyncConnection, series: SessionSeries, first: datetime, last: datetime
) -> SessionSeries:
    cp, connector = series.session["charge_point_id"], int(series.session["connector_id"])
    m, c = measurement_rollup.c, connector_status_rollup.c
    since = bucket_of(first)
    polled = await conn.execute(
        select(c.bucket_start, func.sum(c.polls).label("polls"))
        .where(
            c.charge_point_id == cp,
            c.connector_id == connector,
            c.bucket_start >= since,
            c.bucket_start <= last,
        )
        .group_by(c.bucket_start)
    )
    polls = {r.bucket_start: int(r.polls) for r in polled}
    measured = await conn.execute(
        select(m.bucket_start, m.phase, m.samples, m.current_sum, m.energy_wh).where(
            m.charge_point_id == cp,
            m.connector_id == connector,
            m.bucket_start >= since,
            m.bucket_start <= last,
        )
    )
    wh: dict[datetime, float] = {}
    amps: dict[datetime, dict[str, float]] = {}
    for r in measured:
        wh[r.bucket_start] = wh.get(r.bucket_start, 0.0) + float(r.energy_wh)
        # the mean over the quarter hour's polls (a poll without this phase drew 0 A on it)
        over = max(polls.get(r.bucket_start, 0), int(r.samples)) or 1
        amps.setdefault(r.bucket_start, {})[r.phase] = float(r.current_sum) / over
    series.from_rollups = True
    energy_kwh = 0.0
    for quarter in sorted(set(polls) | set(wh)):
        series.times.append(quarter)
        series.energy_kwh.append(energy_kwh)
        series.power_w.append(wh.get(quarter, 0.0) / QUARTER_H)
        for p in PHASES:
            series.phase_currents[p].append(amps.get(quarter, {}).get(p, 0.0))
        energy_kwh += wh.get(quarter, 0.0) / 1000.0
    return series


async def current_limits(
    conn: AsyncConnection, charger: str, connector: int, until: datetime
) -> list[tuple[datetime | None, float | None]]:
    """The max-current limit on the connector as the control_action audit tells it.

    Returns (time the limit took effect, amperes or None for "no limit") in time order; the
    first entry's time is None when it is the state before the first audited change (read
    from that change's old value).  The charge point's own limit caps every connector, so the
    effective limit is the lower of the two.  Empty: no change was ever audited.
    """
    ca = control_action
    result = await conn.execute(
        select(ca.c.created, ca.c.action, ca.c.old_value, ca.c.new_value)
        .where(
            ca.c.charge_point_id == charger,
            ca.c.field == LIMIT_FIELD,
            ca.c.result.in_(("ok", "unchanged")),
            ca.c.created <= until,
            or_(
                and_(ca.c.action == "connector_settings", ca.c.connector_id == connector),
                ca.c.action == "chargepoint_settings",
            ),
        )
        .order_by(ca.c.created, ca.c.id)
    )
    rows = list(result)
    if not rows:
        return []
    state: dict[str, float | None] = {"connector_settings": None, "chargepoint_settings": None}
    for action in state:
        before = next((r.old_value for r in rows if r.action == action), None)
        state[action] = _amperes(before)
    steps: list[tuple[datetime | None, float | None]] = [(None, _effective(state))]
    for r in rows:
        state[r.action] = _amperes(r.new_value)
        steps.append((r.created, _effective(state)))
    return steps


def _amperes(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return float(value) if isinstance(value, int | float) else None


def _effective(state: dict[str, float | None]) -> float | None:
    limits = [v for v in state.values() if v is not None]
    return min(limits) if limits else None


async def garage_series(conn: AsyncConnection, since: datetime, until: datetime) -> GarageSeries:
    """Total power and per-phase current of every connector at every tick in [since, until);
    per quarter hour from the rollups where the retention deleted the raw polls."""
    if await _raw_polls_gone(conn, since, until):
        return await _garage_from_rollups(conn, since, until)
    m = measurement
    sums = await conn.execute(
        select(
            m.c.date_created,
            m.c.phase,
            func.sum(m.c.current).label("amps"),
            func.sum(m.c.current * m.c.voltage).label("watts"),
        )
        .where(m.c.date_created >= since, m.c.date_created < until)
        .group_by(m.c.date_created, m.c.phase)
    )
    watts: dict[datetime, float] = {}
    amps: dict[datetime, dict[str, float]] = {}
    for r in sums:
        watts[r.date_created] = watts.get(r.date_created, 0.0) + float(r.watts or 0.0)
        amps.setdefault(r.date_created, {})[r.phase] = float(r.amps or 0.0)
    # Ticks where nothing charged have no measurement rows: the tick list says they happened.
    pc = poll_cycle
    ticks = await conn.execute(
        select(pc.c.tick_time, pc.c.chargers_failed, pc.c.chargers_asked)
        .where(pc.c.tick_time >= since, pc.c.tick_time < until)
        .order_by(pc.c.tick_time)
    )
    tick_rows = list(ticks)
    times = sorted({r.tick_time for r in tick_rows} | set(watts))
    if not tick_rows:
        # a database from the original scripts has no poll_cycle: its status rows tell
        cs = connector_status
        polled = await conn.execute(
            select(cs.c.date_created)
            .where(cs.c.date_created >= since, cs.c.date_created < until)
            .distinct()
        )
        times = sorted({r.date_created for r in polled} | set(watts))
    failed = {
        r.tick_time: (r.chargers_failed, r.chargers_asked) for r in tick_rows if r.chargers_failed
    }

    def total(value: float, t: datetime) -> float | None:
        # a charger not read is not a charger drawing 0 W: the sum is unknown at that tick
        return None if t in failed else value

    return GarageSeries(
        times=times,
        power_w=[total(watts.get(t, 0.0), t) for t in times],
        phase_currents={p: [total(amps.get(t, {}).get(p, 0.0), t) for t in times] for p in PHASES},
        failed_ticks=sorted(failed),
        partial_power_w=[watts.get(t, 0.0) if t in failed else None for t in times],
        chargers_failed=failed,
    )


async def _raw_polls_gone(conn: AsyncConnection, since: datetime, until: datetime) -> bool:
    """No raw poll is stored in [since, until), but rollups are (retention.raw_days)."""
    cs, r = connector_status.c, measurement_rollup.c
    raw = await conn.scalar(
        select(cs.id).where(cs.date_created >= since, cs.date_created < until).limit(1)
    )
    if raw is not None:
        return False
    rolled = await conn.scalar(
        select(r.id).where(r.bucket_start >= since, r.bucket_start < until).limit(1)
    )
    return rolled is not None


async def _garage_from_rollups(
    conn: AsyncConnection, since: datetime, until: datetime
) -> GarageSeries:
    """The garage per quarter hour: mean power (the energy over the quarter hour) and the
    sum of each connector's mean current per phase."""
    r = measurement_rollup.c
    rows = await conn.execute(
        select(
            r.bucket_start,
            r.phase,
            func.sum(r.energy_wh).label("wh"),
            func.sum(r.current_sum / r.samples).label("amps"),
        )
        .where(r.bucket_start >= since, r.bucket_start < until)
        .group_by(r.bucket_start, r.phase)
    )
    quarter_h = QUARTER_H
    watts: dict[datetime, float] = {}
    amps: dict[datetime, dict[str, float]] = {}
    for row in rows:
        watts[row.bucket_start] = watts.get(row.bucket_start, 0.0) + float(row.wh) / quarter_h
        amps.setdefault(row.bucket_start, {})[row.phase] = float(row.amps)
    times = sorted(watts)
    return GarageSeries(
        times=times,
        power_w=[watts[t] for t in times],
        phase_currents={p: [amps[t].get(p, 0.0) for t in times] for p in PHASES},
        failed_ticks=[],
        partial_power_w=[None for _ in times],
    )
