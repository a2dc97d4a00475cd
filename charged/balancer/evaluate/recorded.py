"""A scenario from what charged recorded: one visit per charging session of a day.

Each charging_session row that began on the day (UTC) is one visit, on its own charger and
connector:

- ``arrival``: the session's start (the vendor's once reconciled, else what the polls showed;
  the first poll if neither); ``departure``: its end, or its last poll while it still runs
  (the car was plugged in at least that long).
- ``energy_kwh``: the session's energy.  What a car *took*, so for a car that left before it
  was full it is less than it would have taken: a scenario from a day that was held back by
  the fuses asks for no more than that day delivered.
- ``phases``: the phases the session's polls saw carrying the charge (the tracker's
  ``phases``, else counted from the measurements, else the session type); a car seen on two
  phases is written as three, the scenario format knowing only 1 and 3.
- ``max_current``: the highest current per phase any of its polls measured, rounded up to
  0.1 A.  Again what the car was seen to draw: a car never allowed its own maximum is written
  at the most it was allowed.  A car the polls never saw draw (full before the first poll,
  or never charging) gets the median of the day's cars on as many phases that did (32 A if
  none did): a guess, counted in :attr:`RecordedDay.never_drew`.
- ``follows_limit``: 1 (the polls alone cannot tell a car that draws half its limit from one
  whose limit is low).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from charged.balancer.evaluate.scenario import MAX_CURRENT, Scenario, Visit
from charged.sessions.derive import PHASE_MIN_CURRENT_A, Poll, detect_phases
from charged.sessions.store import load_polls
from charged.storage.schema import charging_session

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordedDay:
    """The scenario and what the reader should know about how it was made."""

    scenario: Scenario
    still_plugged: int  # visits whose departure is their last poll (running at the end)
    left_out_running_into: int  # sessions begun before the day and plugged in during it
    left_out_too_short: int  # sessions with no time between arrival and departure
    never_drew: int  # visits whose max current is the day's median: none was measured


async def recorded_day(conn: AsyncConnection, day: datetime, *, name: str) -> RecordedDay:
    """The visits of the sessions that began on ``day`` (naive UTC midnight)."""
    cs = charging_session
    until = day + timedelta(days=1)
    begun = (
        await conn.execute(
            select(cs)
            .where(cs.c.start_time >= day, cs.c.start_time < until)
            .order_by(cs.c.start_time, cs.c.charge_point_id, cs.c.connector_id)
        )
    ).all()
    running_into = (
        await conn.execute(
            select(cs.c.id).where(
                cs.c.start_time < day, or_(cs.c.end_time.is_(None), cs.c.end_time >= day)
            )
        )
    ).all()
    visits: list[Visit] = []
    unseen: list[Visit] = []  # never seen drawing: max current still to be guessed
    still_plugged = too_short = 0
    for record in begun:
        row = dict(record._mapping)
        key = (str(row["charge_point_id"]), int(row["connector_id"]), int(row["session_id"]))
        first = row["first_poll"]
        polls = await load_polls(conn, key, first if isinstance(first, datetime) else None)
        visit = visit_of(row, polls)
        if visit is None:
            too_short += 1
            continue
        still_plugged += row["end_time"] is None
        (visits if _peak_current(polls) is not None else unseen).append(visit)
    for phases in (1, 3):
        seen = [v.max_current for v in visits if v.phases == phases]
        guess = statistics.median(seen) if seen else MAX_CURRENT
        visits += [replace(v, max_current=guess) for v in unseen if v.phases == phases]
    visits.sort(key=lambda v: (v.arrival, v.charger or "", v.connector or 0))
    return RecordedDay(
        scenario=Scenario(visits=tuple(visits), tz=UTC, name=name),
        still_plugged=still_plugged,
        left_out_running_into=len(running_into),
        left_out_too_short=too_short,
        never_drew=len(unseen),
    )


def visit_of(row: Row, polls: list[Poll]) -> Visit | None:
    """The visit of one charging_session row and its polls; None if it has no duration."""
    start = _time(row.get("start_time")) or _time(row.get("first_poll"))
    end = _time(row.get("end_time")) or _time(row.get("last_poll"))
    if start is None or end is None or end <= start:
        return None
    energy = next(
        (
            float(v)
            for v in (
                row.get("energy_kwh"),
                row.get("observed_energy_kwh"),
                row.get("energy_from_power_kwh"),
            )
            if v is not None
        ),
        0.0,
    )
    phases = row.get("phases") or detect_phases(polls) or _phases_of_type(row.get("session_type"))
    peak = _peak_current(polls)
    max_current = MAX_CURRENT if peak is None else min(MAX_CURRENT, math.ceil(peak * 10) / 10)
    return Visit(
        row=0,
        arrival=start,
        departure=end,
        energy_kwh=max(0.0, energy),
        phases=1 if phases == 1 else 3,
        max_current=max_current,
        charger=str(row["charge_point_id"]),
        connector=int(row["connector_id"]),
    )


def _peak_current(polls: list[Poll]) -> float | None:
    """The highest current per phase measured while charging; None if none worth the name."""
    peak = max(
        (current for p in polls if p.charging for current, _ in p.phases.values()),
        default=0.0,
    )
    return peak if peak >= PHASE_MIN_CURRENT_A else None


def _phases_of_type(session_type: object) -> int:
    return 1 if session_type in ("OnePhase", "Schuko") else 3


def _time(value: object) -> float | None:
    """A stored naive-UTC DATETIME as epoch seconds."""
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC).timestamp()
