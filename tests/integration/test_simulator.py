"""The simulated vendor API over real sockets: every endpoint, every error path, every fault."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from charged.clock import FakeClock
from charged.simulator import Account, Faults, Simulator, SimulatorConfig
from charged.simulator.fleet import charge_point_ids

START = 1_767_225_600.0 + 9 * 3600  # 2026-01-01T09:00Z, the morning rush
ACCOUNT = Account()


@dataclass
class Api:
    """A bare HTTP client of the simulator: the tests see status codes and raw bodies."""

    sim: Simulator
    http: aiohttp.ClientSession
    token: str = ""
    version: str = "v5"

    def url(self, path: str) -> str:
        return f"{self.sim.base_url}/api/{self.version}{path}"

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        sent = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        sent.update(headers or {})
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        if data is not None:
            sent["Content-Type"] = "application/json"
        async with self.http.request(
            method, self.url(path), data=data, headers=sent, params=params
        ) as resp:
            text = await resp.text()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = text
            return resp.status, parsed, resp

    async def login(self, account: Account = ACCOUNT) -> dict[str, Any]:
        status, body, _ = await self.call(
            "POST",
            "/auth/login",
            {"email": account.email, "password": account.password},
            headers={"apiKey": account.api_key},
        )
        assert status == 200, body
        self.token = body["token"]
        return dict(body)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        status, body, _ = await self.call("GET", path, **kw)
        return status, body

    async def put(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, parsed, _ = await self.call("PUT", path, body, **kw)
        return status, parsed


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[Simulator]:
    simulator = Simulator(
        SimulatorConfig(chargers=12, seed=11, start_time=START, record_served=True), clock=clock
    )
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


def jwt_payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


async def find_charging(api: Api, min_amps: float = 12.0) -> tuple[str, int]:
    """A connector whose vehicle draws well above the taper current right now."""
    for _ in range(200):
        for cp in api.sim.charge_point_ids():
            _, body = await api.get(f"/chargepoints/{cp}/status")
            for c in body["connectorStatuses"]:
                if c["status"] == "Charging" and c["measurements"][0]["current"] > min_amps:
                    return cp, c["connectorId"]
        api.sim.fleet.advance(600)
    raise AssertionError("nothing charging")


async def connector_status(api: Api, cp: str, cid: int) -> dict[str, Any]:
    status, body = await api.get(f"/chargepoints/{cp}/status")
    assert status == 200
    return next(c for c in body["connectorStatuses"] if c["connectorId"] == cid)


# ------------------------------------------------------------------ authentication


@pytest.mark.parametrize("version", ["v4", "v5"])
async def test_login_on_both_versions_returns_a_jwt_with_a_real_exp(
    sim: Simulator, clock: FakeClock, version: str
) -> None:
    async with aiohttp.ClientSession() as http:
        api = Api(sim, http, version=version)
        body = await api.login()
        assert set(body) == {"message", "token", "refreshToken", "user"}
        assert set(body["user"]) == {
            "id",
            "firstName",
            "lastName",
            "email",
            "mobile",
            "rfidTags",
            "userStatus",
        }
        assert body["user"]["email"] == ACCOUNT.email
        assert isinstance(body["refreshToken"], str) and body["refreshToken"]
        claims = jwt_payload(body["token"])
        assert claims["exp"] == int(clock.time()) + 7200
        status, owned = await api.get("/chargepoints/owned")
        assert status == 200 and len(owned) == 12


@pytest.mark.parametrize(
    "headers, body",
    [
        ({}, {"email": ACCOUNT.email, "password": ACCOUNT.password}),
        ({"apiKey": "wrong"}, {"email": ACCOUNT.email, "password": ACCOUNT.password}),
        ({"apiKey": ACCOUNT.api_key}, {"email": ACCOUNT.email, "password": "wrong"}),
        ({"apiKey": ACCOUNT.api_key}, {"email": "other@x.invalid", "password": ACCOUNT.password}),
    ],
    ids=["no-apikey", "wrong-apikey", "wrong-password", "wrong-email"],
)
async def test_login_refused_is_401_without_a_json_body(
    sim: Simulator, headers: dict[str, str], body: dict[str, str]
) -> None:
    async with aiohttp.ClientSession() as http:
        status, parsed, resp = await Api(sim, http).call(
            "POST", "/auth/login", body, headers=headers
        )
    assert status == 401 and parsed is None
    assert resp.content_type != "application/json"
    assert sim.login_attempts == 1


async def test_login_with_a_body_that_is_not_json_is_400(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http:
        status, _, _ = await Api(sim, http).call(
            "POST", "/auth/login", raw=b"{email", headers={"apiKey": ACCOUNT.api_key}
        )
    assert status == 400


async def test_data_calls_need_a_live_genuine_bearer_token(api: Api) -> None:
    good = api.token
    for token in ("", "not-a-jwt", good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")):
        api.token = token
        assert (await api.get("/chargepoints/owned"))[0] == 401
    api.token = good
    assert (await api.get("/chargepoints/owned"))[0] == 200
    status, _, _ = await api.call("GET", "/chargepoints/owned", headers={"Authorization": good})
    assert status == 401  # the word Bearer is required


async def test_token_expires_after_its_lifetime(api: Api, clock: FakeClock) -> None:
    await clock.advance(7199)
    assert (await api.get("/chargepoints/owned"))[0] == 200
    await clock.advance(2)
    assert (await api.get("/chargepoints/owned"))[0] == 401


@pytest.mark.parametrize("path", ["/auth/refreshtoken", "/auth/refreshToken"])
async def test_refresh_swaps_the_pair(api: Api, clock: FakeClock, path: str) -> None:
    old_token = api.token
    _, login, _ = await api.call(
        "POST",
        "/auth/login",
        {"email": ACCOUNT.email, "password": ACCOUNT.password},
        headers={"apiKey": ACCOUNT.api_key},
    )
    await clock.advance(7300)  # the access token has expired; the refresh token has not
    status, body, _ = await api.call(
        "POST", path, {"token": login["token"], "refreshToken": login["refreshToken"]}
    )
    assert status == 200 and set(body) == {"token", "refreshToken"}
    assert jwt_payload(body["token"])["exp"] == int(clock.time()) + 7200
    api.token = body["token"]
    assert (await api.get("/chargepoints/owned"))[0] == 200
    api.token = old_token
    assert (await api.get("/chargepoints/owned"))[0] == 401
    # the used refresh token is spent
    status, err, _ = await api.call(
        "POST", path, {"token": login["token"], "refreshToken": login["refreshToken"]}
    )
    assert status == 400 and set(err) == {"error", "messageCode"}


@pytest.mark.parametrize(
    "body",
    [
        {"token": "x", "refreshToken": "unknown"},
        {"token": "x"},
        {"refreshToken": 5},
        ["not", "an", "object"],
    ],
)
async def test_refresh_failure_is_400_with_error_and_message_code(api: Api, body: object) -> None:
    status, err, _ = await api.call("POST", "/auth/refreshtoken", body)
    assert status == 400 and isinstance(err["error"], str) and isinstance(err["messageCode"], str)


async def test_refresh_with_another_pairs_token_is_refused(api: Api) -> None:
    first = await api.login()
    second = await api.login()
    status, _, _ = await api.call(
        "POST",
        "/auth/refreshtoken",
        {"token": first["token"], "refreshToken": second["refreshToken"]},
    )
    assert status == 400


async def test_eleventh_login_logs_out_the_oldest_token(sim: Simulator, api: Api) -> None:
    logins = [await api.login() for _ in range(10)]  # 11 logins with the fixture's
    assert sim.tokens.live_pairs(ACCOUNT.email) == 10
    statuses = []
    for login in logins:
        api.token = login["token"]
        statuses.append((await api.get("/chargepoints/owned"))[0])
    assert statuses == [200] * 10
    fixture_login = await api.login()  # the 12th: logs out logins[0]
    api.token = logins[0]["token"]
    assert (await api.get("/chargepoints/owned"))[0] == 401
    status, _, _ = await api.call(
        "POST",
        "/auth/refreshtoken",
        {"token": logins[0]["token"], "refreshToken": logins[0]["refreshToken"]},
    )
    assert status == 400  # its refresh token went with it
    api.token = fixture_login["token"]
    assert (await api.get("/chargepoints/owned"))[0] == 200


# ------------------------------------------------------------------ charge points


async def test_owned_lists_aura_charge_points_field_for_field(api: Api, sim: Simulator) -> None:
    status, owned = await api.get("/chargepoints/owned")
    assert status == 200
    assert [cp["id"] for cp in owned] == sim.charge_point_ids()
    for cp in owned:
        assert set(cp) == {
            "id",
            "name",
            "password",
            "type",
            "isLoadbalanced",
            "firmwareVersion",
            "hardwareVersion",
            "ownerReadOnly",
            "ocppVersion",
            "connectors",
        }
        assert cp["type"] == "AURA" and cp["ocppVersion"] is None
        assert isinstance(cp["isLoadbalanced"], bool) and isinstance(cp["name"], str)
        assert [c["connectorId"] for c in cp["connectors"]] == [1, 2]
        assert all(
            c["type"] == "Charger" and c["chargePointId"] == cp["id"] for c in cp["connectors"]
        )


async def test_charge_point_with_and_without_expanded_settings(api: Api, sim: Simulator) -> None:
    cp = sim.charge_point_ids()[0]
    status, plain = await api.get(f"/chargepoints/{cp}")
    assert status == 200 and "settings" not in plain
    status, full = await api.get(f"/chargepoints/{cp}", params={"expand": "settings"})
    assert status == 200
    assert full["settings"]["id"] == cp and full["settings"]["installationCurrent"] == 32
    assert all(c["settings"]["mode"] == "On" for c in full["connectors"])


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/chargepoints/{cp}"),
        ("GET", "/chargepoints/{cp}/status"),
        ("GET", "/chargepoints/{cp}/settings"),
        ("PUT", "/chargepoints/{cp}/settings"),
        ("GET", "/chargepoints/{cp}/connectors/1/settings"),
        ("PUT", "/chargepoints/{cp}/connectors/1/settings"),
        ("GET", "/chargepoints/{cp}/chargingsessions"),
        ("GET", "/chargepoints/{cp}/connectors/1/chargingsessions"),
        ("GET", "/chargepoints/{cp}/chargingsessions/1"),
        ("PUT", "/chargepoints/{cp}/connectors/1/remotestart"),
        ("PUT", "/chargepoints/{cp}/connectors/1/remotestop"),
        ("PUT", "/chargepoints/{cp}/reboot"),
        ("GET", "/chargepoints/{cp}/schedules"),
    ],
)
async def test_unknown_charge_point_is_404(api: Api, method: str, path: str) -> None:
    status, _, _ = await api.call(
        method, path.format(cp="0000000000X"), {} if method == "PUT" else None
    )
    assert status == 404


async def test_unknown_connector_is_404(api: Api, sim: Simulator) -> None:
    cp = sim.charge_point_ids()[0]
    for cid in ("3", "0", "x"):
        assert (await api.get(f"/chargepoints/{cp}/connectors/{cid}/settings"))[0] == 404


async def test_status_fields_and_types(api: Api, sim: Simulator) -> None:
    seen = set()
    for cp in sim.charge_point_ids():
        status, body = await api.get(f"/chargepoints/{cp}/status")
        assert status == 200 and set(body) == {"id", "status", "connectorStatuses"}
        assert body["id"] == cp and body["status"] == "Online"
        for c in body["connectorStatuses"]:
            assert set(c) == {
                "chargePointId",
                "connectorId",
                "totalConsumptionKwh",
                "chargingPowerKw",
                "sessionType",
                "status",
                "measurements",
                "startTime",
                "endTime",
                "sessionId",
            }
            seen.add(c["status"])
            assert isinstance(c["totalConsumptionKwh"], float)
            assert isinstance(c["chargingPowerKw"], float)
            if c["status"] == "Charging":
                assert [m["phase"] for m in c["measurements"]] == ["L1", "L2", "L3"]
                power = sum(m["current"] * m["voltage"] for m in c["measurements"]) / 1000
                assert c["chargingPowerKw"] == pytest.approx(power, abs=0.01)
                assert c["sessionType"] in ("OnePhase", "ThreePhase")
            else:
                assert c["measurements"] is None and c["chargingPowerKw"] == 0.0
            if c["status"] == "Available":
                assert c["sessionId"] is None and c["totalConsumptionKwh"] == 0.0
            else:
                assert isinstance(c["sessionId"], int)
                assert c["startTime"].endswith("Z") and c["endTime"] is None
    assert "Charging" in seen and "Available" in seen
    assert len(sim.served) == 12 and sim.served[0].body["id"] == sim.charge_point_ids()[0]


# ------------------------------------------------------------------ settings


async def test_charge_point_settings_get_put_and_errors(api: Api, sim: Simulator) -> None:
    cp = sim.charge_point_ids()[1]
    path = f"/chargepoints/{cp}/settings"
    status, settings = await api.get(path)
    assert status == 200
    assert settings == {
        "id": cp,
        "dimmer": "Medium",
        "downLight": None,  # an Aura has no down light
        "maxCurrent": None,
        "installationCurrent": 32,
    }
    # a PUT answers with a plain string, as the reference describes it
    status, answer, resp = await api.call("PUT", path, {**settings, "dimmer": "Low"})
    assert (status, answer, resp.content_type) == (200, "Success", "application/octet-stream")
    assert (await api.get(path))[1] == {**settings, "dimmer": "Low"}  # downLight still null
    for bad in (
        {**settings, "dimmer": "Bright"},
        {**settings, "downLight": "yes"},
        {**settings, "downLight": True},  # an Aura has none to switch
        {**settings, "maxCurrent": 40},
        {**settings, "id": "1111111111A"},
        [],
    ):
        assert (await api.put(path, bad))[0] == 400, bad
    assert (await api.put(path, raw=b"{not json"))[0] == 400
    assert (await api.put(path))[0] == 403  # no body
    assert (await api.get(path))[1]["dimmer"] == "Low"
    # errors are plain strings too, with the documented codes
    status, answer, resp = await api.call("PUT", path, {**settings, "dimmer": "Bright"})
    assert (status, resp.content_type) == (400, "application/octet-stream")
    assert answer == "ChargePointSettings.dimmer: must be one of Off, Low, Medium, High"


async def test_connector_settings_get_put_and_errors(api: Api, sim: Simulator) -> None:
    cp = sim.charge_point_ids()[2]
    path = f"/chargepoints/{cp}/connectors/2/settings"
    status, settings = await api.get(path)
    assert status == 200
    assert settings == {
        "chargePointId": cp,
        "connectorId": 2,
        "maxCurrent": None,
        "rfidLock": False,
        "mode": "On",
        "cableLock": False,
        "installationCurrent": 32,
    }
    changed = {**settings, "maxCurrent": 16, "rfidLock": True, "cableLock": True}
    assert (await api.put(path, changed))[0] == 200
    assert (await api.get(path))[1] == changed
    for good in (0, 6, 32, 10.5, None):
        assert (await api.put(path, {**settings, "maxCurrent": good}))[0] == 200, good
        assert (await api.get(path))[1]["maxCurrent"] == good
    for bad in (
        {**settings, "maxCurrent": 5},
        {**settings, "maxCurrent": 33},
        {**settings, "maxCurrent": "10"},
        {**settings, "maxCurrent": True},
        {**settings, "mode": "Auto"},
        {**settings, "rfidLock": "yes"},
        {k: v for k, v in settings.items() if k != "cableLock"},
        {**settings, "connectorId": 1},
    ):
        assert (await api.put(path, bad))[0] == 400, bad
    assert (await api.put(path))[0] == 403


# ------------------------------------------------------------------ the closed loop


async def test_limit_10a_caps_the_vehicle_at_the_next_poll(api: Api, sim: Simulator) -> None:
    cp, cid = await find_charging(api)
    path = f"/chargepoints/{cp}/connectors/{cid}/settings"
    _, settings = await api.get(path)
    assert (await api.put(path, {**settings, "maxCurrent": 10}))[0] == 200
    now = await connector_status(api, cp, cid)
    assert now["status"] == "Charging"
    assert max(m["current"] for m in now["measurements"]) <= 10
    sim.fleet.advance(300)
    later = await connector_status(api, cp, cid)
    if later["status"] == "Charging":  # (unless the car got full meanwhile)
        assert max(m["current"] for m in later["measurements"]) <= 10
    assert (await api.put(path, {**settings, "maxCurrent": 4}))[0] == 400
    assert (await api.put(path, {**settings, "maxCurrent": 0}))[0] == 200
    paused = await connector_status(api, cp, cid)
    assert paused["status"] == "Connected" and paused["measurements"] is None


async def test_mode_off_drops_to_zero_and_on_resumes(api: Api) -> None:
    cp, cid = await find_charging(api)
    path = f"/chargepoints/{cp}/connectors/{cid}/settings"
    _, settings = await api.get(path)
    assert (await api.put(path, {**settings, "mode": "Off"}))[0] == 200
    off = await connector_status(api, cp, cid)
    assert off["chargingPowerKw"] == 0.0 and off["measurements"] is None
    assert off["status"] == "Connected"
    assert (await api.put(path, {**settings, "mode": "On"}))[0] == 200
    on = await connector_status(api, cp, cid)
    assert on["status"] == "Charging" and on["measurements"][0]["current"] > 6


# ------------------------------------------------------------------ sessions and commands


async def test_charging_sessions_lists_filters_and_truth(api: Api, sim: Simulator) -> None:
    cp = sim.charge_point_ids()[0]
    sim.fleet.advance(24 * 3600)
    status, sessions = await api.get(f"/chargepoints/{cp}/chargingsessions")
    assert status == 200 and len(sessions) >= 2
    starts = [s["startTime"] for s in sessions]
    assert starts == sorted(starts, reverse=True)  # newest first
    truth = {t.session_id: t for t in sim.fleet.sessions(cp)}
    for s in sessions:
        assert set(s) == {
            "id",
            "chargePointId",
            "connectorId",
            "userId",
            "rfid",
            "rfidDec",
            "sessionType",
            "startTime",
            "endTime",
            "totalConsumptionKwh",
            "externalTransactionId",
            "externalId",
        }
        t = truth[s["id"]]
        assert s["totalConsumptionKwh"] == pytest.approx(t.energy_kwh, abs=1e-3)
        assert (s["endTime"] is None) == (t.end is None)
    ended = next(s for s in sessions if s["endTime"] is not None)
    status, one = await api.get(f"/chargepoints/{cp}/chargingsessions/{ended['id']}")
    assert status == 200 and one == ended
    assert (await api.get(f"/chargepoints/{cp}/chargingsessions/999999999"))[0] == 404

    status, two = await api.get(f"/chargepoints/{cp}/chargingsessions", params={"maxCount": "2"})
    assert two == sessions[:2]
    status, window = await api.get(
        f"/chargepoints/{cp}/chargingsessions",
        params={"startTime": sessions[-1]["startTime"], "endTime": sessions[1]["startTime"]},
    )
    assert window == sessions[1:]
    status, on_1 = await api.get(f"/chargepoints/{cp}/connectors/1/chargingsessions")
    assert status == 200 and {s["connectorId"] for s in on_1} <= {1}
    assert len(on_1) == sum(1 for s in sessions if s["connectorId"] == 1)
    for bad in ({"startTime": "yesterday"}, {"maxCount": "-1"}, {"endTime": "2026-13-01"}):
        assert (await api.get(f"/chargepoints/{cp}/chargingsessions", params=bad))[0] == 400


async def test_remote_stop_and_start(api: Api, sim: Simulator) -> None:
    cp, cid = await find_charging(api, min_amps=5)
    before = await connector_status(api, cp, cid)
    base = f"/chargepoints/{cp}/connectors/{cid}"
    assert (await api.put(f"{base}/remotestop"))[0] == 403  # no body
    assert (await api.put(f"{base}/remotestop", {}))[0] == 200
    after = await connector_status(api, cp, cid)
    assert after["status"] == "Connected" and after["sessionId"] is None
    assert after["totalConsumptionKwh"] == 0.0
    _, ended = await api.get(f"/chargepoints/{cp}/chargingsessions/{before['sessionId']}")
    assert ended["endTime"] is not None
    assert ended["totalConsumptionKwh"] >= before["totalConsumptionKwh"]

    start = {
        "rfidLength": 4,
        "rfidFormat": "Hex",
        "rfid": "0A0B0C0D",
        "externalTransactionId": "t-1",
    }
    assert (await api.put(f"{base}/remotestart", {**start, "rfidFormat": "Oct"}))[0] == 400
    assert (await api.put(f"{base}/remotestart", {**start, "rfidLength": "4"}))[0] == 400
    # 4, 7 or 10 bytes, as documented; a Hex id two digits per byte
    for wrong in ({"rfidLength": 2, "rfid": "0A0B"}, {"rfidLength": 7}, {"rfid": "0A0B0C0G"}):
        assert (await api.put(f"{base}/remotestart", {**start, **wrong}))[0] == 400, wrong
    assert (await api.put(f"{base}/remotestart"))[0] == 403
    assert (await api.put(f"{base}/remotestart", start))[0] == 200
    restarted = await connector_status(api, cp, cid)
    assert restarted["status"] == "Charging"
    assert restarted["sessionId"] not in (None, before["sessionId"])

    available = []
    for p in sim.charge_point_ids():
        _, body = await api.get(f"/chargepoints/{p}/status")
        available += [c for c in body["connectorStatuses"] if c["status"] == "Available"]
    empty = (available[0]["chargePointId"], available[0]["connectorId"])
    path = f"/chargepoints/{empty[0]}/connectors/{empty[1]}/remotestart"
    # nothing plugged in: no refusal is documented; accepted, and nothing happens
    assert (await api.put(path, start))[0] == 200
    assert (await connector_status(api, empty[0], empty[1]))["status"] == "Available"
    sim.config.conflicts = True  # the invented answer, as an option
    status, answer = await api.put(path, start)
    assert (status, answer["messageCode"]) == (409, "NoVehicle")


async def test_reboot_takes_the_charger_offline_briefly(api: Api, sim: Simulator) -> None:
    cp = sim.charge_point_ids()[4]
    assert (await api.put(f"/chargepoints/{cp}/reboot"))[0] == 403
    assert (await api.put(f"/chargepoints/{cp}/reboot", {}))[0] == 200
    assert (await api.get(f"/chargepoints/{cp}/status"))[1] == {
        "id": cp,
        "status": "Offline",
        "connectorStatuses": None,
    }
    sim.fleet.advance(31)
    assert (await api.get(f"/chargepoints/{cp}/status"))[1]["status"] == "Online"


async def test_schedules_crud(api: Api, sim: Simulator) -> None:
    cp = sim.charge_point_ids()[0]
    base = f"/chargepoints/{cp}/schedules"
    assert (await api.get(base)) == (200, [])
    status, created, _ = await api.call("POST", base, {"name": "night", "isActive": True})
    assert status == 200 and created["chargePointId"] == cp and created["name"] == "night"
    sid = created["id"]
    assert (await api.get(f"{base}/{sid}")) == (200, created)
    assert (await api.put(base, {**created, "isActive": False}))[0] == 200
    assert (await api.get(f"{base}/{sid}"))[1]["isActive"] is False
    assert (await api.put(base, {**created, "id": 999}))[0] == 404
    assert (await api.put(base, {"name": "no id"}))[0] == 400
    assert (await api.call("DELETE", f"{base}/{sid}"))[0] == 200
    assert (await api.get(f"{base}/{sid}"))[0] == 404
    assert (await api.call("DELETE", f"{base}/{sid}"))[0] == 404


async def test_callbacks_enable_and_disable(api: Api, sim: Simulator) -> None:
    ids = sim.charge_point_ids()[:2]
    path = "/chargepoints/callbacks"
    assert (await api.put(f"{path}/enable", {"chargePointIds": ids}))[0] == 200
    assert sim.callbacks_enabled == set(ids)
    assert (await api.put(f"{path}/disable", {"chargePointIds": ids[:1]}))[0] == 200
    assert sim.callbacks_enabled == {ids[1]}
    assert (await api.put(f"{path}/enable", {"chargePointIds": ["0000000000X"]}))[0] == 404
    assert (await api.put(f"{path}/enable", {"chargePointIds": "all"}))[0] == 400
    assert (await api.put(f"{path}/enable"))[0] == 403


# ------------------------------------------------------------------ faults


async def test_latency_and_jitter_delay_answers_on_the_simulator_clock(
    api: Api, sim: Simulator, clock: FakeClock
) -> None:
    sim.faults.latency, sim.faults.latency_jitter = 2.0, 1.0
    before = clock.monotonic()
    for _ in range(5):
        assert (await api.get("/chargepoints/owned"))[0] == 200
    waited = clock.monotonic() - before
    assert 5 * 2.0 <= waited <= 5 * 3.0
    assert waited != 10.0  # the jitter added something


async def test_error_rate_answers_5xx(api: Api, sim: Simulator) -> None:
    sim.faults.error_rate = 1.0
    codes = {(await api.get("/chargepoints/owned"))[0] for _ in range(30)}
    assert codes <= {500, 502, 503} and len(codes) >= 2
    sim.faults.error_rate = 0.3
    codes_list = [(await api.get("/chargepoints/owned"))[0] for _ in range(200)]
    assert 30 <= sum(c >= 500 for c in codes_list) <= 90
    assert (await api.login())["token"]  # logins are not hit


async def test_rate_limit_answers_429_with_retry_after(api: Api, sim: Simulator) -> None:
    sim.faults.rate_limit_rate, sim.faults.retry_after = 1.0, 7
    status, _, resp = await api.call("GET", "/chargepoints/owned")
    assert status == 429 and resp.headers["Retry-After"] == "7"


async def test_timeout_fault_never_answers(api: Api, sim: Simulator) -> None:
    sim.faults.timeout_rate = 1.0
    pending = asyncio.create_task(api.get("/chargepoints/owned"))
    await asyncio.wait_for(sim.wait_hung(1), timeout=10)
    assert not pending.done()
    pending.cancel()  # the client gives up
    with pytest.raises(asyncio.CancelledError):
        await pending


async def test_hung_requests_do_not_block_stop(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http:
        api = Api(sim, http)
        await api.login()
        sim.faults.timeout_rate = 1.0
        pending = asyncio.create_task(api.get("/chargepoints/owned"))
        await asyncio.wait_for(sim.wait_hung(1), timeout=10)
        await asyncio.wait_for(sim.stop(), timeout=10)
        try:
            result = await asyncio.wait_for(pending, timeout=10)
        except aiohttp.ClientError:
            return
        assert result[0] == 503


async def test_malformed_status_is_garbage_json(api: Api, sim: Simulator) -> None:
    cp = sim.charge_point_ids()[3]
    sim.faults.malformed.add(cp)
    status, body, resp = await api.call("GET", f"/chargepoints/{cp}/status")
    assert status == 200 and resp.content_type == "application/json"
    assert isinstance(body, str)  # did not parse
    with pytest.raises(ValueError):
        json.loads(body)
    assert all(s.charge_point_id != cp for s in sim.served)
    other = sim.charge_point_ids()[4]
    assert isinstance((await api.get(f"/chargepoints/{other}/status"))[1], dict)


async def test_offline_charger(api: Api, sim: Simulator) -> None:
    cp = sim.charge_point_ids()[5]
    sim.faults.offline.add(cp)
    # connectorStatuses stays, null (nullable but present in the schema)
    offline = {"id": cp, "status": "Offline", "connectorStatuses": None}
    assert (await api.get(f"/chargepoints/{cp}/status")) == (200, offline)
    sim.faults.offline.discard(cp)
    assert (await api.get(f"/chargepoints/{cp}/status"))[1]["status"] == "Online"


async def test_an_offline_charger_takes_changes_without_effect_by_default(
    api: Api, sim: Simulator
) -> None:
    cp = sim.charge_point_ids()[6]
    base = f"/chargepoints/{cp}"
    _, point = await api.get(f"{base}/settings")
    start = {"rfidLength": 4, "rfidFormat": "Hex", "rfid": "0A0B0C0D"}
    assert (await api.put(f"{base}/reboot", {}))[0] == 200  # offline while it restarts
    before = await api.get(f"{base}/status")
    for path, body in [
        (f"{base}/connectors/1/remotestart", start),
        (f"{base}/connectors/1/remotestop", {}),
        (f"{base}/reboot", {}),
    ]:
        assert (await api.put(path, body))[0] == 200, path  # no refusal is documented
    assert await api.get(f"{base}/status") == before  # and nothing reached the charger
    # the cloud keeps settings for it
    assert (await api.put(f"{base}/settings", {**point, "dimmer": "Low"}))[0] == 200
    assert (await api.get(f"{base}/settings"))[1]["dimmer"] == "Low"
    sim.fleet.advance(31)
    assert (await api.get(f"{base}/status"))[1]["status"] == "Online"


async def test_an_offline_charger_refuses_every_change_with_409_as_an_option(
    api: Api, sim: Simulator
) -> None:
    sim.config.conflicts = True
    cp = sim.charge_point_ids()[6]
    base = f"/chargepoints/{cp}"
    _, point = await api.get(f"{base}/settings")
    _, plug = await api.get(f"{base}/connectors/1/settings")
    start = {"rfidLength": 4, "rfidFormat": "Hex", "rfid": "0A0B0C0D"}
    changes = [
        (f"{base}/settings", {**point, "dimmer": "Low"}),
        (f"{base}/connectors/1/settings", {**plug, "mode": "Off"}),
        (f"{base}/connectors/1/remotestart", start),
        (f"{base}/connectors/1/remotestop", {}),
        (f"{base}/reboot", {}),
    ]
    assert (await api.put(f"{base}/reboot", {}))[0] == 200  # offline while it restarts
    for path, body in changes:
        status, answer = await api.put(path, body)
        assert status == 409, path
        assert answer == {
            "error": f"charge point {cp} is offline; try again when it is online",
            "messageCode": "ChargePointOffline",
        }
    # the cloud still knows the settings, unchanged
    assert (await api.get(f"{base}/settings")) == (200, point)
    assert (await api.get(f"{base}/connectors/1/settings")) == (200, plug)
    sim.fleet.advance(31)  # back online
    assert (await api.put(f"{base}/settings", {**point, "dimmer": "Low"}))[0] == 200
    sim.faults.offline.add(cp)  # the fault switch means the same
    assert (await api.put(f"{base}/connectors/1/settings", {**plug, "mode": "Off"}))[0] == 409


async def test_every_change_request_is_counted_and_logged(api: Api, sim: Simulator) -> None:
    cp = sim.charge_point_ids()[0]
    before = sim.writes
    await api.get(f"/chargepoints/{cp}/settings")
    await api.get(f"/chargepoints/{cp}/status")
    assert sim.writes == before  # reads and logins are not changes
    await api.put(f"/chargepoints/{cp}/reboot")  # refused (no body): still sent
    await api.put(f"/chargepoints/{cp}/connectors/9/remotestop", {})  # 404: still sent
    assert sim.writes == before + 2
    assert list(sim.write_log)[-2:] == [
        ("PUT", f"/api/v5/chargepoints/{cp}/reboot"),
        ("PUT", f"/api/v5/chargepoints/{cp}/connectors/9/remotestop"),
    ]


async def test_no_measurements_while_charging(api: Api, sim: Simulator) -> None:
    cp, cid = await find_charging(api, min_amps=5)
    sim.faults.no_measurements = True
    c = await connector_status(api, cp, cid)
    assert c["status"] == "Charging" and c["measurements"] is None
    assert c["chargingPowerKw"] > 0


async def test_short_token_lifetime_is_announced_in_exp(
    api: Api, sim: Simulator, clock: FakeClock
) -> None:
    sim.faults.token_lifetime = 60
    body = await api.login()
    assert jwt_payload(body["token"])["exp"] == int(clock.time()) + 60
    await clock.advance(61)
    assert (await api.get("/chargepoints/owned"))[0] == 401


async def test_tokens_expiring_before_their_announced_exp(
    api: Api, sim: Simulator, clock: FakeClock
) -> None:
    sim.faults.token_lifetime, sim.faults.token_exp_claim = 60, 7200
    body = await api.login()
    assert jwt_payload(body["token"])["exp"] == int(clock.time()) + 7200
    await clock.advance(61)
    assert (await api.get("/chargepoints/owned"))[0] == 401
    status, _, _ = await api.call(
        "POST",
        "/auth/refreshtoken",
        {"token": body["token"], "refreshToken": body["refreshToken"]},
    )
    assert status == 200  # the way out is a refresh


async def test_ignore_writes_answers_200_and_changes_nothing(api: Api, sim: Simulator) -> None:
    cp = sim.charge_point_ids()[6]
    sim.faults.ignore_writes.add(cp)
    path = f"/chargepoints/{cp}/connectors/1/settings"
    _, settings = await api.get(path)
    assert (await api.put(path, {**settings, "maxCurrent": 10}))[0] == 200
    assert (await api.get(path))[1]["maxCurrent"] is None
    cp_path = f"/chargepoints/{cp}/settings"
    _, cp_settings = await api.get(cp_path)
    assert (await api.put(cp_path, {**cp_settings, "dimmer": "High"}))[0] == 200
    assert (await api.get(cp_path))[1]["dimmer"] == "Medium"


async def test_installation_current_is_per_charger_and_caps_max_current(clock: FakeClock) -> None:
    ids = charge_point_ids(seed=11, count=3)
    config = SimulatorConfig(
        chargers=3, seed=11, start_time=START, installation_currents={ids[1]: 16}
    )
    sim = Simulator(config, clock=clock)
    await sim.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(sim, http)
            await api.login()
            for cp, amps in zip(ids, (32, 16, 32), strict=True):
                _, point = await api.get(f"/chargepoints/{cp}/settings")
                _, plug = await api.get(f"/chargepoints/{cp}/connectors/2/settings")
                assert point["installationCurrent"] == plug["installationCurrent"] == amps
            path = f"/chargepoints/{ids[1]}/connectors/2/settings"
            _, plug = await api.get(path)
            assert (await api.put(path, {**plug, "maxCurrent": 16}))[0] == 200
            status, answer = await api.put(path, {**plug, "maxCurrent": 20})
            assert status == 400
            assert answer == (
                "ConnectorSettings.maxCurrent: 20 A is above the installation current (16 A)"
            )
            _, point = await api.get(f"/chargepoints/{ids[1]}/settings")
            cp_path = f"/chargepoints/{ids[1]}/settings"
            assert (await api.put(cp_path, {**point, "maxCurrent": 25}))[0] == 400
            assert (await api.get(path))[1]["maxCurrent"] == 16
            # the other chargers keep their 32 A
            other = f"/chargepoints/{ids[0]}/connectors/2/settings"
            _, plug = await api.get(other)
            assert (await api.put(other, {**plug, "maxCurrent": 32}))[0] == 200
            # as an option, clipped to what the wiring carries instead of refused
            sim.config.above_installation = "clip"
            _, plug = await api.get(path)
            assert (await api.put(path, {**plug, "maxCurrent": 20}))[0] == 200
            assert (await api.get(path))[1]["maxCurrent"] == 16
            assert (await api.put(cp_path, {**point, "maxCurrent": 25}))[0] == 200
            assert (await api.get(cp_path))[1]["maxCurrent"] == 16
    finally:
        await sim.stop()


def test_installation_currents_must_be_6_to_32_a_and_for_known_chargers() -> None:
    with pytest.raises(ValueError, match="installation current of every charger must be 6–32 A"):
        Simulator(SimulatorConfig(chargers=2, installation_current=40))
    with pytest.raises(ValueError, match="which is not one of the 2 simulated chargers"):
        Simulator(SimulatorConfig(chargers=2, installation_currents={"0000000000Z": 16}))


def test_impossible_faults_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="error_rate must be between 0 and 1"):
        Simulator(SimulatorConfig(faults=Faults(error_rate=2.0)))
    with pytest.raises(ValueError, match="speed must be positive"):
        Simulator(SimulatorConfig(speed=0))
