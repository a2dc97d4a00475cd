"""Lenient parsing of the vendor payloads and the exact PUT bodies they write back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from charged.chargeamps.errors import PayloadError
from charged.chargeamps.models import ChargePointSettings, ConnectorSettings, Measurement
from charged.chargeamps.parsers import (
    parse_chargepoint,
    parse_chargepoint_settings,
    parse_charging_session,
    parse_connector_settings,
    parse_login,
    parse_meter_values,
    parse_refresh,
    parse_schedule,
    parse_status,
    parse_time,
)
from charged.chargeamps.states import ConnectorState


def status_json(**connector: object) -> dict[str, object]:
    base: dict[str, object] = {
        "chargePointId": "1903000191A",
        "connectorId": 1,
        "totalConsumptionKwh": 2.5,
        "chargingPowerKw": 10.4,
        "sessionType": "ThreePhase",
        "status": "Charging",
        "measurements": [
            {"phase": "L1", "current": 15.1, "voltage": 231.0},
            {"phase": "L2", "current": 15.0, "voltage": 230.2},
            {"phase": "L3", "current": 14.9, "voltage": 229.8},
        ],
        "startTime": "2026-01-01T06:00:00Z",
        "endTime": None,
        "sessionId": 42,
    }
    base.update(connector)
    return {"id": "1903000191A", "status": "Online", "connectorStatuses": [base]}


def only_connector(data: dict[str, object], ocpp: str | None = None):  # type: ignore[no-untyped-def]
    status = parse_status(data, ocpp)
    assert len(status.connector_statuses) == 1
    return status.connector_statuses[0]


def test_a_charging_status_parses_field_for_field() -> None:
    status = parse_status(status_json())
    assert status.id == "1903000191A"
    assert status.status == "Online"
    conn = status.connector_statuses[0]
    assert conn.charge_point_id == "1903000191A"
    assert conn.connector_id == 1
    assert conn.total_consumption_kwh == 2.5
    assert conn.charging_power_kw == 10.4
    assert conn.session_type == "ThreePhase"
    assert conn.status == "Charging"
    assert conn.measurements == (
        Measurement("L1", 15.1, 231.0),
        Measurement("L2", 15.0, 230.2),
        Measurement("L3", 14.9, 229.8),
    )
    assert conn.start_time == datetime(2026, 1, 1, 6, 0, tzinfo=UTC)
    assert conn.end_time is None
    assert conn.session_id == 42


@pytest.mark.parametrize("status", ["Weird new state", "17", "-1", "Charging now"])
def test_a_status_no_document_names_is_kept_verbatim_without_a_state(status: str) -> None:
    conn = only_connector(status_json(status=status))
    assert conn.status == status
    assert conn.status_raw is None  # stored as it came: nothing to tell apart
    assert conn.state is None


@pytest.mark.parametrize("ocpp", [None, "1.6"])
@pytest.mark.parametrize(
    "name",
    [
        "Available",
        "Charging",
        "Connected",
        "SuspendedEV",
        "SuspendedEVSE",
        "Finishing",
        "Preparing",
        "Reserved",
        "Unavailable",
        "Faulted",
        "Error",
        "Unknown",
    ],
)
def test_a_name_is_that_name_whatever_the_kind_of_charger(name: str, ocpp: str | None) -> None:
    conn = only_connector(status_json(status=name), ocpp)
    assert conn.status == name
    assert conn.state == ConnectorState(name)
    assert conn.status_raw is None


def test_names_are_matched_without_regard_to_case_and_the_raw_value_is_kept() -> None:
    conn = only_connector(status_json(status="suspendedev"))
    assert (conn.status, conn.status_raw) == ("SuspendedEV", "suspendedev")


CAPI = ["Available", "Charging", "Connected", "Error", "Unknown"]
OCPP = ["Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing",
        "Reserved", "Unavailable", "Faulted", "Unknown"]  # fmt: skip


@pytest.mark.parametrize("raw", [0, 1, 2, 3, 4, "0", "1", " 2 ", "3", "4"])
def test_a_digit_on_a_capi_charger_reads_the_capi_table(raw: object) -> None:
    conn = only_connector(status_json(status=raw), None)
    assert conn.status == CAPI[int(str(raw))]
    assert conn.status_raw == str(raw)


@pytest.mark.parametrize("code", range(10))
def test_a_digit_on_an_ocpp_charger_reads_the_ocpp_table(code: int) -> None:
    for raw in (code, str(code)):
        conn = only_connector(status_json(status=raw), "1.6")
        assert conn.status == OCPP[code]
        assert conn.status_raw == str(code)


def test_digits_beyond_a_table_are_kept_raw() -> None:
    capi = only_connector(status_json(status=7), None)
    assert (capi.status, capi.state) == ("7", None)
    ocpp = only_connector(status_json(status=7), "1.6")
    assert ocpp.status == "Unavailable"


@pytest.mark.parametrize(
    ("status", "session_id", "end", "open_", "charging"),
    [
        ("Charging", None, None, True, True),
        ("SuspendedEV", None, None, True, False),  # a car paused by a limit: still open
        ("SuspendedEVSE", 7, None, True, False),
        ("Finishing", 7, None, True, False),
        ("Available", 7, None, False, False),
        ("Connected", 7, None, True, False),  # a full car, its session not ended
        ("Connected", 7, "2026-01-01T07:00:00Z", False, False),
        ("Connected", None, None, False, False),
        ("Preparing", None, None, False, False),
        ("Something new", 7, None, True, False),
    ],
)
def test_session_open_and_charging_follow_the_normalised_state(
    status: str, session_id: int | None, end: str | None, open_: bool, charging: bool
) -> None:
    conn = only_connector(status_json(status=status, sessionId=session_id, endTime=end))
    assert conn.session_open is open_
    assert conn.charging is charging


def test_a_digit_for_suspended_ev_on_ocpp_is_an_open_session() -> None:
    conn = only_connector(status_json(status=4, sessionId=None), "1.6")
    assert conn.status == "SuspendedEV" and conn.session_open
    capi = only_connector(status_json(status=4, sessionId=None), None)
    assert capi.status == "Unknown" and not capi.session_open


@pytest.mark.parametrize("value", [None, []])
def test_measurements_null_or_empty_is_an_empty_tuple(value: object) -> None:
    assert only_connector(status_json(measurements=value)).measurements == ()


def test_missing_measurements_and_session_fields_are_none_or_empty() -> None:
    data = status_json()
    conn_json = data["connectorStatuses"][0]  # type: ignore[index]
    for key in ("measurements", "sessionId", "startTime", "endTime", "sessionType"):
        del conn_json[key]
    conn = only_connector(data)
    assert conn.measurements == ()
    assert conn.session_id is None and conn.start_time is None and conn.session_type is None


@pytest.mark.parametrize(("raw", "parsed"), [(123, 123), ("123", 123), (" 77 ", 77), ("", None)])
def test_session_id_as_int_or_string(raw: object, parsed: int | None) -> None:
    assert only_connector(status_json(sessionId=raw)).session_id == parsed


def test_numeric_strings_are_accepted_for_floats() -> None:
    conn = only_connector(
        status_json(
            totalConsumptionKwh="4.25",
            measurements=[{"phase": "L1", "current": "15.5", "voltage": "230"}],
        )
    )
    assert conn.total_consumption_kwh == 4.25
    assert conn.measurements == (Measurement("L1", 15.5, 230.0),)


@pytest.mark.parametrize(
    "key", ["totalConsumptionKWh", "TotalConsumptionKwh", "totalconsumptionkwh"]
)
def test_total_consumption_is_found_under_any_casing(key: str) -> None:
    data = status_json()
    conn_json = data["connectorStatuses"][0]  # type: ignore[index]
    del conn_json["totalConsumptionKwh"]
    conn_json[key] = 7.5
    assert only_connector(data).total_consumption_kwh == 7.5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-01-01T06:00:00Z", datetime(2026, 1, 1, 6, tzinfo=UTC)),
        ("2026-01-01T06:00:00", datetime(2026, 1, 1, 6, tzinfo=UTC)),  # no offset → UTC
        ("2026-01-01T07:00:00+01:00", datetime(2026, 1, 1, 6, tzinfo=UTC)),
        ("2026-01-01T06:00:00.1234567", datetime(2026, 1, 1, 6, 0, 0, 123456, tzinfo=UTC)),
        ("2025-12-31T22:00:00-08:00", datetime(2026, 1, 1, 6, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_times_with_or_without_offset_become_aware_utc(
    raw: str | None, expected: datetime | None
) -> None:
    moment = parse_time(raw)
    assert moment == expected
    if moment is not None:
        assert moment.utcoffset() == timedelta(0)


def test_time_zone_offsets_are_converted_not_dropped() -> None:
    moment = parse_time("2026-06-01T12:00:00+02:00")
    assert moment == datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert moment is not None and moment.hour == 10 and moment.tzinfo == UTC


def test_connector_statuses_null_means_no_connectors() -> None:
    status = parse_status({"id": "CP", "status": "Offline", "connectorStatuses": None})
    assert status.connector_statuses == ()
    assert parse_status({"id": "CP", "status": "Offline"}).connector_statuses == ()


def test_missing_charge_point_id_of_a_connector_is_taken_from_the_status() -> None:
    data = status_json()
    del data["connectorStatuses"][0]["chargePointId"]  # type: ignore[index]
    assert only_connector(data).charge_point_id == "1903000191A"


def test_unknown_fields_are_ignored() -> None:
    data = status_json(somethingNew={"nested": True})
    data["firmwareFlavour"] = "beta"
    assert only_connector(data).status == "Charging"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("<html>oops</html>", "expected a JSON object"),
        ([1, 2], "expected a JSON object"),
        ({"status": "Online"}, "ChargePointStatus.id"),
        ({"id": "CP", "status": "Online", "connectorStatuses": "nope"}, "connectorStatuses"),
        (status_json(connectorId="one"), "ConnectorStatus.connectorId"),
        (status_json(sessionId="abc"), "ConnectorStatus.sessionId"),
        (status_json(startTime="yesterday"), "ConnectorStatus.startTime"),
        (status_json(status=None), "ConnectorStatus.status"),
        (status_json(measurements=[{"phase": "L1", "current": "x", "voltage": 1}]), "current"),
        (status_json(measurements={"phase": "L1"}), "measurements"),
        (status_json(totalConsumptionKwh=True), "totalConsumptionKwh"),
    ],
)
def test_garbage_raises_payload_error_naming_the_field(data: object, fragment: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_status(data)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def chargepoint_json() -> dict[str, object]:
    return {
        "id": "1903000191A",
        "name": "Garage 1",
        "password": "s3cr3t-charger",
        "type": "AURA",
        "isLoadbalanced": False,
        "firmwareVersion": "2.1.0",
        "hardwareVersion": "A2",
        "ownerReadOnly": False,
        "ocppVersion": None,
        "settings": {"id": "1903000191A", "dimmer": "Low", "downLight": None, "maxCurrent": 32},
        "connectors": [
            {
                "chargePointId": "1903000191A",
                "connectorId": 1,
                "type": "Charger",
                "settings": {
                    "chargePointId": "1903000191A",
                    "connectorId": 1,
                    "maxCurrent": 16,
                    "rfidLock": False,
                    "mode": "On",
                    "cableLock": True,
                },
            },
            {"chargePointId": "1903000191A", "connectorId": 2, "type": "Schuko"},
        ],
    }


def test_a_charge_point_with_expanded_settings() -> None:
    cp = parse_chargepoint(chargepoint_json())
    assert (cp.id, cp.name, cp.type, cp.firmware_version) == (
        "1903000191A",
        "Garage 1",
        "AURA",
        "2.1.0",
    )
    assert cp.ocpp_version is None and cp.is_loadbalanced is False
    assert cp.settings == ChargePointSettings("1903000191A", "Low", None, 32.0)
    assert [c.connector_id for c in cp.connectors] == [1, 2]
    first = cp.connectors[0].settings
    assert first is not None and first.max_current == 16.0 and first.cable_lock is True
    assert cp.connectors[1].settings is None and cp.connectors[1].type == "Schuko"
    # The charger's password is data we keep, but it never shows up in a repr.
    assert cp.password == "s3cr3t-charger"
    assert "s3cr3t" not in repr(cp)


def test_chargepoint_settings_to_json_is_the_whole_object_without_installation_current() -> None:
    raw = {
        "id": "CP",
        "dimmer": "High",
        "downLight": True,
        "maxCurrent": 20,
        "installationCurrent": 25,
    }
    settings = parse_chargepoint_settings(raw)
    assert settings.installation_current == 25.0
    assert settings.to_json() == {
        "id": "CP",
        "dimmer": "High",
        "downLight": True,
        "maxCurrent": 20.0,
    }
    assert parse_chargepoint_settings(settings.to_json()) == ChargePointSettings(
        "CP", "High", True, 20.0
    )


def test_connector_settings_round_trip_and_exact_field_names() -> None:
    raw = {
        "chargePointId": "CP",
        "connectorId": "2",
        "maxCurrent": None,
        "rfidLock": True,
        "mode": "Schedule",
        "cableLock": False,
        "installationCurrent": 32,
    }
    settings = parse_connector_settings(raw)
    assert settings == ConnectorSettings("CP", 2, None, True, "Schedule", False, 32.0)
    body = settings.to_json()
    assert body == {
        "chargePointId": "CP",
        "connectorId": 2,
        "maxCurrent": None,
        "rfidLock": True,
        "mode": "Schedule",
        "cableLock": False,
    }
    again = parse_connector_settings(body)
    assert again.to_json() == body


def test_charging_session_parses_with_optional_fields_missing() -> None:
    session = parse_charging_session(
        {
            "id": "981",
            "chargePointId": "CP",
            "connectorId": 1,
            "userId": "u-1",
            "sessionType": "OnePhase",
            "startTime": "2026-01-01T06:00:00",
            "endTime": "2026-01-01T07:30:00+00:00",
            "TotalConsumptionKWh": 5.2,
        }
    )
    assert session.id == 981
    assert session.total_consumption_kwh == 5.2
    assert session.end_time is not None and session.start_time is not None
    assert session.end_time - session.start_time == timedelta(minutes=90)
    assert session.rfid is None and session.external_id is None


def test_login_response_parses_and_hides_tokens_in_repr() -> None:
    result = parse_login(
        {
            "message": "ok",
            "token": "tok.en.value",
            "refreshToken": "refresh-value",
            "user": {
                "id": "u1",
                "firstName": "Ada",
                "email": "a@example.org",
                "rfidTags": [{"rfid": "AB"}],
            },
        }
    )
    assert result.token == "tok.en.value" and result.refresh_token == "refresh-value"
    assert result.user is not None and result.user.first_name == "Ada"
    assert result.user.rfid_tags == ({"rfid": "AB"},)
    assert "tok.en.value" not in repr(result) and "refresh-value" not in repr(result)


def test_login_without_token_is_a_payload_error_that_does_not_echo_values() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_login({"token": "", "refreshToken": "half-a-secret"})
    assert "half-a-secret" not in str(caught.value)


def test_refresh_response_may_leave_out_the_refresh_token() -> None:
    assert parse_refresh({"token": "t2", "refreshToken": "r2"}) == ("t2", "r2")
    assert parse_refresh({"token": "t2"}) == ("t2", None)


def test_schedule_keeps_the_raw_object_for_writing_back() -> None:
    raw = {"id": 5, "chargePointId": "CP", "weekdays": [1, 2], "from": "22:00"}
    schedule = parse_schedule(raw)
    assert schedule.id == "5" and schedule.charge_point_id == "CP"
    assert schedule.to_json() == raw


def test_metervalue_callback_accepts_any_casing_and_null_measurements() -> None:
    values = parse_meter_values(
        {
            "meterValueList": [
                {
                    "chargePointId": "CP",
                    "connectorId": 1,
                    "TotalConsumptionKWh": "3.5",
                    "measurements": [{"phase": "L1", "current": 9.1, "voltage": 229}],
                    "timestamp": "2026-01-01T06:00:30+01:00",
                },
                {"chargePointId": "CP", "connectorId": 2, "measurements": None, "timestamp": None},
            ]
        }
    )
    assert values[0].total_consumption_kwh == 3.5
    assert values[0].timestamp == datetime(2026, 1, 1, 5, 0, 30, tzinfo=UTC)
    assert values[0].measurements == (Measurement("L1", 9.1, 229.0),)
    assert values[1].measurements == () and values[1].total_consumption_kwh is None


@pytest.mark.parametrize("recase", [str.upper, lambda k: k[0].upper() + k[1:], str.lower])
def test_a_metervalue_callback_in_pascal_or_any_casing_is_read_whole(recase: Any) -> None:
    camel = {
        "meterValueList": [
            {
                "chargePointId": "CP",
                "connectorId": 2,
                "totalConsumptionKwh": 1.25,
                "measurements": [{"phase": "L2", "current": 7.5, "voltage": None}],
                "timestamp": "2026-01-01T06:00:30Z",
            }
        ]
    }

    def cased(value: Any) -> Any:
        if isinstance(value, dict):
            return {recase(k): cased(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cased(v) for v in value]
        return value

    (value,) = parse_meter_values(cased(camel))  # PascalCase was silently empty
    assert (value.charge_point_id, value.connector_id) == ("CP", 2)
    assert value.total_consumption_kwh == 1.25
    assert value.measurements == (Measurement("L2", 7.5, None),)
    assert value.timestamp == datetime(2026, 1, 1, 6, 0, 30, tzinfo=UTC)
