"""The simulator's mixed fleet and the shapes the reference describes beyond the plain Aura:
OCPP and CAPI statuses as names and digits, a Halo with a Schuko socket, a single connector
owner, null readings, the organisation endpoint and the schedule override paths."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from charged.clock import FakeClock
from charged.simulator import Simulator, SimulatorConfig
from charged.simulator.kinds import MIXED_FLEET
from tests.integration.test_simulator import START, Api

CAPI_NUMBERS = {"Available": 0, "Charging": 1, "Connected": 2}  # the v4 document's
OCPP_NUMBERS = {"Available": 0, "Preparing": 1, "Charging": 2, "SuspendedEVSE": 3,
                "SuspendedEV": 4, "Finishing": 5}  # fmt: skip


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(chargers=14, seed=5, start_time=START, mixed_fleet=True)
    simulator = Simulator(config, clock=FakeClock(START))
    await simulator.start("127.0.0.1", 0)
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def api(sim: Simulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        client = Api(sim, http)
        await client.login()
        yield client


async def listed(api: Api) -> dict[str, dict[str, Any]]:
    _, owned = await api.get("/chargepoints/owned")
    return {cp["id"]: cp for cp in owned}


async def test_the_mixed_fleet_lists_every_kind(api: Api, sim: Simulator) -> None:
    owned = list((await listed(api)).values())
    assert [(cp["type"], cp["ocppVersion"], cp["ownerReadOnly"]) for cp in owned[:7]] == [
        (k.model, k.ocpp_version, k.owned_connector is not None) for k in MIXED_FLEET
    ]
    assert {cp["type"] for cp in owned} == {"AURA", "HALO"}


async def test_statuses_come_as_names_or_digits_by_the_chargers_protocol(
    api: Api, sim: Simulator
) -> None:
    seen: dict[str, set[object]] = {}
    for _ in range(60):  # an hour and a half of the morning
        for cp in sim.fleet.charge_points():
            _, body = await api.get(f"/chargepoints/{cp.id}/status")
            for c in body["connectorStatuses"]:
                seen.setdefault(f"{cp.kind.ocpp_version}/{cp.kind.spelling}", set()).add(
                    c["status"]
                )
        sim.fleet.advance(90)
    assert seen["None/names"] <= set(CAPI_NUMBERS)
    assert seen["None/digits"] <= set(CAPI_NUMBERS.values())
    assert seen["None/ocpp-names"] <= set(OCPP_NUMBERS)
    assert seen["1.6/names"] <= set(OCPP_NUMBERS)
    assert seen["1.6/digits"] <= set(OCPP_NUMBERS.values())
    assert all(isinstance(v, int) for v in seen["1.6/digits"] | seen["None/digits"])
    assert "SuspendedEV" in seen["1.6/names"] | seen["None/ocpp-names"]


async def test_a_paused_ocpp_connector_reads_suspended_evse_and_a_stopped_one_preparing(
    api: Api, sim: Simulator
) -> None:
    ocpp = [cp for cp in sim.fleet.charge_points() if cp.kind.uses_ocpp_states]
    for _ in range(100):
        found = [
            (cp, c)
            for cp in ocpp
            for c in cp.connectors
            if (await connector(api, cp.id, c.connector_id)).get("status") in ("Charging", 2)
        ]
        if found:
            break
        sim.fleet.advance(60)
    cp, c = found[0]
    base = f"/chargepoints/{cp.id}/connectors/{c.connector_id}"
    _, plug = await api.get(f"{base}/settings")
    assert (await api.put(f"{base}/settings", {**plug, "maxCurrent": 0}))[0] == 200
    sim.fleet.advance(10)
    assert (await connector(api, cp.id, c.connector_id))["status"] == cp.kind.spell("SuspendedEVSE")
    assert (await api.put(f"{base}/remotestop", {}))[0] == 200
    assert (await connector(api, cp.id, c.connector_id))["status"] == cp.kind.spell("Preparing")


async def connector(api: Api, cp: str, cid: int) -> dict[str, Any]:
    _, body = await api.get(f"/chargepoints/{cp}/status")
    return next((c for c in body["connectorStatuses"] if c["connectorId"] == cid), {})


async def test_a_halo_has_a_schuko_socket_and_a_down_light(api: Api, sim: Simulator) -> None:
    halo = next(cp for cp in (await listed(api)).values() if cp["type"] == "HALO")
    assert [c["type"] for c in halo["connectors"]] == ["Charger", "Schuko"]
    path = f"/chargepoints/{halo['id']}/settings"
    _, settings = await api.get(path)
    assert settings["downLight"] is False
    assert (await api.put(path, {**settings, "downLight": True}))[0] == 200
    # a null downLight leaves the light as it is (it used to turn it off)
    assert (await api.put(path, {**settings, "downLight": None}))[0] == 200
    assert (await api.get(path))[1]["downLight"] is True
    for _ in range(300):
        schuko = await connector(api, halo["id"], 2)
        if schuko["sessionType"] is not None:
            break
        sim.fleet.advance(120)
    assert schuko["sessionType"] == "Schuko"
    if schuko["measurements"]:
        assert max(m["current"] for m in schuko["measurements"]) <= 10
    _, sessions = await api.get(f"/chargepoints/{halo['id']}/connectors/2/chargingsessions")
    assert sessions and {s["sessionType"] for s in sessions} == {"Schuko"}


async def test_a_single_connector_owner_sees_one_and_may_not_write_the_other(
    api: Api, sim: Simulator
) -> None:
    shared = next(cp for cp in (await listed(api)).values() if cp["ownerReadOnly"])
    cp = shared["id"]
    mine, theirs = shared["connectors"]
    assert mine["connectorUserId"] != theirs["connectorUserId"]
    _, status = await api.get(f"/chargepoints/{cp}/status")
    assert [c["connectorId"] for c in status["connectorStatuses"]] == [1]
    _, plug = await api.get(f"/chargepoints/{cp}/connectors/2/settings")
    status_code, answer = await api.put(
        f"/chargepoints/{cp}/connectors/2/settings", {**plug, "mode": "Off"}
    )
    assert (status_code, answer) == (403, f"connector 2 of {cp} belongs to another user")
    sim.fleet.advance(6 * 3600)  # sessions on both connectors by now
    _, seen = await api.get(f"/chargepoints/{cp}/chargingsessions")
    assert seen and {s["connectorId"] for s in seen} == {1}  # the other user's are not ours
    assert (await api.get(f"/chargepoints/{cp}/connectors/2/chargingsessions"))[0] == 403
    _, plug1 = await api.get(f"/chargepoints/{cp}/connectors/1/settings")
    ok = await api.put(f"/chargepoints/{cp}/connectors/1/settings", {**plug1, "mode": "Off"})
    assert ok[0] == 200


async def test_null_readings_and_any_status_value_as_faults(api: Api, sim: Simulator) -> None:
    cp = sim.charge_point_ids()[0]
    sim.faults.connector_status[cp] = "Faulted"
    sim.faults.null_readings.add(cp)
    _, body = await api.get(f"/chargepoints/{cp}/status")
    assert {c["status"] for c in body["connectorStatuses"]} == {"Faulted"}
    for _ in range(200):
        charging = [c for c in body["connectorStatuses"] if c["measurements"]]
        if charging:
            break
        sim.fleet.advance(60)
        _, body = await api.get(f"/chargepoints/{cp}/status")
    l1, l2, l3 = charging[0]["measurements"]
    assert l1["current"] is not None and l2["current"] is None and l3["voltage"] is None


async def test_the_organisation_answers_every_status_in_one_call(api: Api, sim: Simulator) -> None:
    org = sim.config.organisation_id
    status, bodies = await api.get(f"/organisations/{org}/chargepoints/statuses")
    assert status == 200
    assert [b["id"] for b in bodies] == sim.charge_point_ids()
    assert sim.request_counts == {"organisation": 1}
    one = sim.charge_point_ids()[3]
    assert bodies[3] == (await api.get(f"/chargepoints/{one}/status"))[1]
    assert (await api.get("/organisations/someone-else/chargepoints/statuses"))[0] == 404
    api.version = "v4"  # a v5 endpoint only
    assert (await api.get(f"/organisations/{org}/chargepoints/statuses"))[0] == 404


async def test_schedule_override_paths(api: Api, sim: Simulator) -> None:
    cp = sim.charge_point_ids()[0]
    status_path = f"/chargepoints/{cp}/schedule/override/status"
    assert (await api.get(status_path))[1] == [
        {"connectorId": 1, "isOverridden": False},
        {"connectorId": 2, "isOverridden": False},
    ]
    assert (await api.put(f"/chargepoints/{cp}/connectors/2/schedule/override"))[0] == 200
    assert (await api.get(status_path))[1][1] == {"connectorId": 2, "isOverridden": True}


async def test_the_client_overrides_a_schedule_on_the_documented_paths(sim: Simulator) -> None:
    from charged.chargeamps.client import ChargeAmpsClient

    cp = sim.charge_point_ids()[0]
    async with aiohttp.ClientSession() as http:
        client = ChargeAmpsClient(
            http,
            base_url=sim.base_url,
            email=sim.account.email,
            password=sim.account.password,
            api_key=sim.account.api_key,
        )
        assert await client.schedule_override_status(cp) == {1: False, 2: False}
        await client.override_schedule(cp, 1)  # a plain-string 200: a success
        assert await client.schedule_override_status(cp) == {1: True, 2: False}
