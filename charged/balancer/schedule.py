"""Fuse limits over time: a weekly schedule per fuse, in the site's local time (pure).

A fuse's ``schedule`` (``site.fuse…schedule`` in the config) lists entries of weekdays and a
time-of-day range ``[start, end)`` with the limit in force then; outside every entry the
fuse's own ``limit`` is in force.  Days and times are wall-clock times in the site's time zone
(``site.timezone``): an instant is turned into the local weekday and minute of the day and
looked up.  Across a daylight-saving change this means: on the spring day the skipped hour
matches nothing (an entry ending at 02:30 ends at 03:00 local, the first instant after the
gap), and on the autumn day the repeated hour matches twice, once in each offset.

:func:`limits_at` is a pure function of the schedule and the time; the runtime asks it at
every tick and hands the result to :meth:`~charged.balancer.model.Site.with_limits`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from charged.balancer.model import PhaseCurrents


@dataclass(frozen=True, slots=True)
class Period:
    """One schedule entry: weekdays (0 Monday … 6 Sunday), minutes ``[start, end)``."""

    days: frozenset[int]
    start: int  # minutes after local midnight, included
    end: int  # minutes after local midnight, excluded (1440: the end of the day)
    limit: PhaseCurrents

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= 24 * 60:
            raise ValueError(f"a period runs forward within a day, got {self.start}–{self.end}")
        if not self.days or not self.days <= frozenset(range(7)):
            raise ValueError(f"days are 0 (Monday) to 6 (Sunday), got {sorted(self.days)}")

    def covers(self, weekday: int, minute: int) -> bool:
        return weekday in self.days and self.start <= minute < self.end


@dataclass(frozen=True, slots=True)
class LimitSchedule:
    """Per fuse name, its periods (validated not to overlap by the config)."""

    timezone: str = "UTC"
    periods: Mapping[str, tuple[Period, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.periods.values())


def local_slot(timezone: str, now: float) -> tuple[int, int]:
    """(weekday 0–6, minute of the day 0–1439) of epoch second ``now`` in ``timezone``."""
    local = datetime.fromtimestamp(now, ZoneInfo(timezone))
    return local.weekday(), local.hour * 60 + local.minute


def limits_at(schedule: LimitSchedule, now: float) -> dict[str, PhaseCurrents]:
    """Per fuse with an entry in force at ``now``, that entry's limit (A per site phase);
    a fuse absent from the answer keeps its own limit."""
    if not schedule:
        return {}
    weekday, minute = local_slot(schedule.timezone, now)
    out: dict[str, PhaseCurrents] = {}
    for fuse, periods in schedule.periods.items():
        for period in periods:
            if period.covers(weekday, minute):
                out[fuse] = period.limit
                break
    return out
