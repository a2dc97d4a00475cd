"""The Controller against an in-memory vendor: read–modify–write, read-back, audit rows."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from charged.chargeamps.errors import ApiError, ApiUnavailable
from charged.chargeamps.models import (
    ChargePoint,
    ChargePointSettings,
    ChargePointStatus,
    Connector,
    ConnectorSettings,
    ConnectorStatus,
    Measurement,
)
from charged.clock import FakeClock
from charged.control.audit import AuditRecord, MemoryAuditSink
from charged.control.operations import Controller, Outcome
from charged.control.validation import (
    ChargePointChange,
    ConnectorChange,
    remote_start,
)


def charge_point(cp_id: str) -> ChargePoint:
    return ChargePoint(
        id=cp_id,
        name=f"Bay {cp_id}",
        password=None,
        type="AURA",
        is_loadbalanced=False,
        firmware_version=None,
        hardware_version=None,
        owner_read_only=False,
        ocpp_version=None,
        connectors=tuple(Connector(cp_id, n, "Charger") for n in (1, 2)),
        settings=None,
    )


class FakeVendor:
    """Just enough of the vendor: settings objects, a write log, writes that do not stick."""

    def __init__(self, *ids: str) -> None:
        self.fleet = [charge_point(i) for i in ids]
        self.connectors = {
            (i, n): ConnectorSettings(i, n, None, False, "On", False, 32.0)
            for i in ids
            for n in (1, 2)
        }
        self.points = {i: ChargePointSettings(i, "Medium", None, None, 32.0) for i in ids}
        self.writes: list[tuple[str, Any]] = []
        self.ignore_writes: set[str] = set()
        self.fail_put: Exception | None = None
        self.owned_calls = 0

    async def owned_chargepoints(self, *, deadline: float | None = None) -> list[ChargePoint]:
        self.owned_calls += 1
        return list(self.fleet)

    async def status(self, cp_id: str, *, deadline: float | None = None) -> ChargePointStatus:
        if cp_id == "DOWN":
            raise ApiUnavailable("GET /chargepoints/DOWN/status: HTTP 503")
        charging = ConnectorStatus(
            cp_id,
            1,
            2.5,
            3.4,
            "OnePhase",
            "Charging",
            (Measurement("L1", 14.8, 230.0), Measurement("L2", 0.001, 230.0)),
            None,
            None,
            7,
        )
        idle = ConnectorStatus(cp_id, 2, 0.0, 0.0, None, "Available", (), None, None, None)
        return ChargePointStatus(cp_id, "Online", (charging, idle))

    async def chargepoint_settings(
        self, cp_id: str, *, deadline: float | None = None
    ) -> ChargePointSettings:
        return self.points[cp_id]

    async def set_chargepoint_settings(
        self, settings: ChargePointSettings, *, deadline: float | None = None
    ) -> None:
        self.writes.append(("chargepoint", settings))
        if settings.id not in self.ignore_writes:
            self.points[settings.id] = settings

    async def connector_settings(
        self, cp_id: str, connector_id: int, *, deadline: float | None = None
    ) -> ConnectorSettings:
        return self.connectors[(cp_id, connector_id)]

    async def set_connector_settings(
        self, settings: ConnectorSettings, *, deadline: float | None = None
    ) -> None:
        self.writes.append(("connector", settings))
        if self.fail_put is not None:
            raise self.fail_put
        if settings.charge_point_id not in self.ignore_writes:
            key = (settings.charge_point_id, settings.connector_id)
            # like the vendor: the PUT replaces the object, installationCurrent is read-only
            self.connectors[key] = dataclasses.replace(
                settings, installation_current=self.connectors[key].installation_current
            )

    async def remote_start(self, cp_id: str, connector_id: int, **kwargs: Any) -> None:
        self.writes.append(("start", (cp_id, connector_id, kwargs)))

    async def remote_stop(
        self, cp_id: str, connector_id: int, *, deadline: float | None = None
    ) -> None:
        self.writes.append(("stop", (cp_id, connector_id)))

    async def reboot(self, cp_id: str, *, deadline: float | None = None) -> None:
        self.writes.append(("reboot", cp_id))


class BrokenSink:
    async def record(self, records: Sequence[AuditRecord]) -> None:
        raise OSError("disk full")


@pytest.fixture
def vendor() -> FakeVendor:
    return FakeVendor("CP1", "CP2")


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def controller(vendor: FakeVendor, audit: MemoryAuditSink, fake_clock: FakeClock) -> Controller:
    return Controller(vendor, audit, actor="cli:tester", clock=fake_clock)


async def test_connector_change_writes_the_whole_object_and_reads_back(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    vendor.connectors[("CP1", 1)] = ConnectorSettings("CP1", 1, 16.0, True, "On", True, 32.0)
    result = await controller.set_connector("CP1", 1, ConnectorChange(max_current=10))
    assert result.outcome is Outcome.OK and result.ok
    # the untouched fields went back as they were (the API resets omitted ones)
    assert vendor.writes == [("connector", ConnectorSettings("CP1", 1, 10, True, "On", True, 32.0))]
    assert [c.to_json() for c in result.changes] == [{"field": "maxCurrent", "old": 16, "new": 10}]
    (row,) = audit.records
    assert (row.actor, row.charge_point_id, row.connector_id, row.field) == (
        "cli:tester",
        "CP1",
        1,
        "maxCurrent",
    )
    assert (row.old_value, row.new_value, row.result, row.error) == ("16", "10", "ok", None)
    assert row.created.tzinfo is None and row.created.year == 2026


async def test_several_fields_make_one_write_and_one_audit_row_each(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    change = ConnectorChange(mode="Off", max_current=None, rfid_lock=True, cable_lock=False)
    vendor.connectors[("CP1", 2)] = ConnectorSettings("CP1", 2, 20.0, False, "On", True, 32.0)
    result = await controller.set_connector("CP1", 2, change)
    assert result.ok
    assert len(vendor.writes) == 1
    assert vendor.connectors[("CP1", 2)] == ConnectorSettings(
        "CP1", 2, None, True, "Off", False, 32.0
    )
    assert [(r.field, r.old_value, r.new_value) for r in audit.records] == [
        ("mode", '"On"', '"Off"'),
        ("maxCurrent", "20", "null"),
        ("rfidLock", "false", "true"),
        ("cableLock", "true", "false"),
    ]


async def test_a_write_that_does_not_stick_is_failed_and_audited_failed(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    vendor.ignore_writes.add("CP2")
    result = await controller.set_connector("CP2", 1, ConnectorChange(mode="Off", max_current=10))
    assert result.outcome is Outcome.FAILED and not result.ok
    assert result.error == (
        'did not stick: mode reads back "On" (asked "Off"); maxCurrent reads back null (asked 10)'
    )
    assert len(vendor.writes) == 1
    assert {r.result for r in audit.records} == {"failed"}
    assert all(r.error == result.error for r in audit.records)


async def test_nothing_is_written_when_already_as_asked(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    result = await controller.set_connector("CP1", 1, ConnectorChange(mode="On"))
    assert result.outcome is Outcome.UNCHANGED and result.ok
    assert vendor.writes == []
    assert [r.result for r in audit.records] == ["unchanged"]


async def test_unknown_charger_or_connector_sends_nothing_and_is_audited_rejected(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    unknown = await controller.set_connector("NOPE", 1, ConnectorChange(max_current=10))
    assert unknown.outcome is Outcome.REJECTED
    assert unknown.error == "charger NOPE is not one of this account's chargers"
    no_socket = await controller.remote_stop("CP1", 3)
    assert no_socket.error == "charger CP1 has no connector 3 (it has: 1, 2)"
    assert vendor.writes == []
    assert [(r.charge_point_id, r.field, r.old_value, r.result) for r in audit.records] == [
        ("NOPE", "maxCurrent", None, "rejected"),
        ("CP1", "remoteStop", None, "rejected"),
    ]


async def test_limit_above_installation_current_is_rejected_before_writing(
    controller: Controller, vendor: FakeVendor
) -> None:
    vendor.connectors[("CP1", 1)] = dataclasses.replace(
        vendor.connectors[("CP1", 1)], installation_current=16.0
    )
    result = await controller.set_connector("CP1", 1, ConnectorChange(max_current=20))
    assert result.outcome is Outcome.REJECTED
    assert result.error is not None and "installation current" in result.error
    assert vendor.writes == []


async def test_vendor_refusal_is_a_failed_change_with_its_reason(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    vendor.fail_put = ApiError("PUT …: HTTP 403: not allowed", status=403, endpoint="x")
    result = await controller.set_connector("CP1", 1, ConnectorChange(mode="Off"))
    assert result.outcome is Outcome.FAILED
    assert result.error == "PUT …: HTTP 403: not allowed"
    assert audit.records[0].result == "failed"


async def test_chargepoint_settings_keep_untouched_fields(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    vendor.points["CP1"] = ChargePointSettings("CP1", "High", True, 20.0, 32.0)
    result = await controller.set_chargepoint("CP1", ChargePointChange(dimmer="Low"))
    assert result.ok
    assert vendor.points["CP1"] == ChargePointSettings("CP1", "Low", True, 20.0, 32.0)
    assert [
        (r.action, r.connector_id, r.field, r.old_value, r.new_value) for r in audit.records
    ] == [("chargepoint_settings", None, "dimmer", '"High"', '"Low"')]


async def test_commands_are_sent_once_and_audited(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    started = await controller.remote_start("CP1", 2, remote_start("0A1B2C3D"))
    stopped = await controller.remote_stop("CP1", 2)
    rebooted = await controller.reboot("CP2")
    assert started.ok and stopped.ok and rebooted.ok
    assert vendor.writes == [
        ("start", ("CP1", 2, {"rfid": "0A1B2C3D", "rfid_format": "Hex", "rfid_length": 4})),
        ("stop", ("CP1", 2)),
        ("reboot", "CP2"),
    ]
    assert [(r.action, r.field, r.new_value) for r in audit.records] == [
        ("remote_start", "remoteStart", '"0A1B2C3D (Hex, 4 bytes)"'),
        ("remote_stop", "remoteStop", "true"),
        ("reboot", "reboot", "true"),
    ]


async def test_concurrent_changes_to_one_connector_do_not_undo_each_other(
    controller: Controller, vendor: FakeVendor
) -> None:
    # Both read–modify–writes would read the same "before" without the per-target lock.
    results = await asyncio.gather(
        controller.set_connector("CP1", 1, ConnectorChange(rfid_lock=True)),
        controller.set_connector("CP1", 1, ConnectorChange(cable_lock=True)),
    )
    assert all(r.ok for r in results)
    after = vendor.connectors[("CP1", 1)]
    assert after.rfid_lock and after.cable_lock


async def test_owned_list_is_cached_for_a_while(
    controller: Controller, vendor: FakeVendor, fake_clock: FakeClock
) -> None:
    await controller.set_connector("CP1", 1, ConnectorChange(mode="Off"))
    await controller.set_connector("CP2", 1, ConnectorChange(mode="Off"))
    assert vendor.owned_calls == 1
    await fake_clock.advance(61)
    await controller.reboot("CP1")
    assert vendor.owned_calls == 2


async def test_audit_failure_is_reported_not_raised(
    vendor: FakeVendor, fake_clock: FakeClock
) -> None:
    controller = Controller(vendor, BrokenSink(), actor="api", clock=fake_clock)
    result = await controller.set_connector("CP1", 1, ConnectorChange(mode="Off"))
    assert result.outcome is Outcome.OK
    assert not result.ok
    assert result.audit_error == "audit row not written (OSError)"


async def test_cancelled_change_is_audited_and_the_cancellation_goes_on(
    vendor: FakeVendor, audit: MemoryAuditSink, fake_clock: FakeClock
) -> None:
    gate = asyncio.Event()

    async def hang(settings: ConnectorSettings, *, deadline: float | None = None) -> None:
        gate.set()
        await asyncio.Event().wait()

    vendor.set_connector_settings = hang  # type: ignore[method-assign]
    controller = Controller(vendor, audit, actor="api", clock=fake_clock)
    task = asyncio.create_task(controller.set_connector("CP1", 1, ConnectorChange(mode="Off")))
    await gate.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(r.result, r.error) for r in audit.records] == [("failed", "cancelled before the end")]


async def test_overview_reads_every_charger_and_keeps_going_past_a_failure(
    vendor: FakeVendor, audit: MemoryAuditSink, fake_clock: FakeClock
) -> None:
    vendor.fleet.append(charge_point("DOWN"))
    controller = Controller(vendor, audit, actor="cli:t", clock=fake_clock)
    rows = {o.id: o for o in await controller.overview()}
    assert rows["CP1"].status == "Online"
    assert rows["CP1"].connectors[0].current == 14.8
    assert rows["CP1"].connectors[1].current is None
    assert rows["DOWN"].status == "unknown"
    assert rows["DOWN"].error == "GET /chargepoints/DOWN/status: HTTP 503"
    assert audit.records == []
