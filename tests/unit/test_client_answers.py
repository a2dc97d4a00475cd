"""The client reads answers the way the vendor describes them: plain-string PUT answers and
error bodies, numbered statuses by the charger's protocol, status values no document names,
null readings, and every charger's status in one organisation call."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses

from charged.chargeamps.client import ChargeAmpsClient
from charged.chargeamps.errors import ApiError, PayloadError
from charged.chargeamps.models import ConnectorSettings
from charged.clock import FakeClock
from charged.metrics import Metrics
from tests.unit.test_client import (  # the fixtures are the fake vendor's, shared
    ROOT,
    FakeVendor,
    RecordingLogger,
    http,
    log,
    make_client,
    metrics,
    mock,
    status_body,
    vendor,
)

__all__ = ["http", "log", "metrics", "mock", "vendor"]


@pytest.fixture
async def client(
    http: aiohttp.ClientSession, fake_clock: FakeClock, metrics: Metrics, log: RecordingLogger
) -> ChargeAmpsClient:
    return make_client(http, fake_clock, metrics, log)


def plain(status: int, text: str) -> CallbackResult:
    return CallbackResult(
        status=status, body=text, headers={"Content-Type": "application/octet-stream"}
    )


SETTINGS = ConnectorSettings("CP1", 1, 10.0, False, "On", False)


@pytest.mark.parametrize("answer", ["Success", "OK", "<html>done</html>", "\x00\x01"])
async def test_a_2xx_with_a_plain_string_body_is_a_success(
    client: ChargeAmpsClient, vendor: FakeVendor, answer: str
) -> None:
    # the reference: PUT answers are application/octet-stream strings, not JSON
    for path in (
        "/chargepoints/CP1/connectors/1/settings",
        "/chargepoints/CP1/connectors/1/remotestart",
        "/chargepoints/CP1/connectors/1/remotestop",
        "/chargepoints/CP1/reboot",
    ):
        vendor.script(path, plain(200, answer))
    await client.set_connector_settings(SETTINGS)
    await client.remote_start("CP1", 1, rfid="0A1B2C3D")
    await client.remote_stop("CP1", 1)
    await client.reboot("CP1")
    # a non-idempotent start went out once: no "failure" was retried or reported
    assert vendor.count("data", "/chargepoints/CP1/connectors/1/remotestart") == 1


async def test_a_2xx_read_that_is_not_json_is_still_a_payload_error(
    client: ChargeAmpsClient, vendor: FakeVendor
) -> None:
    vendor.script("/chargepoints/CP1/connectors/1/settings", plain(200, "Success"))
    with pytest.raises(PayloadError, match="not JSON"):
        await client.connector_settings("CP1", 1)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            "ConnectorSettings.maxCurrent: 40 is too high",
            "ConnectorSettings.maxCurrent: 40 is too high",
        ),
        ('{"error": "Invalid input", "messageCode": "X"}', "Invalid input"),
        ("", None),
        ("line one\nline two\t" + "x" * 400, "line one line two " + "x" * 141 + "…"),
    ],
)
async def test_an_error_body_is_quoted_in_one_short_line(
    client: ChargeAmpsClient, vendor: FakeVendor, body: str, said: str | None
) -> None:
    vendor.script("/chargepoints/CP1/connectors/1/settings", plain(400, body))
    with pytest.raises(ApiError) as caught:
        await client.set_connector_settings(SETTINGS)
    message = str(caught.value)
    assert message.startswith(
        "PUT /chargepoints/CP1/connectors/1/settings: HTTP 400: the vendor rejected the "
        "request as invalid"
    )
    assert "\n" not in message
    if said is None:
        assert "the vendor said" not in message
    else:
        assert message.endswith(f" (the vendor said: {said})")


def chargepoint(cp_id: str, ocpp: str | None) -> dict[str, Any]:
    return {"id": cp_id, "name": cp_id, "type": "AURA", "ocppVersion": ocpp, "connectors": []}


def numbered(cp_id: str, value: object) -> dict[str, Any]:
    body = status_body(cp_id)
    body["connectorStatuses"][0]["status"] = value
    return body


async def test_a_digit_is_read_by_the_chargers_protocol_learnt_once(
    client: ChargeAmpsClient, vendor: FakeVendor
) -> None:
    vendor.script(
        "/chargepoints/OCPP1/status", *(CallbackResult(payload=numbered("OCPP1", 4)),) * 2
    )
    vendor.script("/chargepoints/OCPP1", CallbackResult(payload=chargepoint("OCPP1", "1.6")))
    vendor.script("/chargepoints/CAPI1/status", CallbackResult(payload=numbered("CAPI1", "2")))
    vendor.script("/chargepoints/CAPI1", CallbackResult(payload=chargepoint("CAPI1", None)))
    first = (await client.status("OCPP1")).connector_statuses[0]
    assert (first.status, first.status_raw, first.session_open) == ("SuspendedEV", "4", True)
    again = (await client.status("OCPP1")).connector_statuses[0]
    assert again.status == "SuspendedEV"
    assert vendor.count("data", "/chargepoints/OCPP1") == 1  # the kind is asked once
    capi = (await client.status("CAPI1")).connector_statuses[0]
    assert (capi.status, capi.status_raw) == ("Connected", "2")
    # a name needs no look-up, whatever the charger
    assert (await client.status("NAMED")).connector_statuses[0].status == "Charging"
    assert vendor.count("data", "/chargepoints/NAMED") == 0


async def test_a_status_no_document_names_is_kept_and_warned_about_once_per_value(
    client: ChargeAmpsClient, vendor: FakeVendor, log: RecordingLogger
) -> None:
    for cp in ("CP1", "CP2"):
        vendor.script(f"/chargepoints/{cp}/status", CallbackResult(payload=numbered(cp, "Parked")))
    vendor.script("/chargepoints/CP3/status", CallbackResult(payload=numbered("CP3", "Zapping")))
    statuses = [await client.status(cp) for cp in ("CP1", "CP2", "CP3")]
    assert [s.connector_statuses[0].status for s in statuses] == ["Parked", "Parked", "Zapping"]
    warned = [kw["status"] for lvl, event, kw in log.lines if "no vendor document" in event]
    assert warned == ["Parked", "Zapping"]


async def test_a_null_current_or_voltage_keeps_the_rest_of_the_status(
    client: ChargeAmpsClient, vendor: FakeVendor
) -> None:
    body = status_body("CP1")
    body["connectorStatuses"][0]["measurements"] = [
        {"phase": "L1", "current": 15.0, "voltage": None},
        {"phase": "L2", "current": None, "voltage": 230.0},
    ]
    vendor.script("/chargepoints/CP1/status", CallbackResult(payload=body))
    (conn,) = (await client.status("CP1")).connector_statuses
    assert [(m.phase, m.current, m.voltage) for m in conn.measurements] == [
        ("L1", 15.0, None),
        ("L2", None, 230.0),
    ]
    assert conn.total_consumption_kwh == 1.5 and conn.status == "Charging"


@pytest.mark.parametrize("statuses", [None, [], "absent"])
async def test_an_offline_charger_with_or_without_connector_statuses(
    client: ChargeAmpsClient, vendor: FakeVendor, statuses: object
) -> None:
    body: dict[str, Any] = {"id": "CP1", "status": "Offline"}
    if statuses != "absent":
        body["connectorStatuses"] = statuses
    vendor.script("/chargepoints/CP1/status", CallbackResult(payload=body))
    status = await client.status("CP1")
    assert (status.status, status.connector_statuses) == ("Offline", ())


ORG = re.compile(re.escape(ROOT) + r"/organisations/([^/]+)/chargepoints/statuses")


async def test_every_status_in_one_organisation_call(
    client: ChargeAmpsClient, vendor: FakeVendor, mock: aioresponses, metrics: Metrics
) -> None:
    broken = {"id": "CP2", "status": "Online", "connectorStatuses": "garbage"}
    answer = [status_body("CP1"), broken, numbered("CP3", 2)]
    mock.get(ORG, payload=answer)
    vendor.script("/chargepoints/owned", CallbackResult(payload=[chargepoint("CP3", "1.6")]))
    await client.login()
    statuses, bad = await client.organisation_statuses("org-7")
    assert [s.id for s in statuses] == ["CP1", "CP3"]
    assert bad == ["CP2"]
    # a digit on a charger not seen yet: one list of the owned chargers tells their kinds
    assert statuses[1].connector_statuses[0].status == "Charging"
    mock.get(ORG, status=404, body="Organisation not found")
    with pytest.raises(ApiError) as caught:
        await client.organisation_statuses("org-7")
    assert caught.value.status == 404
    assert str(caught.value).endswith("(the vendor said: Organisation not found)")
