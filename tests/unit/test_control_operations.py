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
from charged.control.operations import Controller
from charged.control.results import Outcome
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
    """Just enough of the vendor: settings objects, connector states that start and stop
    change, a write log, writes (and commands) that do not stick, offline chargers."""

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
        self.status_reads = 0
        self.offline: set[str] = set()
        self.ignore_commands = False  # start and stop are accepted and do nothing
        # connector 1 charges (session 7), connector 2 is free
        self.states: dict[tuple[str, int], tuple[str, int | None]] = {
            (i, n): ("Charging", 7) if n == 1 else ("Available", None) for i in ids for n in (1, 2)
        }
        self.sessions = 7
        # a wiring limit the vendor enforces but does not show (installationCurrent unread):
        # a maxCurrent above it is refused with 400, or clipped to it
        self.wiring: float | None = None
        self.above_wiring = "reject"

    async def owned_chargepoints(self, *, deadline: float | None = None) -> list[ChargePoint]:
        self.owned_calls += 1
        return list(self.fleet)

    async def status(self, cp_id: str, *, deadline: float | None = None) -> ChargePointStatus:
        self.status_reads += 1
        if cp_id == "DOWN":
            raise ApiUnavailable("GET /chargepoints/DOWN/status: HTTP 503")
        if cp_id in self.offline:
            return ChargePointStatus(cp_id, "Offline", ())
        connectors = []
        for n in (1, 2):
            state, session = self.states[(cp_id, n)]
            if state == "Charging":
                measurements = (Measurement("L1", 14.8, 230.0), Measurement("L2", 0.001, 230.0))
                connectors.append(
                    ConnectorStatus(
                        cp_id, n, 2.5, 3.4, "OnePhase", state, measurements, None, None, session
                    )
                )
            else:
                connectors.append(
                    ConnectorStatus(cp_id, n, 0.0, 0.0, None, state, (), None, None, session)
                )
        return ChargePointStatus(cp_id, "Online", tuple(connectors))

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
        amps = settings.max_current
        if self.wiring is not None and amps is not None and amps > self.wiring:
            if self.above_wiring == "reject":
                raise ApiError(
                    "PUT /chargepoints/CP1/connectors/1/settings: HTTP 400: the vendor "
                    "rejected the request as invalid (the vendor said: maxCurrent too high)",
                    status=400,
                    endpoint="/chargepoints/{id}/connectors/{connector}/settings",
                )
            settings = dataclasses.replace(settings, max_current=self.wiring)
        if settings.charge_point_id not in self.ignore_writes:
            key = (settings.charge_point_id, settings.connector_id)
            # like the vendor: the PUT replaces the object, installationCurrent is read-only
            self.connectors[key] = dataclasses.replace(
                settings, installation_current=self.connectors[key].installation_current
            )

    async def remote_start(self, cp_id: str, connector_id: int, **kwargs: Any) -> None:
        self.writes.append(("start", (cp_id, connector_id, kwargs)))
        if not self.ignore_commands:
            self.sessions += 1
            self.states[(cp_id, connector_id)] = ("Charging", self.sessions)

    async def remote_stop(
        self, cp_id: str, connector_id: int, *, deadline: float | None = None
    ) -> None:
        self.writes.append(("stop", (cp_id, connector_id)))
        if not self.ignore_commands:
            self.states[(cp_id, connector_id)] = ("Connected", None)

    async def reboot(self, cp_id: str, *, deadline: float | None = None) -> None:
        self.writes.append(("reboot", cp_id))


class BrokenSink:
    """An audit table that takes nothing, or (``finish_only``) nothing after the first step."""

    def __init__(self, *, finish_only: bool = False) -> None:
        self.finish_only = finish_only
        self.begun: list[AuditRecord] = []

    async def record(self, records: Sequence[AuditRecord]) -> None:
        raise OSError("disk full")

    async def begin(self, records: Sequence[AuditRecord]) -> tuple[int, ...]:
        if not self.finish_only:
            raise OSError("disk full")
        self.begun.extend(records)
        return tuple(range(len(records)))

    async def finish(self, keys: tuple[int, ...], result: str, error: str | None) -> None:
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


async def test_a_change_its_check_refuses_is_not_sent_and_is_audited_rejected(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    vendor.connectors[("CP1", 1)] = ConnectorSettings("CP1", 1, 8.0, False, "On", False, 32.0)
    seen: list[ConnectorSettings] = []

    def unless(before: ConnectorSettings) -> str | None:
        seen.append(before)
        return "changed outside charged" if before.max_current != 16 else None

    result = await controller.set_connector(
        "CP1", 1, ConnectorChange(max_current=10), unless=unless
    )
    assert seen == [vendor.connectors[("CP1", 1)]]  # the settings read just before
    assert result.outcome is Outcome.REJECTED and result.conflict
    assert result.error == "changed outside charged"
    assert vendor.writes == []
    (row,) = audit.records
    assert (row.field, row.old_value, row.new_value, row.result) == (
        "maxCurrent",
        "8",
        "10",
        "rejected",
    )


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


async def test_commands_are_sent_once_checked_in_the_status_and_audited(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    key = ("CP1", 1)
    vendor.connectors[key] = dataclasses.replace(vendor.connectors[key], rfid_lock=True)
    stopped = await controller.remote_stop("CP1", 1)
    started = await controller.remote_start("CP1", 1, remote_start("0A1B2C3D"))
    rebooted = await controller.reboot("CP2")
    assert [(r.outcome, r.note) for r in (stopped, started, rebooted)] == [
        (Outcome.OK, "stopped: connector now Connected"),
        (Outcome.OK, "started: connector now Charging"),
        (Outcome.OK, "the vendor accepted the reboot: the charger is offline while it restarts"),
    ]
    assert vendor.writes == [
        ("stop", ("CP1", 1)),
        ("start", ("CP1", 1, {"rfid": "0A1B2C3D", "rfid_format": "Hex", "rfid_length": 4})),
        ("reboot", "CP2"),
    ]
    # old: the status before; new: what was asked (nothing for stop and reboot)
    assert [(r.action, r.field, r.old_value, r.new_value, r.result) for r in audit.records] == [
        ("remote_stop", "remoteStop", '"Charging"', "null", "ok"),
        ("remote_start", "remoteStart", '"Connected"', '"0A1B2C3D (Hex, 4 bytes)"', "ok"),
        ("reboot", "reboot", '"Online"', "null", "ok"),
    ]


async def test_stop_without_a_session_and_start_with_one_send_nothing_and_say_so(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    idle = await controller.remote_stop("CP1", 2)
    busy = await controller.remote_start("CP1", 1, remote_start("0A1B2C3D"))
    assert (idle.outcome, idle.note) == (
        Outcome.UNCHANGED,
        "connector was not charging (Available): nothing sent",
    )
    assert (busy.outcome, busy.note) == (
        Outcome.UNCHANGED,
        "a session is already running (Charging): nothing sent",
    )
    assert idle.ok and busy.ok
    assert vendor.writes == []
    assert [(r.action, r.old_value, r.result) for r in audit.records] == [
        ("remote_stop", '"Available"', "unchanged"),
        ("remote_start", '"Charging"', "unchanged"),
    ]
    # a full car's open session (plugged in, not drawing) is still a session to stop
    vendor.states[("CP1", 2)] = ("Connected", 9)
    assert (await controller.remote_stop("CP1", 2)).outcome is Outcome.OK
    assert vendor.writes == [("stop", ("CP1", 2))]


@pytest.mark.parametrize("above", ["reject", "clip"])
async def test_a_limit_above_an_unseen_installation_current_fails_either_way(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink, above: str
) -> None:
    # the vendor enforces a wiring limit it does not report: refused (400) or clipped
    key = ("CP1", 1)
    vendor.connectors[key] = dataclasses.replace(vendor.connectors[key], installation_current=None)
    vendor.wiring, vendor.above_wiring = 16.0, above
    result = await controller.set_connector("CP1", 1, ConnectorChange(max_current=20))
    assert result.outcome is Outcome.FAILED
    if above == "reject":
        assert result.error is not None and result.error.endswith("maxCurrent too high)")
    else:  # accepted, and the read-back shows what the charger really took
        assert result.error == "did not stick: maxCurrent reads back 16 (asked 20)"
        assert vendor.connectors[key].max_current == 16.0
    assert [r.result for r in audit.records] == ["failed"]


async def test_a_remote_start_with_the_rfid_lock_off_is_sent_and_warned_about(
    controller: Controller, vendor: FakeVendor
) -> None:
    vendor.states[("CP1", 2)] = ("Connected", None)  # a car waiting, no session
    result = await controller.remote_start("CP1", 2, remote_start("0A1B2C3D"))
    assert result.outcome is Outcome.OK
    assert result.note == (
        "started: connector now Charging; the connector's RFID lock is off: a remote start "
        "only makes sense with it on (the vendor's description): set rfidLock on"
    )
    assert [w[0] for w in vendor.writes] == ["start"]


@pytest.mark.parametrize("paused", ["SuspendedEV", "SuspendedEVSE", "Finishing"])
async def test_a_paused_car_has_a_session_open_even_without_a_session_id(
    controller: Controller, vendor: FakeVendor, paused: str
) -> None:
    # OCPP's paused states: a car held back by a limit has not ended its session
    vendor.states[("CP1", 2)] = (paused, None)
    busy = await controller.remote_start("CP1", 2, remote_start("0A1B2C3D"))
    assert (busy.outcome, busy.note) == (
        Outcome.UNCHANGED,
        f"a session is already running ({paused}): nothing sent",
    )
    assert vendor.writes == []
    assert (await controller.remote_stop("CP1", 2)).outcome is Outcome.OK
    assert vendor.writes == [("stop", ("CP1", 2))]


async def test_a_start_with_no_car_that_the_vendor_accepts_is_unverified_and_says_why(
    controller: Controller, vendor: FakeVendor
) -> None:
    vendor.ignore_commands = True  # accepted, nothing happens (no refusal is documented)
    result = await controller.remote_start("CP1", 2, remote_start("0A1B2C3D"))
    assert result.outcome is Outcome.UNVERIFIED
    assert result.error is not None and result.error.endswith(
        "the connector read Available before the start: is a vehicle plugged in?"
    )


async def test_a_command_whose_effect_does_not_show_is_unverified(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink, fake_clock: FakeClock
) -> None:
    vendor.ignore_commands = True
    before = fake_clock.monotonic()
    reads = vendor.status_reads
    result = await controller.remote_stop("CP1", 1)
    assert result.outcome is Outcome.UNVERIFIED and not result.ok
    assert result.error == (
        "the vendor accepted the stop, but 4 s later the connector still reads Charging; "
        "look again with `charged chargers`"
    )
    assert vendor.status_reads - reads == 1 + 3  # before, then three reads 2 s apart
    assert fake_clock.monotonic() - before == 4
    assert [(r.result, r.error) for r in audit.records] == [("unverified", result.error)]
    assert len(vendor.writes) == 1  # sent once, never repeated


async def test_an_offline_charger_is_sent_no_command(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    vendor.offline.add("CP2")
    results = [
        await controller.remote_stop("CP2", 1),
        await controller.remote_start("CP2", 2, remote_start("0A1B2C3D")),
        await controller.reboot("CP2"),
    ]
    for result in results:
        assert result.outcome is Outcome.FAILED
        assert result.error == "charger CP2 is Offline: nothing sent; try again when it is Online"
    assert vendor.writes == []
    assert {r.result for r in audit.records} == {"failed"}


async def test_a_409_from_an_offline_charger_says_it_is_offline(
    controller: Controller, vendor: FakeVendor
) -> None:
    vendor.offline.add("CP1")
    vendor.fail_put = ApiError(
        "PUT /chargepoints/CP1/connectors/1/settings: HTTP 409: conflict with the charger's "
        "current state; read it again and retry later",
        status=409,
        endpoint="x",
    )
    result = await controller.set_connector("CP1", 1, ConnectorChange(mode="Off"))
    assert result.outcome is Outcome.FAILED
    assert result.error == (
        "charger CP1 is Offline (restarting or out of reach): the vendor refused the change "
        "(HTTP 409); try again when it is Online"
    )


async def test_the_audit_rows_are_written_before_the_change_is_sent(
    vendor: FakeVendor, audit: MemoryAuditSink, fake_clock: FakeClock
) -> None:
    seen: list[list[tuple[str | None, str]]] = []
    real_put = vendor.set_connector_settings

    async def put(settings: ConnectorSettings, *, deadline: float | None = None) -> None:
        seen.append([(r.field, r.result) for r in audit.records])
        await real_put(settings)

    vendor.set_connector_settings = put  # type: ignore[method-assign]
    controller = Controller(vendor, audit, actor="cli:t", clock=fake_clock)
    result = await controller.set_connector("CP1", 1, ConnectorChange(mode="Off", max_current=8))
    assert result.ok
    assert seen == [[("mode", "attempted"), ("maxCurrent", "attempted")]]
    # the same rows, completed: not a second set
    assert [(r.field, r.old_value, r.result) for r in audit.records] == [
        ("mode", '"On"', "ok"),
        ("maxCurrent", "null", "ok"),
    ]


async def test_a_rejected_request_is_audited_without_asking_the_vendor(
    controller: Controller, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    result = await controller.reject(
        "CP1", 1, "connector_settings", {"maxCurrent": 40}, "maxCurrent must be 6–32 A, got 40"
    )
    nameless = await controller.reject("CP1", None, "reboot", {}, "the body is not valid JSON")
    assert result.outcome is Outcome.REJECTED and not result.ok
    assert vendor.writes == [] and vendor.owned_calls == 0 and vendor.status_reads == 0
    assert [(r.connector_id, r.field, r.new_value, r.result, r.error) for r in audit.records] == [
        (1, "maxCurrent", "40", "rejected", "maxCurrent must be 6–32 A, got 40"),
        (None, None, None, "rejected", "the body is not valid JSON"),
    ]
    assert nameless.changes == ()


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


async def test_a_change_that_cannot_be_audited_is_not_sent(
    vendor: FakeVendor, fake_clock: FakeClock
) -> None:
    controller = Controller(vendor, BrokenSink(), actor="control-api", clock=fake_clock)
    result = await controller.set_connector("CP1", 1, ConnectorChange(mode="Off"))
    assert result.outcome is Outcome.FAILED and not result.ok
    assert result.error == "not sent: the audit row could not be written (OSError)"
    assert result.audit_error == "audit row not written (OSError)"
    assert vendor.writes == []
    stop = await controller.remote_stop("CP1", 1)
    assert stop.outcome is Outcome.FAILED and vendor.writes == []


async def test_an_outcome_that_cannot_be_audited_is_reported_not_raised(
    vendor: FakeVendor, fake_clock: FakeClock
) -> None:
    sink = BrokenSink(finish_only=True)
    controller = Controller(vendor, sink, actor="control-api", clock=fake_clock)
    result = await controller.set_connector("CP1", 1, ConnectorChange(mode="Off"))
    assert result.outcome is Outcome.OK and not result.ok  # made, but the row says attempted
    assert result.audit_error == "audit row left as 'attempted' (OSError)"
    assert [(r.field, r.result) for r in sink.begun] == [("mode", "attempted")]


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
