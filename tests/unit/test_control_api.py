"""The control API over a real socket on 127.0.0.1, with an in-memory vendor behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from test_control_operations import FakeVendor  # the in-memory vendor of the Controller tests

from charged.clock import FakeClock
from charged.control.api import ControllerUnavailable, install_control_routes
from charged.control.audit import MemoryAuditSink
from charged.control.operations import Controller

TOKEN = "control-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Api:
    def __init__(self, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else aiohttp.JsonPayload(body))
        async with self.session.request(
            method,
            self.server.make_url("/api/control" + path),
            data=data,
            headers=AUTH if headers is None else headers,
        ) as response:
            return response.status, await response.json()


@pytest.fixture
def vendor() -> FakeVendor:
    return FakeVendor("CP1", "CP2")


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
async def api(
    vendor: FakeVendor, audit: MemoryAuditSink, fake_clock: FakeClock
) -> AsyncIterator[Api]:
    controller = Controller(vendor, audit, actor="control-api", clock=fake_clock)
    app = web.Application()
    install_control_routes(app, controller_factory=lambda: controller, token=TOKEN)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Api(server, session)
    await server.close()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": TOKEN},  # no scheme
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Bearer {TOKEN.upper()}"},  # the token itself is case-sensitive
        {"Authorization": f"Bearer{TOKEN}"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {TOKEN} {TOKEN}"},
    ],
)
async def test_anything_but_the_exact_token_is_401_and_sends_nothing(
    api: Api, vendor: FakeVendor, audit: MemoryAuditSink, headers: dict[str, str]
) -> None:
    status, body = await api.call(
        "PATCH", "/chargers/CP1/connectors/1/settings", body={"mode": "Off"}, headers=headers
    )
    assert status == 401
    assert body == {"error": "missing or wrong bearer token"}
    assert vendor.writes == [] and vendor.owned_calls == 0 and audit.records == []
    status, _ = await api.call("GET", "/chargers", headers=headers)
    assert status == 401


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_the_bearer_scheme_is_case_insensitive(api: Api, scheme: str) -> None:
    status, body = await api.call(
        "GET", "/chargers", headers={"Authorization": f"{scheme} {TOKEN}"}
    )
    assert status == 200, body
    status, _ = await api.call("GET", "/chargers", headers={"Authorization": f"{scheme}  {TOKEN}"})
    assert status == 200  # more than one space before the token is still one separator


async def test_a_change_through_the_api_is_verified_and_audited_as_api(
    api: Api, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    status, body = await api.call(
        "PATCH", "/chargers/CP1/connectors/2/settings", body={"maxCurrent": 10, "mode": "On"}
    )
    assert status == 200, body
    assert body["ok"] is True and body["result"] == "ok"
    assert body["changes"] == [
        {"field": "mode", "old": "On", "new": "On"},
        {"field": "maxCurrent", "old": None, "new": 10},
    ]
    assert vendor.connectors[("CP1", 2)].max_current == 10
    assert {(r.actor, r.field, r.result) for r in audit.records} == {
        ("control-api", "maxCurrent", "ok"),
        ("control-api", "mode", "ok"),
    }
    status, shown = await api.call("GET", "/chargers/CP1/connectors/2/settings")
    assert status == 200 and shown["maxCurrent"] == 10 and shown["installationCurrent"] == 32


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"maxCurrent": 3}, "maxCurrent must be"),
        ({"maxCurrent": 40}, "maxCurrent must be"),
        ({"maxCurrent": "abc"}, "maxCurrent must be"),
        # only what docs/control-api.yaml allows: no CLI spellings in JSON
        ({"mode": "on"}, "mode must be one of On, Off, Schedule"),
        ({"maxCurrent": "12"}, "maxCurrent must be"),
        ({"maxCurrent": "none"}, "maxCurrent must be"),
        ({"mode": "Turbo"}, "mode must be one of"),
        ({"mode": "On", "power": 11}, "unknown field(s) power"),
        ({}, "nothing to change"),
        ([1, 2], "must be a JSON object"),
    ],
)
async def test_invalid_values_are_400_with_a_reason_send_nothing_and_are_audited(
    api: Api, vendor: FakeVendor, audit: MemoryAuditSink, body: Any, reason: str
) -> None:
    status, answer = await api.call("PATCH", "/chargers/CP1/connectors/1/settings", body=body)
    assert status == 400
    assert reason in answer["error"]
    assert answer["result"] == "rejected" and answer["ok"] is False
    assert vendor.writes == [] and vendor.status_reads == 0
    fields = list(body) if isinstance(body, dict) and body else [None]
    assert [(r.actor, r.charge_point_id, r.connector_id, r.field) for r in audit.records] == [
        ("control-api", "CP1", 1, field) for field in fields
    ]
    assert {(r.action, r.result, r.error) for r in audit.records} == {
        ("connector_settings", "rejected", answer["error"])
    }
    assert all(r.old_value is None for r in audit.records)


async def test_a_refused_body_keeps_what_it_asked_for_in_the_audit(
    api: Api, audit: MemoryAuditSink
) -> None:
    status, _ = await api.call(
        "PATCH", "/chargers/CP1/connectors/2/settings", body={"maxCurrent": 40, "mode": "Off"}
    )
    assert status == 400
    assert [(r.field, r.new_value) for r in audit.records] == [
        ("maxCurrent", "40"),
        ("mode", '"Off"'),
    ]
    status, answer = await api.call("POST", "/chargers/CP2/reboot", raw=b"{not json")
    assert status == 400 and answer["error"] == "the body is not valid JSON"
    assert (audit.records[-1].action, audit.records[-1].field) == ("reboot", None)
    status, answer = await api.call("POST", "/chargers/CP2/reboot", body={"now": True})
    assert answer["error"] == (
        "unknown field(s) now: this request takes no fields (send {} or no body)"
    )
    # a path that names no charger has nothing to be filed under
    count = len(audit.records)
    assert (await api.call("POST", "/chargers/%20/reboot"))[0] == 400
    assert len(audit.records) == count


async def test_malformed_requests_are_400_never_500(api: Api, vendor: FakeVendor) -> None:
    for method, path, raw in [
        ("PATCH", "/chargers/CP1/connectors/1/settings", b"{not json"),
        ("PATCH", "/chargers/CP1/connectors/1/settings", b"\xff\xfe"),
        ("PATCH", "/chargers/CP1/connectors/1/settings", b""),
        ("PATCH", "/chargers/CP1/connectors/x/settings", b'{"mode": "On"}'),
        ("PATCH", "/chargers/CP1/connectors/0/settings", b'{"mode": "On"}'),
        ("POST", "/chargers/CP1/connectors/1/start", b'{"rfid": "zz"}'),
        ("POST", "/chargers/CP1/connectors/1/stop", b'{"now": true}'),
        ("POST", "/chargers/CP1/reboot", b"[]"),
        ("POST", "/chargers/CP1/reboot", b"null"),  # not an object, not "no body" either
        ("POST", "/chargers/CP1/connectors/1/stop", b"null"),
        ("PATCH", "/chargers/CP1/settings", b'{"dimmer": "Blinding"}'),
        ("GET", "/chargers/%20/settings", b""),
    ]:
        status, answer = await api.call(method, path, raw=raw)
        assert status == 400, (method, path, raw, answer)
        assert isinstance(answer["error"], str) and "\n" not in answer["error"]
    assert vendor.writes == []


async def test_unknown_charger_or_connector_is_404_and_audited(
    api: Api, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    status, answer = await api.call("POST", "/chargers/NOPE/reboot")
    assert status == 404 and answer["error"] == "charger NOPE is not one of this account's chargers"
    status, answer = await api.call(
        "PATCH", "/chargers/CP1/connectors/7/settings", body={"mode": "Off"}
    )
    assert status == 404
    status, answer = await api.call("GET", "/chargers/NOPE/settings")
    assert status == 404
    assert vendor.writes == []
    assert [(r.charge_point_id, r.result) for r in audit.records] == [
        ("NOPE", "rejected"),
        ("CP1", "rejected"),
    ]


async def test_a_change_that_does_not_stick_is_502_failed(
    api: Api, vendor: FakeVendor, audit: MemoryAuditSink
) -> None:
    vendor.ignore_writes.add("CP2")
    status, answer = await api.call(
        "PATCH", "/chargers/CP2/connectors/1/settings", body={"mode": "Off"}
    )
    assert status == 502
    assert answer["ok"] is False and answer["error"].startswith("did not stick: mode reads back")
    assert audit.records[-1].result == "failed"


async def test_commands_and_listing(api: Api, vendor: FakeVendor) -> None:
    status, stopped = await api.call("POST", "/chargers/CP1/connectors/1/stop")
    assert status == 200 and stopped["note"] == "stopped: connector now Connected"
    status, answer = await api.call(
        "POST", "/chargers/CP1/connectors/1/start", body={"rfid": "0A1B2C3D"}
    )
    assert status == 200 and answer["action"] == "remote_start"
    assert (await api.call("POST", "/chargers/CP2/reboot", body={}))[0] == 200
    assert [w[0] for w in vendor.writes] == ["stop", "start", "reboot"]
    status, idle = await api.call("POST", "/chargers/CP1/connectors/2/stop", body={})
    assert status == 200 and idle["result"] == "unchanged"
    assert idle["note"] == "connector was not charging (Available): nothing sent"
    vendor.ignore_commands = True
    status, unseen = await api.call("POST", "/chargers/CP2/connectors/1/stop")
    assert status == 202 and unseen["result"] == "unverified" and unseen["ok"] is False
    status, listing = await api.call("GET", "/chargers")
    assert status == 200
    assert [c["id"] for c in listing["chargers"]] == ["CP1", "CP2"]
    assert listing["chargers"][0]["connectors"][0] == {
        "connectorId": 1,
        "status": "Charging",
        "current": 14.8,
        "powerKw": 3.4,
        "energyKwh": 2.5,
    }
    status, both = await api.call("GET", "/chargers/CP1/settings")
    assert status == 200
    assert both["charger"]["dimmer"] == "Medium"
    assert [c["connectorId"] for c in both["connectors"]] == [1, 2]


async def test_controller_not_ready_is_503() -> None:
    def not_ready() -> Controller:
        raise ControllerUnavailable("the collector is still starting")

    app = web.Application()
    install_control_routes(app, controller_factory=not_ready, token=TOKEN)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with (
            aiohttp.ClientSession(headers=AUTH) as session,
            session.get(server.make_url("/api/control/chargers")) as response,
        ):
            assert response.status == 503
            assert "still starting" in (await response.json())["error"]
    finally:
        await server.close()


def test_a_short_token_is_refused_at_install() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        install_control_routes(web.Application(), controller_factory=lambda: None, token="short")  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/chargers"),  # a route, the wrong method: was 405 before the token
        ("PUT", "/chargers/CP1/settings"),
        ("GET", "/chargers/CP1/reboot"),
        ("POST", "/chargers/CP1/connectors/1/settings"),
        ("GET", "/no/such/route"),  # no route: was 404 before the token
        ("OPTIONS", "/chargers"),
        ("GET", ""),
        ("PATCH", "/"),
    ],
)
async def test_without_the_token_every_method_and_path_is_401(
    api: Api, vendor: FakeVendor, audit: MemoryAuditSink, method: str, path: str
) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789abcdef"}):
        status, body = await api.call(method, path, headers=headers)
        assert status == 401, (method, path)
        assert body == {"error": "missing or wrong bearer token"}
    assert vendor.writes == [] and audit.records == []
    # with the token, the router's own answers are back: the route map is for the operator
    url = api.server.make_url("/api/control" + path)
    async with api.session.request(method, url, headers=AUTH) as response:
        assert response.status in (404, 405)


async def test_a_deeply_nested_body_is_400_with_one_log_line_and_no_traceback(
    vendor: FakeVendor,
    audit: MemoryAuditSink,
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines: list[tuple[str, str, dict[str, Any]]] = []

    class Recorder:
        def __getattr__(self, level: str) -> Any:
            return lambda event, **kw: lines.append((level, event, kw))

    controller = Controller(vendor, audit, actor="control-api", clock=fake_clock, logger=Recorder())
    app = web.Application()
    install_control_routes(app, controller_factory=lambda: controller, token=TOKEN)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(server, session)
            for raw in (
                b"[" * 100_000,
                b'{"mode": ' + b"[" * 100_000,
                b"[" * 100_000 + b"]" * 100_000,
            ):
                lines.clear()
                with caplog.at_level("DEBUG"):
                    status, body = await api.call(
                        "PATCH", "/chargers/CP1/connectors/1/settings", raw=raw
                    )
                assert status == 400, body
                assert "nested too deeply" in body["error"] or "not valid JSON" in body["error"]
                assert len(lines) == 1, lines
                assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"
                caplog.clear()
    finally:
        await server.close()
    assert vendor.writes == []
    assert {r.result for r in audit.records} == {"rejected"}
