"""A charger's offline spans, read from charge_point_availability (no matplotlib here).

The table holds each change of a charger's status with the first tick that showed it, so a
span runs from the tick that first showed Offline to the tick that first showed it online
again.  The charger went offline somewhere in the interval before the span's start, and came
back in the one before its end: the span is what the polls can vouch for.  A span whose end
no tick has shown yet is open (``end`` None): the charger was still offline when last asked,
or the collector has not asked since.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from charged.chargeamps.states import is_charge_point_offline
from charged.storage.schema import charge_point_availability


@dataclass(frozen=True, slots=True)
class OfflineSpan:
    charge_point_id: str
    start: datetime  # naive UTC: the first tick that showed it Offline
    end: datetime | None  # the first tick that showed it online again; None: not yet

    def overlaps(self, since: datetime | None, until: datetime | None) -> bool:
        return (until is None or self.start < until) and (
            since is None or self.end is None or self.end > since
        )

    def seconds(self, now: datetime) -> float:
        """How long it lasted (an open span: up to ``now``)."""
        return ((self.end or now) - self.start).total_seconds()


def spans_from_changes(changes: Iterable[tuple[str, datetime, str]]) -> list[OfflineSpan]:
    """(charger, tick_time, status) rows in time order per charger → its offline spans.

    Two rows in a row with the same state (a restart records what it first sees) continue
    the span rather than start a new one."""
    spans: list[OfflineSpan] = []
    open_since: dict[str, datetime] = {}
    for cp_id, moment, status in changes:
        if is_charge_point_offline(status):
            open_since.setdefault(cp_id, moment)
        elif cp_id in open_since:
            spans.append(OfflineSpan(cp_id, open_since.pop(cp_id), moment))
    spans.extend(OfflineSpan(cp, start, None) for cp, start in open_since.items())
    spans.sort(key=lambda s: (s.start, s.charge_point_id))
    return spans


async def offline_spans(
    conn: AsyncConnection,
    *,
    charger: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[OfflineSpan]:
    """The offline spans overlapping [since, until), of one charger or all, oldest first.

    Only changes are stored (a few rows per charger and day), so every change before
    ``until`` is read: a span begun long before ``since`` is still found."""
    t = charge_point_availability.c
    query = select(t.charge_point_id, t.tick_time, t.status)
    if charger is not None:
        query = query.where(t.charge_point_id == charger)
    if until is not None:
        query = query.where(t.tick_time < until)
    rows: Any = await conn.execute(query.order_by(t.charge_point_id, t.tick_time, t.id))
    changes = [(r.charge_point_id, r.tick_time, r.status) for r in rows]
    return [s for s in spans_from_changes(changes) if s.overlaps(since, until)]
