"""Control operations against the simulated vendor API over real sockets on 127.0.0.1.

Each change is checked twice: the Controller's own read-back, and the next status poll showing
the effect on the vehicle (limit 10 A → it draws ≤ 10 A; mode Off → 0 A).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from charged.chargeamps.client import ChargeAmpsClient
from charged.chargeamps.models import ConnectorStatus
from charged.clock import FakeClock
from charged.control.audit import MemoryAuditSink
from charged.control.operations import Controller, Outcome
from charged.control.validation import ChargePointChange, ConnectorChange, remote_start
from charged.simulator import Simulator, SimulatorConfig

MORNING = 1_767_258_000.0  # 2026-01-01T09:00:00Z: bays are busy


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
    sim = Simulator(SimulatorConfig(chargers=12, seed=3, start_time=MORNING), clock=fake_clock)
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
    off = await rig.controller.set_connector(cp_id, connector, ConnectorChange(mode="Off"))
    assert off.ok
    rig.sim.fleet.advance(20)
    stopped = await rig.connector_status(cp_id, connector)
    assert stopped.status != "Charging"
    assert all(m.current == 0 for m in stopped.measurements)
    on = await rig.controller.set_connector(cp_id, connector, ConnectorChange(mode="On"))
    assert on.ok
    rig.sim.fleet.advance(20)
    assert (await rig.connector_status(cp_id, connector)).status == "Charging"


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
    result = await rig.controller.set_chargepoint(
        cp_id, ChargePointChange(dimmer="High", down_light=True)
    )
    assert result.ok, result.error
    settings = await rig.client.chargepoint_settings(cp_id)
    assert (settings.dimmer, settings.down_light) == ("High", True)


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
    assert stopped.ok, stopped.error
    rig.sim.fleet.advance(20)
    assert (await rig.connector_status(cp_id, connector)).status != "Charging"
    started = await rig.controller.remote_start(cp_id, connector, remote_start("0A1B2C3D"))
    assert started.ok, started.error
    rig.sim.fleet.advance(20)
    assert (await rig.connector_status(cp_id, connector)).status == "Charging"
    rebooted = await rig.controller.reboot(cp_id)
    assert rebooted.ok
    assert (await rig.client.status(cp_id)).status == "Offline"
    assert [r.action for r in rig.audit.records] == ["remote_stop", "remote_start", "reboot"]
