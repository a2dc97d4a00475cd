"""An independent client of the real API — `chargeamps` from PyPI — drives the simulator unchanged.

If the simulator's JSON drifted from the vendor's (a renamed field, a wrong type), this
third-party client's pydantic models would refuse it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from chargeamps.external import ChargeAmpsExternalClient
from chargeamps.models import StartAuth

from charged.simulator import Simulator, SimulatorConfig
from charged.simulator.kinds import ChargerKind

MORNING = 1_767_225_600.0 + 9 * 3600  # 2026-01-01T09:00Z


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # The real clock (chargeamps checks token expiry against time.time()); the fleet starts
    # on a fixed morning so what is plugged in does not depend on when the test runs.
    # Auras, the last of them made a Halo for its settings (a down light the public client
    # can read: it types downLight as a boolean); its connectors stay Type 2
    simulator = Simulator(SimulatorConfig(chargers=6, seed=11, start_time=MORNING))
    simulator.fleet.charge_points()[-1].kind = ChargerKind(model="HALO")
    await simulator.start("127.0.0.1", 0)
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[ChargeAmpsExternalClient]:
    c = ChargeAmpsExternalClient(
        email=sim.account.email,
        password=sim.account.password,
        api_key=sim.account.api_key,
        api_base_url=sim.base_url,
    )
    try:
        yield c
    finally:
        await c.shutdown()


async def test_login_owned_and_status(client: ChargeAmpsExternalClient, sim: Simulator) -> None:
    owned = await client.get_chargepoints()
    assert sim.login_attempts == 1
    assert [cp.id for cp in owned] == sim.charge_point_ids()
    assert [cp.type for cp in owned] == ["AURA"] * 5 + ["HALO"]
    assert all(len(cp.connectors) == 2 for cp in owned)
    statuses = [await client.get_chargepoint_status(cp.id) for cp in owned]
    assert sim.login_attempts == 1  # one login, then the token is reused
    assert {s.status for s in statuses} == {"Online"}
    connectors = [c for s in statuses for c in s.connector_statuses]
    assert len(connectors) == 12
    assert {c.status for c in connectors} >= {"Available", "Charging"}
    for c in connectors:
        if c.status == "Charging":
            assert c.measurements and c.session_id is not None and c.start_time is not None


async def test_connector_settings_get_and_set(
    client: ChargeAmpsExternalClient, sim: Simulator
) -> None:
    cp = sim.charge_point_ids()[0]
    settings = await client.get_chargepoint_connector_settings(cp, 1)
    assert (settings.charge_point_id, settings.connector_id) == (cp, 1)
    assert settings.mode == "On" and settings.max_current is None
    await client.set_chargepoint_connector_settings(
        settings.model_copy(update={"max_current": 10.0, "cable_lock": True})
    )
    again = await client.get_chargepoint_connector_settings(cp, 1)
    assert again.max_current == 10 and again.cable_lock is True
    await client.set_chargepoint_connector_settings(again.model_copy(update={"mode": "Off"}))
    status = await client.get_chargepoint_status(cp)
    first = next(c for c in status.connector_statuses if c.connector_id == 1)
    assert first.measurements is None  # mode Off: nothing flows


async def test_charge_point_settings_sessions_and_commands(
    client: ChargeAmpsExternalClient, sim: Simulator
) -> None:
    cp = sim.charge_point_ids()[1]
    # The public client types downLight as a boolean, which an Aura sends as null (the
    # reference): its charger settings are read from a Halo's here.
    halo = next(p for p in sim.fleet.charge_points() if p.kind.has_down_light)
    settings = await client.get_chargepoint_settings(halo.id)
    await client.set_chargepoint_settings(settings.model_copy(update={"dimmer": "High"}))
    assert (await client.get_chargepoint_settings(halo.id)).dimmer == "High"

    sim.fleet.advance(24 * 3600)
    sessions = await client.get_all_chargingsessions(cp)
    assert sessions
    one = await client.get_chargingsession(cp, sessions[0].id)
    assert one == sessions[0]

    status = await client.get_chargepoint_status(cp)
    plugged = [c for c in status.connector_statuses if c.status != "Available"]
    if plugged:
        c = plugged[0]
        await client.remote_stop(cp, c.connector_id)
        await client.remote_start(
            cp,
            c.connector_id,
            StartAuth(
                rfid_length=4, rfid_format="Hex", rfid="0A0B0C0D", external_transaction_id="x-1"
            ),
        )
    await client.reboot(cp)
    assert (await client.get_chargepoint_status(sim.charge_point_ids()[2])).status == "Online"


async def test_refresh_through_the_clients_own_path(
    client: ChargeAmpsExternalClient, sim: Simulator
) -> None:
    await client.get_chargepoints()
    # Make the client believe its token expired (waiting 2 h is not an option in a test):
    # it then calls /auth/refreshToken, its own spelling, instead of logging in again.
    client._token_expire = 0
    await client.get_chargepoints()
    assert sim.login_attempts == 1
    assert sim.tokens.live_pairs(sim.account.email) == 1
