"""The typed status decoding is a fast path only: whatever it accepts, ``json.loads`` and
``parse_status`` read the same; anything else goes the JSON way, errors included."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from charged.chargeamps.errors import PayloadError
from charged.chargeamps.models import ChargePointStatus, Measurement
from charged.chargeamps.parsers import parse_status
from charged.chargeamps.status_wire import _slot_setters, decode_status


def connector(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "chargePointId": "1903000191A",
        "connectorId": 1,
        "totalConsumptionKwh": 2.5,
        "chargingPowerKw": 10.4,
        "sessionType": "ThreePhase",
        "status": "Charging",
        "measurements": [
            {"phase": "L1", "current": 15.1, "voltage": 231.0},
            {"phase": "L2", "current": None, "voltage": 230},
        ],
        "startTime": "2026-12-04T11:02:03Z",
        "endTime": None,
        "sessionId": 42,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def body(*connectors: dict[str, object], **top: object) -> bytes:
    status: dict[str, object] = {"id": "1903000191A", "status": "Online"}
    status["connectorStatuses"] = list(connectors)
    status.update(top)
    return json.dumps(status).encode()


def old_way(raw: bytes) -> ChargePointStatus | PayloadError:
    try:
        return parse_status(json.loads(raw))
    except PayloadError as exc:
        return exc


def test_the_usual_answer_is_decoded_typed_into_the_same_model() -> None:
    raw = body(connector(), connector(connectorId=2, status="available", measurements=None))
    got = decode_status(raw)
    assert isinstance(got, ChargePointStatus)
    assert got == old_way(raw)
    assert got.connector_statuses[0].start_time == datetime(2026, 12, 4, 11, 2, 3, tzinfo=UTC)
    assert got.connector_statuses[1].status == "Available"
    assert got.connector_statuses[1].status_raw == "available"


def test_the_models_built_without_their_init_are_the_same_objects() -> None:
    """Every slot set (repr, equality and hash see them all), frozen afterwards."""
    raw = body(connector(), connector(connectorId=2, measurements=[]))
    got, want = decode_status(raw), old_way(raw)
    assert isinstance(got, ChargePointStatus)
    assert repr(got) == repr(want)
    assert hash(got) == hash(want)
    assert {got: 1}[want] == 1
    for obj in (got, got.connector_statuses[0], got.connector_statuses[0].measurements[0]):
        first = dataclasses.fields(obj)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, first, "x")


def test_a_model_field_the_fast_build_does_not_set_fails_at_import() -> None:
    with pytest.raises(TypeError, match="Measurement"):
        _slot_setters(Measurement, ("phase", "current"))
    with pytest.raises(TypeError, match="Measurement"):
        _slot_setters(Measurement, ("phase", "voltage", "current"))


@pytest.mark.parametrize(
    "raw",
    [
        body(connector(totalConsumptionKwh="2.5")),  # a number sent as text
        body(connector(connectorId="1")),
        body(connector(sessionId="")),
        body(connector(totalConsumptionKwh=..., totalConsumptionKWh=3.5)),  # another casing
        body(connector(status="2")),  # numbered: read by the charger's protocol
        body(connector(status=3)),
        body(connector(startTime=1764846123)),  # a time as a number
        body(connector(vendorExtra=1)),  # a field the model does not know
        body(connector(chargePointId=..., connectorId=True)),
        body(connector(), status=1),
        b'{"id": "1903000191A", "status": "Online", "connectorStatuses": null, "x": NaN}',
    ],
)
def test_any_other_answer_goes_the_json_way(raw: bytes) -> None:
    got = decode_status(raw)
    assert not isinstance(got, ChargePointStatus)
    assert repr(got) == repr(json.loads(raw))


@pytest.mark.parametrize(
    "raw",
    [
        body(connector(startTime="yesterday")),
        body(connector(connectorId=1.5)),
        body(connector(measurements=[{"current": 1.0}])),
        body(connector(status=None)),
        body(connector(chargingPowerKw=True)),
        b'{"id": "1903000191A", "status": "Online", "connectorStatuses": "Onl"}',
        b"[]",
    ],
)
def test_a_bad_answer_gets_parse_status_s_own_error(raw: bytes) -> None:
    expected = old_way(raw)
    assert isinstance(expected, PayloadError)
    with pytest.raises(PayloadError) as raised:
        parse_status(decode_status(raw))
    assert str(raised.value) == str(expected)


@pytest.mark.parametrize("raw", [b"<html>busy</html>", b'{"id": "x"', b"\xff\xfe", b'{"a":"\x01"}'])
def test_a_body_that_is_not_json_fails_as_json_loads_fails(raw: bytes) -> None:
    with pytest.raises(ValueError) as expected:
        json.loads(raw)
    with pytest.raises(ValueError) as raised:
        decode_status(raw)
    assert str(raised.value) == str(expected.value)


# every kind of JSON value a field may carry, right or wrong
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from(["", " 2 ", "1.5", "Charging", "CHARGING", "x", "L1", "2026-12-04T11:02:03Z"]),
    st.sampled_from(["2026-12-04T11:02:03+01:00", "2026-12-04T11:02:03", "3", "١"]),
)
# each field mostly with the JSON type the model wants (so the typed path is taken often),
# now and then with any other value
times = st.sampled_from(["2026-12-04T11:02:03Z", "2026-12-04T11:02:03.5+01:00", "", "2026-12-04"])
numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers())
right: dict[str, st.SearchStrategy[Any]] = {
    "chargePointId": st.one_of(st.none(), st.sampled_from(["1903000191A", ""])),
    "connectorId": st.integers(min_value=-(2**70), max_value=2**70),
    "totalConsumptionKwh": st.one_of(st.none(), numbers),
    "chargingPowerKw": st.one_of(st.none(), numbers),
    "sessionType": st.one_of(st.none(), st.text(max_size=3)),
    "status": st.one_of(
        st.sampled_from(["Charging", "available", " SuspendedEV ", "Whatever", "2", " 7", "١"]),
        st.text(max_size=3),
    ),
    "startTime": st.one_of(st.none(), times),
    "endTime": st.one_of(st.none(), times),
    "sessionId": st.one_of(st.none(), st.integers()),
}


def mostly(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.integers(0, 9).flatmap(lambda k: values if k == 0 else strategy)


measurement = st.fixed_dictionaries(
    {"phase": mostly(st.sampled_from(["L1", "L2", "L3"]))},
    optional={"current": mostly(right["chargingPowerKw"]), "voltage": values},
)
connectors = st.fixed_dictionaries(
    {"connectorId": mostly(right["connectorId"]), "status": mostly(right["status"])},
    optional={
        **{f: mostly(s) for f, s in right.items() if f not in ("connectorId", "status")},
        "measurements": mostly(st.one_of(st.none(), st.lists(measurement, max_size=3))),
    },
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(connectors, max_size=2),
    mostly(st.sampled_from(["1903000191A", ""])),
    mostly(st.sampled_from(["Online", "Offline"])),
)
def test_whatever_the_typed_path_accepts_parse_status_reads_the_same(
    found: list[dict[str, Any]], cp_id: object, status: object
) -> None:
    raw = json.dumps({"id": cp_id, "status": status, "connectorStatuses": found}).encode()
    got = decode_status(raw)
    if isinstance(got, ChargePointStatus):
        event("typed")
        assert got == old_way(raw)
    else:
        assert got == json.loads(raw)
