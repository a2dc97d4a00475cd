"""Validation of control values: what is refused, with which one-line reason."""

from __future__ import annotations

import pytest

from charged.control.validation import (
    UNSET,
    ChargePointChange,
    ConnectorChange,
    InvalidValue,
    asked_fields,
    chargepoint_change_from_json,
    check_installation_current,
    connector_change_from_json,
    empty_body,
    parse_charger_list,
    parse_connector_list,
    parse_max_current,
    parse_mode,
    parse_switch,
    remote_start,
    remote_start_from_json,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        ("none", None),
        ("NULL", None),
        (0, 0),
        ("0", 0),
        (6, 6),
        (32, 32),
        ("10", 10),
        (16.0, 16),
    ],
)
def test_max_current_accepts_null_pause_and_6_to_32(given: object, expected: int | None) -> None:
    assert parse_max_current(given) == expected


@pytest.mark.parametrize("given", [3, 5, 33, 40, -1, "abc", "10.5", 10.5, True, [], {}, "", "1e1"])
def test_max_current_refuses_everything_else(given: object) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_max_current(given)
    message = str(caught.value)
    assert message.startswith("maxCurrent must be")
    assert "\n" not in message


def test_chargepoint_max_current_has_no_pause() -> None:
    with pytest.raises(InvalidValue, match="6–32 A"):
        parse_max_current(0, allow_pause=False)


def test_installation_current_bounds_the_limit() -> None:
    check_installation_current(16, 16.0, "CP1")
    check_installation_current(0, 16.0, "CP1")
    check_installation_current(None, 16.0, "CP1")
    check_installation_current(32, None, "CP1")
    with pytest.raises(InvalidValue, match=r"above the installation current of CP1 \(16 A\)"):
        check_installation_current(20, 16.0, "CP1")


def test_modes_and_switches_are_case_insensitive_and_canonical() -> None:
    assert parse_mode("off") == "Off"
    assert parse_mode("SCHEDULE") == "Schedule"
    assert parse_switch("on", "rfidLock") is True
    assert parse_switch("No", "rfidLock") is False
    with pytest.raises(InvalidValue, match="mode must be one of On, Off, Schedule, got 'auto'"):
        parse_mode("auto")
    with pytest.raises(InvalidValue, match="cableLock must be on or off"):
        parse_switch("maybe", "cableLock")


def test_connector_change_from_json_keeps_null_apart_from_absent() -> None:
    assert connector_change_from_json({"maxCurrent": None}).max_current is None
    change = connector_change_from_json({"mode": "Off"})
    assert change.max_current is UNSET
    assert change.wanted() == {"mode": "Off"}
    full = connector_change_from_json(
        {"mode": "On", "maxCurrent": 10, "rfidLock": True, "cableLock": False}
    )
    assert full == ConnectorChange("On", 10, True, False)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"maxCurrent": 3}, "maxCurrent must be"),
        ({"maxCurrent": 40}, "maxCurrent must be"),
        ({"maxCurrent": "abc"}, "maxCurrent must be"),
        # JSON is held to the OpenAPI file: the CLI's lenient spellings are refused
        ({"mode": "on"}, "mode must be one of On, Off, Schedule, got 'on'"),
        ({"mode": " On"}, "mode must be one of"),
        ({"maxCurrent": "12"}, "maxCurrent must be"),
        ({"maxCurrent": "none"}, "maxCurrent must be"),
        ({"maxCurrent": "null"}, "maxCurrent must be"),
        ({"maxCurrent": 10.0}, "maxCurrent must be"),
        ({"maxCurrent": True}, "maxCurrent must be"),
        ({"mode": "Turbo"}, "mode must be one of"),
        ({"rfidLock": "yes"}, "rfidLock must be true or false"),
        ({"colour": "red"}, "unknown field(s) colour"),
        ({"mode": "On", "extra": 1}, "unknown field(s) extra"),
        ({}, "nothing to change"),
        ([], "must be a JSON object"),
        ("mode=On", "must be a JSON object"),
    ],
)
def test_connector_change_from_json_refuses(body: object, reason: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        connector_change_from_json(body)
    assert reason in str(caught.value)


def test_json_max_current_errors_say_null_not_none() -> None:
    with pytest.raises(InvalidValue) as caught:
        connector_change_from_json({"maxCurrent": "abc"})
    assert str(caught.value) == (
        "maxCurrent must be whole amperes (0 to pause, or 6–32 A) as a JSON integer, "
        "or null for no limit, got 'abc'"
    )
    with pytest.raises(InvalidValue) as caught:
        parse_max_current("abc")  # the CLI's word for no limit is none
    assert str(caught.value).endswith("or none, got 'abc'")


def test_chargepoint_change_from_json() -> None:
    assert chargepoint_change_from_json({"dimmer": "Low"}) == ChargePointChange(dimmer="Low")
    with pytest.raises(InvalidValue, match="dimmer must be one of"):
        chargepoint_change_from_json({"dimmer": "low"})
    with pytest.raises(InvalidValue, match="maxCurrent must be"):
        chargepoint_change_from_json({"maxCurrent": 0})  # no pause for a charge point
    assert chargepoint_change_from_json({"downLight": True, "maxCurrent": 16}).wanted() == {
        "downLight": True,
        "maxCurrent": 16,
    }
    with pytest.raises(InvalidValue, match="dimmer must be one of Off, Low, Medium, High"):
        chargepoint_change_from_json({"dimmer": "bright"})
    with pytest.raises(InvalidValue, match="unknown field"):
        chargepoint_change_from_json({"mode": "On"})


def test_remote_start_rfid_rules() -> None:
    assert remote_start("0a1b2c3d").rfid_length == 4
    assert remote_start("12345", "dec", "4").rfid_format == "Dec"
    assert remote_start_from_json({"rfid": "AABBCCDD", "rfidLength": 4}).rfid == "AABBCCDD"
    # the vendor's rule: 4, 7 or 10 bytes
    assert remote_start("04A1B2C3D4E5F6").rfid_length == 7
    assert remote_start("00112233445566778899").rfid_length == 10
    assert remote_start(str(256**4 - 1), "ReverseDec", 4).rfid_length == 4
    for args, reason in [
        (("xyz",), "must be hex digits"),
        (("ABC",), "two digits per byte"),
        (("12AB", "Dec", 2), "must be decimal digits"),
        (("1234", "Dec"), "rfidLength (bytes) is needed"),
        (("AABB", "Hex", 0), "rfidLength must be 4, 7 or 10 bytes (as documented), got 0"),
        (("AABB",), "rfidLength must be 4, 7 or 10 bytes (as documented), got 2"),
        (("AABBCCDDEE",), "got 5"),
        (("AA" * 16,), "got 16"),
        (("AABBCCDD", "Hex", 7), "a Hex rfid of 7 bytes has 14 digits, got 8 digits"),
        (("AABB", "Hex", True), "rfidLength must be a number"),
        (("AABB", "Base64"), "rfidFormat must be one of"),
        (("",), "rfid must be the tag's id"),
    ]:
        with pytest.raises(InvalidValue) as caught:
            remote_start(*args)
        assert reason in str(caught.value), args
    with pytest.raises(InvalidValue, match="rfid is required"):
        remote_start_from_json({})
    # JSON: the OpenAPI file's patterns, exactly
    for body, reason in [
        ({"rfid": "ABC", "rfidLength": 2}, "4, 7 or 10 bytes of two hex digits each"),
        ({"rfid": " AABBCCDD"}, "4, 7 or 10 bytes of two hex digits each"),
        ({"rfid": "AA" * 5}, "4, 7 or 10 bytes of two hex digits each"),
        ({"rfid": "AABBCCDD", "rfidLength": "4"}, "rfidLength must be a JSON integer"),
        ({"rfid": "1234", "rfidFormat": "dec", "rfidLength": 4}, "rfidFormat must be one of"),
        ({"rfid": "1" * 26, "rfidFormat": "Dec", "rfidLength": 10}, "1–25 decimal digits"),
        ({"rfid": "1234", "rfidFormat": "Dec", "rfidLength": 2}, "must be 4, 7 or 10 bytes"),
    ]:
        with pytest.raises(InvalidValue) as caught:
            remote_start_from_json(body)
        assert reason in str(caught.value), body
    dec = remote_start_from_json({"rfid": "1234", "rfidFormat": "Dec", "rfidLength": 4})
    assert (dec.rfid, dec.rfid_format, dec.rfid_length) == ("1234", "Dec", 4)


def test_lists_and_empty_bodies() -> None:
    assert parse_charger_list("CP1, CP2,CP1") == ("CP1", "CP2")
    assert parse_connector_list("2,1") == (2, 1)
    for bad in ("1,,2", "", "0", "x"):
        with pytest.raises(InvalidValue):
            parse_connector_list(bad)
    with pytest.raises(InvalidValue, match="charger id must be"):
        parse_charger_list("CP 1;rm")
    empty_body({})
    with pytest.raises(InvalidValue, match="must be a JSON object"):
        empty_body(None)  # a JSON null body is not "no body"
    with pytest.raises(InvalidValue) as caught:
        empty_body({"force": True})
    assert str(caught.value) == (
        "unknown field(s) force: this request takes no fields (send {} or no body)"
    )


def test_unknown_field_names_stay_on_one_line() -> None:
    with pytest.raises(InvalidValue) as caught:
        connector_change_from_json({"a\nb": 1})
    assert "\n" not in str(caught.value) and "'a\\nb'" in str(caught.value)


def test_asked_fields_keeps_what_a_refused_body_asked_for() -> None:
    assert asked_fields({"maxCurrent": 40, "power": [1]}) == {"maxCurrent": 40, "power": "a list"}
    assert asked_fields([1, 2]) == {} and asked_fields(None) == {}
