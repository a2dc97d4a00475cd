"""An Offline answer is counted as what it is, and each change of a charger's availability is
recorded (a row, the online gauge, the last-seen time)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from charged.analysis.availability import OfflineSpan, spans_from_changes
from charged.chargeamps.errors import ApiUnavailable
from charged.chargeamps.models import ChargePoint, ChargePointStatus
from charged.clock import FakeClock
from charged.collector.supervisor import Supervisor
from charged.metrics import Metrics
from charged.storage.writes import RowBatch
from tests.unit.test_supervisor import charge_point, charging_status, drain


class Fleet:
    """Answers like the vendor client: Online with a charging connector, or Offline."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.offline: set[str] = set()
        self.failing: set[str] = set()

    async def owned_chargepoints(self, *, deadline: float | None = None) -> list[ChargePoint]:
        return [charge_point(i) for i in self.ids]

    async def status(self, cp_id: str, *, deadline: float | None = None) -> ChargePointStatus:
        if cp_id in self.failing:
            raise ApiUnavailable("gave up after 4 attempts: HTTP 503")
        if cp_id in self.offline:
            # the cloud still lists the connectors it last heard of
            last_known = charging_status(cp_id).connector_statuses
            return ChargePointStatus(id=cp_id, status="Offline", connector_statuses=last_known)
        return charging_status(cp_id)

    async def organisation_statuses(self, *_: Any, **__: Any) -> Any:
        raise AssertionError("not configured")


def gauge(metrics: Metrics, name: str, cp: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"charge_point": cp})


async def test_offline_is_neither_ok_nor_failed_and_each_change_is_a_row(
    fake_clock: FakeClock,
) -> None:
    fleet = Fleet(["CP1", "CP2", "CP3"])
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    metrics = Metrics()
    sup = Supervisor(fleet, queue, clock=fake_clock, metrics=metrics, interval=30)

    first = await sup.tick()
    assert (first.ok, first.offline, first.failed) == (3, 0, 0)
    rows = drain(queue)
    # the first answers a run sees: what each charger is, from what is not known
    assert sorted(
        (r["charge_point_id"], r["status"], r["previous_status"])
        for r in rows["charge_point_availability"]
    ) == [("CP1", "Online", None), ("CP2", "Online", None), ("CP3", "Online", None)]
    seen_at = first.tick_time.replace(tzinfo=UTC).timestamp()
    assert gauge(metrics, "charged_charger_online", "CP2") == 1
    assert gauge(metrics, "charged_charger_last_seen_timestamp_seconds", "CP2") == seen_at

    fleet.offline.add("CP2")
    await fake_clock.advance(30)
    second = await sup.tick()
    assert (second.asked, second.ok, second.offline, second.failed) == (3, 2, 1, 0)
    assert second.failures == {}  # not a request failure: no poll_gap
    assert second.statuses["CP2"].status == "Offline"  # it did answer (the balancer reads it)
    rows = drain(queue)
    assert "poll_gap" not in rows
    (change,) = rows["charge_point_availability"]
    assert change == {
        "tick_time": second.tick_time,
        "charge_point_id": "CP2",
        "status": "Offline",
        "previous_status": "Online",
    }
    # no connector rows of the cloud's stale copy; last_seen is left as it was
    assert {r["charge_point_id"] for r in rows["connector_status"]} == {"CP1", "CP3"}
    assert {"id": "CP2", "status": "Offline"} in rows["charge_point_status"]
    (cycle,) = rows["poll_cycle"]
    assert (cycle["chargers_ok"], cycle["chargers_offline"], cycle["chargers_failed"]) == (2, 1, 0)
    assert gauge(metrics, "charged_charger_online", "CP2") == 0
    assert gauge(metrics, "charged_charger_last_seen_timestamp_seconds", "CP2") == seen_at
    assert (
        metrics.registry.get_sample_value("charged_chargers_polled_total", {"result": "offline"})
        == 1
    )

    # still offline, then a failed request: no change either way
    await fake_clock.advance(30)
    await sup.tick()
    fleet.offline.discard("CP2")
    fleet.failing.add("CP2")
    await fake_clock.advance(30)
    failed = await sup.tick()
    assert (failed.ok, failed.offline, failed.failed) == (2, 0, 1)
    assert "charge_point_availability" not in drain(queue)
    assert gauge(metrics, "charged_charger_online", "CP2") == 0

    fleet.failing.clear()
    await fake_clock.advance(30)
    back = await sup.tick()
    (change,) = drain(queue)["charge_point_availability"]
    assert (change["status"], change["previous_status"], change["tick_time"]) == (
        "Online",
        "Offline",
        back.tick_time,
    )
    assert gauge(metrics, "charged_charger_online", "CP2") == 1
    assert (
        gauge(metrics, "charged_charger_last_seen_timestamp_seconds", "CP2")
        == back.tick_time.replace(tzinfo=UTC).timestamp()
    )


async def test_tick_log_line_counts_offline(fake_clock: FakeClock) -> None:
    fleet = Fleet(["CP1", "CP2"])
    fleet.offline.add("CP1")
    lines: list[tuple[str, dict[str, Any]]] = []

    class Log:
        def info(self, event: str, **kw: Any) -> None:
            lines.append((event, kw))

        warning = info

    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    sup = Supervisor(fleet, queue, clock=fake_clock, logger=Log())
    await sup.tick()
    (tick,) = [kw for event, kw in lines if event == "tick"]
    assert (tick["ok"], tick["failed"], tick["offline"]) == (1, 0, 1)
    assert ("charger offline", {"charge_point": "CP1", "since": "2026-01-01T00:00:00Z"}) in lines


async def test_a_charger_no_longer_polled_leaves_the_gauges(fake_clock: FakeClock) -> None:
    fleet = Fleet(["CP1", "CP2"])
    metrics = Metrics()
    queue: asyncio.Queue[RowBatch] = asyncio.Queue()
    sup = Supervisor(fleet, queue, clock=fake_clock, metrics=metrics, rediscover_every=1)
    await sup.tick()
    fleet.ids = ["CP1"]
    await sup.tick()
    assert gauge(metrics, "charged_charger_online", "CP1") == 1
    assert gauge(metrics, "charged_charger_online", "CP2") is None
    assert gauge(metrics, "charged_charger_last_seen_timestamp_seconds", "CP2") is None


def test_offline_whatever_its_casing() -> None:
    from charged.collector.availability import is_offline

    assert is_offline(ChargePointStatus("CP", " OFFLINE", ()))
    assert not is_offline(ChargePointStatus("CP", "Online", ()))


def test_spans_from_changes_merge_repeats_and_leave_the_last_open() -> None:
    t = [datetime(2026, 1, 5, 7, m) for m in range(6)]
    spans = spans_from_changes(
        [
            ("A", t[0], "Online"),
            ("A", t[1], "Offline"),
            ("A", t[2], "Offline"),  # a restart recorded what it first saw: still the span
            ("A", t[3], "Online"),
            ("A", t[4], "OFFLINE"),
            ("B", t[0], "Offline"),
            ("B", t[5], "Online"),
        ]
    )
    assert spans == [  # oldest first
        OfflineSpan("B", t[0], t[5]),
        OfflineSpan("A", t[1], t[3]),
        OfflineSpan("A", t[4], None),
    ]
    assert spans[2].overlaps(t[5], None) and not spans[1].overlaps(t[3], None)
    assert spans[1].overlaps(None, t[2]) and not spans[2].overlaps(None, t[4])


def test_last_seen_follows_the_tick_time_of_each_tick() -> None:
    from charged.collector.availability import Availability

    metrics = Metrics()
    seen = Availability(metrics)
    for minute in (0, 1, 1, 2):
        tick = datetime(2026, 12, 4, 12, minute)
        for cp in ("A", "B"):
            seen.observe(ChargePointStatus(cp, "Online", ()), tick)
            value = metrics.registry.get_sample_value(
                "charged_charger_last_seen_timestamp_seconds", {"charge_point": cp}
            )
            assert value == tick.replace(tzinfo=UTC).timestamp()
