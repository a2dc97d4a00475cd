"""Control operations against the simulated vendor API over real sockets on 127.0.0.1.

Each change is checked twice: the Controller's own read-back, and the next status poll showing
the effect on the vehicle (limit 10 A → it draws ≤ 10 A; mode Off → 0 A).  The control API
is served on 127.0.0.1 too, in front of the same simulator, so a refused request is proven
to send nothing by the simulator's own count of change requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from charged.chargeamps.client import ChargeAmpsClient
from charged.chargeamps.models import ConnectorStatus
from charged.clock import FakeClock
from charged.control.api import install_control_routes
from charged.control.audit import MemoryAuditSink
from charged.control.operations import Controller
from charged.control.results import Outcome
from charged.control.validation import ChargePointChange, ConnectorChange, remote_start
from charged.simulator import Simulator, SimulatorConfig
from charged.simulator.fleet import charge_point_ids

MORNING = 1_767_258_000.0  # 2026-01-01T09:00:00Z: bays are busy
TOKEN = "simulator-control-token-0123456789"
SMALL = 3  # index of the charger installed for 16 A only


@dataclass
class Rig:
    sim: Simulator
    client: ChargeAmpsClient
    controller: Controller
    audit: MemoryAuditSink
    clock: FakeClock

    async def connector_status(self, cp_id: str, connector_id: int) -> ConnectorStatus:
        status = await self.client.status(cp_id)
        return next(c for c in status.connector_statuses if c.connector_id == connector_id)

    async def charging_connector(self, above: float = 11.0) -> tuple[str, int]:
        for cp_id in self.sim.charge_point_ids():
            for c in (await self.client.status(cp_id)).connector_statuses:
                if c.status == "Charging" and max(m.current for m in c.measurements) > above:
                    return cp_id, c.connector_id
        pytest.fail("the simulated fleet has no vehicle charging above 11 A")


@pytest.fixture
async def rig(fake_clock: FakeClock) -> AsyncIterator[Rig]:
    small = charge_point_ids(seed=3, count=12)[SMALL]
    config = SimulatorConfig(
        chargers=12, seed=3, start_time=MORNING, installation_currents={small: 16}
    )
    sim = Simulator(config, clock=fake_clock)
    await sim.start("127.0.0.1", 0)
    audit = MemoryAuditSink()
    try:
        async with aiohttp.ClientSession() as session:
            client = ChargeAmpsClient(
                session,
                base_url=sim.base_url,
                email=sim.account.email,
                password=sim.account.password,
                api_key=sim.account.api_key,
                clock=fake_clock,
                max_requests_per_second=None,
            )
            controller = Controller(client, audit, actor="cli:test", clock=fake_clock)
            yield Rig(sim, client, controller, audit, fake_clock)
    finally:
        await sim.stop()


async def test_limit_10a_is_verified_and_the_vehicle_follows(rig: Rig) -> None:
    cp_id, connector = await rig.charging_connector()
    result = await rig.controller.set_connector(cp_id, connector, ConnectorChange(max_current=10))
    assert result.outcome is Outcome.OK, result.error
    rig.sim.fleet.advance(60)  # one or two polls later
    after = await rig.connector_status(cp_id, connector)
    assert after.status == "Charging"
    assert 0 < max(m.current for m in after.measurements) <= 10
    settings = await rig.client.connector_settings(cp_id, connector)
    assert settings.max_current == 10
    # only maxCurrent changed: the rest of the object went back as it was
    assert (settings.mode, settings.rfid_lock, settings.cable_lock) == ("On", False, False)
    assert [(r.field, r.old_value, r.new_value, r.result) for r in rig.audit.records] == [
        ("maxCurrent", "null", "10", "ok")
    ]


async def test_mode_off_drops_the_current_to_zero_and_on_resumes(rig: Rig) -> None:
    cp_id, connector = await rig.charging_connector()
    drawing = await rig.connector_status(cp_id, connector)
    assert drawing.charging_power_kw is not None and drawing.charging_power_kw > 2
    off = await rig.controller.set_connector(cp_id, connector, ConnectorChange(mode="Off"))
    assert off.ok
    # at once, and for the next ticks: no current, no power, the energy counter stands still
    stopped = await rig.connector_status(cp_id, connector)
    energy = stopped.total_consumption_kwh
    assert energy is not None and energy > 0  # the session is still open, only paused
    for _ in range(6):
        status = await rig.connector_status(cp_id, connector)
        assert status.status == "Connected"
        assert status.charging_power_kw == 0
        assert not any(m.current > 0.01 for m in status.measurements)
        assert status.total_consumption_kwh == energy
        assert status.session_id == drawing.session_id
        rig.sim.fleet.advance(30)
    on = await rig.controller.set_connector(cp_id, connector, ConnectorChange(mode="On"))
    assert on.ok
    rig.sim.fleet.advance(20)
    resumed = await rig.connector_status(cp_id, connector)
    assert resumed.status == "Charging"
    assert max(m.current for m in resumed.measurements) > 5
    rig.sim.fleet.advance(60)
    later = await rig.connector_status(cp_id, connector)
    assert later.total_consumption_kwh is not None and later.total_consumption_kwh > energy


async def test_a_write_the_charger_ignores_is_failed_and_audited_failed(rig: Rig) -> None:
    cp_id = rig.sim.charge_point_ids()[0]
    rig.sim.faults.ignore_writes.add(cp_id)
    result = await rig.controller.set_connector(
        cp_id, 1, ConnectorChange(max_current=16, rfid_lock=True)
    )
    assert result.outcome is Outcome.FAILED and not result.ok
    assert result.error == (
        "did not stick: maxCurrent reads back null (asked 16); "
        "rfidLock reads back false (asked true)"
    )
    assert [(r.field, r.result, r.error) for r in rig.audit.records] == [
        ("maxCurrent", "failed", result.error),
        ("rfidLock", "failed", result.error),
    ]
    points = await rig.controller.set_chargepoint(cp_id, ChargePointChange(dimmer="Low"))
    assert points.outcome is Outcome.FAILED


async def test_chargepoint_settings_change_and_read_back(rig: Rig) -> None:
    cp_id = rig.sim.charge_point_ids()[1]
    result = await rig.controller.set_chargepoint(cp_id, ChargePointChange(dimmer="High"))
    assert result.ok, result.error
    settings = await rig.client.chargepoint_settings(cp_id)
    # an Aura's downLight is null, and the write-back of null keeps it so
    assert (settings.dimmer, settings.down_light) == ("High", None)
    writes = rig.sim.writes
    light = await rig.controller.set_chargepoint(cp_id, ChargePointChange(down_light=True))
    assert light.outcome is Outcome.FAILED
    assert light.error == (
        f"charger {cp_id} has no down light (its downLight reads null; a Halo has one): "
        "nothing sent"
    )
    assert rig.sim.writes == writes


async def test_unknown_charger_or_connector_and_too_high_limits_send_nothing(rig: Rig) -> None:
    await rig.controller.charger_ids()  # the owned list, read once beforehand
    before = rig.sim.requests
    cp_id = rig.sim.charge_point_ids()[0]
    unknown = await rig.controller.set_connector("0000000000Z", 1, ConnectorChange(mode="Off"))
    no_socket = await rig.controller.set_connector(cp_id, 3, ConnectorChange(mode="Off"))
    stop = await rig.controller.remote_stop("0000000000Z", 1)
    assert [r.outcome for r in (unknown, no_socket, stop)] == [Outcome.REJECTED] * 3
    assert rig.sim.requests == before  # not even a read went out
    assert {r.result for r in rig.audit.records} == {"rejected"}


async def test_stop_start_and_reboot(rig: Rig) -> None:
    cp_id, connector = await rig.charging_connector(above=0.5)
    stopped = await rig.controller.remote_stop(cp_id, connector)
    assert (stopped.outcome, stopped.note) == (Outcome.OK, "stopped: connector now Connected")
    rig.sim.fleet.advance(20)
    assert (await rig.connector_status(cp_id, connector)).status != "Charging"
    # a second stop finds nothing to stop and sends nothing
    writes = rig.sim.writes
    again = await rig.controller.remote_stop(cp_id, connector)
    assert again.outcome is Outcome.UNCHANGED and rig.sim.writes == writes
    assert again.note == "connector was not charging (Connected): nothing sent"
    started = await rig.controller.remote_start(cp_id, connector, remote_start("0A1B2C3D"))
    assert started.outcome is Outcome.OK
    assert started.note == (  # the simulator's connectors start with the RFID lock off
        "started: connector now Charging; the connector's RFID lock is off: a remote start "
        "only makes sense with it on (the vendor's description): set rfidLock on"
    )
    rig.sim.fleet.advance(20)
    assert (await rig.connector_status(cp_id, connector)).status == "Charging"
    rebooted = await rig.controller.reboot(cp_id)
    assert rebooted.ok
    assert (await rig.client.status(cp_id)).status == "Offline"
    assert [(r.action, r.old_value, r.result) for r in rig.audit.records] == [
        ("remote_stop", '"Charging"', "ok"),
        ("remote_stop", '"Connected"', "unchanged"),
        ("remote_start", '"Connected"', "ok"),
        ("reboot", '"Online"', "ok"),
    ]


@pytest.mark.parametrize("conflicts", [False, True])
async def test_a_remote_start_with_no_car_is_never_reported_ok(rig: Rig, conflicts: bool) -> None:
    rig.sim.config.conflicts = conflicts
    free: list[tuple[str, int]] = []
    for cp in rig.sim.charge_point_ids():
        status = await rig.client.status(cp)
        free += [(cp, c.connector_id) for c in status.connector_statuses if c.status == "Available"]
    result = await rig.controller.remote_start(*free[0], remote_start("0A1B2C3D"))
    hint = "the connector read Available before the start: is a vehicle plugged in?"
    assert result.error is not None and result.error.endswith(hint)
    # the vendor's 409 (an option): failed; its documented silence: accepted, unverified
    assert result.outcome is (Outcome.FAILED if conflicts else Outcome.UNVERIFIED)
    assert result.conflict is conflicts


async def test_a_rebooting_charger_takes_no_change_and_says_why(rig: Rig) -> None:
    cp_id = rig.sim.charge_point_ids()[5]
    assert (await rig.controller.reboot(cp_id)).ok
    writes = rig.sim.writes
    again = await rig.controller.reboot(cp_id)
    start = await rig.controller.remote_start(cp_id, 1, remote_start("0A1B2C3D"))
    stop = await rig.controller.remote_stop(cp_id, 1)
    for result in (again, start, stop):
        assert result.outcome is Outcome.FAILED
        assert result.error == (
            f"charger {cp_id} is Offline: nothing sent; try again when it is Online"
        )
    assert rig.sim.writes == writes  # nothing was sent to it
    # a settings change goes to the cloud, which keeps it for the charger: read back, ok
    setting = await rig.controller.set_connector(cp_id, 2, ConnectorChange(cable_lock=True))
    assert setting.ok, setting.error
    # a vendor answering 409 (an option of the simulator): refused, and the reason named
    rig.sim.config.conflicts = True
    setting = await rig.controller.set_connector(cp_id, 2, ConnectorChange(rfid_lock=True))
    assert setting.outcome is Outcome.FAILED
    assert setting.error == (
        f"charger {cp_id} is Offline (restarting or out of reach): the vendor refused the "
        "change (HTTP 409); try again when it is Online"
    )
    assert rig.audit.records[-1].result == "failed"
    rig.sim.fleet.advance(31)  # back up
    assert (await rig.controller.set_connector(cp_id, 2, ConnectorChange(rfid_lock=True))).ok


@pytest.mark.parametrize("vendor_answer", ["reject", "clip"])
async def test_a_limit_above_the_installation_current_is_refused_and_nothing_sent(
    rig: Rig, vendor_answer: Literal["reject", "clip"]
) -> None:
    # whatever the vendor would do with it (refuse or clip: the reference does not say),
    # charged refuses it before sending, from the installationCurrent it reads
    rig.sim.config.above_installation = vendor_answer
    small = rig.sim.charge_point_ids()[SMALL]
    settings = await rig.client.connector_settings(small, 1)
    assert settings.installation_current == 16
    writes = rig.sim.writes
    too_much = await rig.controller.set_connector(small, 1, ConnectorChange(max_current=20))
    assert too_much.outcome is Outcome.REJECTED
    assert too_much.error == (
        f"maxCurrent 20 A is above the installation current of {small} connector 1 (16 A)"
    )
    point = await rig.controller.set_chargepoint(small, ChargePointChange(max_current=25))
    assert point.outcome is Outcome.REJECTED
    assert rig.sim.writes == writes  # read, compared, refused: no PUT went out
    assert (await rig.client.connector_settings(small, 1)).max_current is None
    assert [(r.field, r.old_value, r.result) for r in rig.audit.records] == [
        ("maxCurrent", None, "rejected"),
        ("maxCurrent", None, "rejected"),
    ]
    fits = await rig.controller.set_connector(small, 1, ConnectorChange(max_current=16))
    assert fits.ok, fits.error
    other = rig.sim.charge_point_ids()[0]  # installed for 32 A
    assert (await rig.controller.set_connector(other, 1, ConnectorChange(max_current=20))).ok


# ------------------------------------------------------------------ the control API in front


@pytest.fixture
async def api(rig: Rig) -> AsyncIterator[tuple[Rig, TestServer, aiohttp.ClientSession]]:
    app = web.Application()
    install_control_routes(app, controller_factory=lambda: rig.controller, token=TOKEN)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield rig, server, http
    finally:
        await server.close()


async def call(
    api: tuple[Rig, TestServer, aiohttp.ClientSession],
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = TOKEN,
) -> tuple[int, Any]:
    _, server, http = api
    headers = {} if token is None else {"Authorization": f"bearer {token}"}
    async with http.request(
        method, server.make_url("/api/control" + path), json=body, headers=headers
    ) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"mode": "Off", "power": 11}, "unknown field(s) power; allowed: mode, maxCurrent"),
        ({"maxCurrent": 3}, "maxCurrent must be 0 to pause, or 6–32 A, got 3"),
        ({"maxCurrent": 40}, "maxCurrent must be 0 to pause, or 6–32 A, got 40"),
        ({"maxCurrent": "abc"}, "or null for no limit, got 'abc'"),
        ({"maxCurrent": "12"}, "as a JSON integer"),
        ({"maxCurrent": "none"}, "as a JSON integer"),
        ({"mode": "on"}, "mode must be one of On, Off, Schedule, got 'on'"),
        ({"mode": "Turbo"}, "mode must be one of On, Off, Schedule, got 'Turbo'"),
    ],
)
async def test_the_api_refuses_unknown_fields_and_invalid_values_sending_nothing(
    api: tuple[Rig, TestServer, aiohttp.ClientSession], body: dict[str, Any], reason: str
) -> None:
    rig = api[0]
    cp_id = rig.sim.charge_point_ids()[0]  # a real charger of the simulator
    before = await rig.client.connector_settings(cp_id, 1)
    writes = rig.sim.writes
    status, answer = await call(api, "PATCH", f"/chargers/{cp_id}/connectors/1/settings", body)
    assert status == 400
    assert reason in answer["error"] and answer["result"] == "rejected"
    assert rig.sim.writes == writes  # the simulator saw no change request at all
    assert await rig.client.connector_settings(cp_id, 1) == before
    assert {(r.charge_point_id, r.connector_id, r.result) for r in rig.audit.records} == {
        (cp_id, 1, "rejected")
    }
    assert sorted(str(r.field) for r in rig.audit.records) == sorted(body)


async def test_the_api_wants_the_token_and_then_changes_the_simulated_charger(
    api: tuple[Rig, TestServer, aiohttp.ClientSession],
) -> None:
    rig = api[0]
    cp_id, connector = await rig.charging_connector()
    path = f"/chargers/{cp_id}/connectors/{connector}/settings"
    for token in (None, "wrong-token-0123456789abcdef"):
        status, _ = await call(api, "PATCH", path, {"maxCurrent": 10}, token=token)
        assert status == 401
    assert rig.sim.writes == 0 and rig.audit.records == []
    status, answer = await call(api, "PATCH", path, {"maxCurrent": 10})
    assert status == 200 and answer["result"] == "ok"
    rig.sim.fleet.advance(60)
    after = await rig.connector_status(cp_id, connector)
    assert 0 < max(m.current for m in after.measurements) <= 10


async def test_a_remote_start_answered_5xx_is_not_sent_again(rig: Rig) -> None:
    # The simulator's error switch turned on just for the command: its 5xx may hide a start
    # that happened, so the client must not repeat it (a stop may be repeated: see test_client).
    cp_id, connector = await rig.charging_connector(above=0.5)
    assert (await rig.controller.remote_stop(cp_id, connector)).ok
    real_start = rig.client.remote_start

    async def start_into_errors(*args: Any, **kwargs: Any) -> None:
        rig.sim.faults.error_rate = 1.0
        try:
            await real_start(*args, **kwargs)
        finally:
            rig.sim.faults.error_rate = 0.0

    rig.client.remote_start = start_into_errors  # type: ignore[method-assign]
    result = await rig.controller.remote_start(cp_id, connector, remote_start("0A1B2C3D"))
    assert result.outcome is Outcome.FAILED
    assert result.error is not None and "not repeated: the charger may have carried it out" in (
        result.error
    )
    starts = [path for _, path in rig.sim.write_log if path.endswith("/remotestart")]
    assert len(starts) == 1
    assert rig.audit.records[-1].result == "failed"
