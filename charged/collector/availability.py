"""Each charger's availability as the polls see it: history rows, gauges and log lines.

The vendor's charge point ``status`` says whether the cloud reaches the charger (``Online``,
``Offline``).  ``charge_point_status`` keeps only the newest value, so this remembers the last
one per charger and turns every change into a ``charge_point_availability`` row.  A charger
that does not answer at all (a failed request) changes nothing here: that is a ``poll_gap``,
and what the charger was meanwhile is not known.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import structlog

from charged.chargeamps.models import ChargePointStatus
from charged.chargeamps.states import is_charge_point_offline
from charged.collector.rows import Row
from charged.metrics import Metrics


def is_offline(status: ChargePointStatus) -> bool:
    """The vendor says the charger is not connected to its cloud (whatever the casing)."""
    return is_charge_point_offline(status.status)


class Availability:
    """The last status seen of each charger polled by this process."""

    def __init__(self, metrics: Metrics, logger: Any = None) -> None:
        self._metrics = metrics
        self._log = logger or structlog.get_logger("charged.collector")
        self._known: dict[str, str] = {}
        # each charger's gauge children, looked up once: labels() is a locked lookup, and
        # two a charger each tick were the supervisor's largest metric cost (bench/README.md)
        self._online: dict[str, Any] = {}
        self._last_seen: dict[str, Any] = {}
        self._stamp: tuple[datetime | None, float] = (None, 0.0)  # a tick time, as a Unix time

    def observe(self, status: ChargePointStatus, tick_time: datetime) -> Row | None:
        """The answer of one charger at ``tick_time`` (naive UTC); a row when it changed.

        The first answer a run sees is a row too (``previous_status`` NULL), so the history
        says what each charger was from the first tick on, also after a restart."""
        cp_id, now = status.id, status.status[:32]
        offline = is_offline(status)
        online = self._online.get(cp_id)
        if online is None:
            online = self._online[cp_id] = self._metrics.charger_online.labels(cp_id)
        online.set(0 if offline else 1)
        if not offline:
            if self._stamp[0] != tick_time:  # one tick time for all chargers of a tick
                self._stamp = (tick_time, tick_time.replace(tzinfo=UTC).timestamp())
            stamp = self._stamp[1]
            seen = self._last_seen.get(cp_id)
            if seen is None:
                seen = self._last_seen[cp_id] = self._metrics.charger_last_seen.labels(cp_id)
            seen.set(stamp)
        before = self._known.get(cp_id)
        if before == now:
            return None
        self._known[cp_id] = now
        if offline:
            self._log.warning("charger offline", charge_point=cp_id, since=_iso(tick_time))
        elif is_charge_point_offline(before):
            self._log.info("charger online again", charge_point=cp_id, since=_iso(tick_time))
        return {
            "tick_time": tick_time,
            "charge_point_id": cp_id,
            "status": now,
            "previous_status": before,
        }

    def keep_only(self, charge_points: Iterable[str]) -> None:
        """Forget the chargers no longer polled (their gauges go from /metrics too)."""
        kept = set(charge_points)
        for cp_id in [cp for cp in self._known if cp not in kept]:
            del self._known[cp_id]
            # a removed child is no longer exported: the next answer must make a new one
            self._online.pop(cp_id, None)
            self._last_seen.pop(cp_id, None)
            for gauge in (self._metrics.charger_online, self._metrics.charger_last_seen):
                with contextlib.suppress(KeyError):  # never seen online: no last-seen series
                    gauge.remove(cp_id)


def _iso(moment: datetime) -> str:
    return moment.isoformat() + "Z"
