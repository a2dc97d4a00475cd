"""A charger's status answer decoded straight into the model, when it has the usual shape.

Every tick decodes one status per charger; ``json.loads`` and :func:`~charged.chargeamps.
parsers.parse_status` on the dicts took ~23 µs a status, msgspec's typed decoding of the same
bytes ~1 µs (bench/README.md, "collector's CPU per charger").  The typed path is only a fast
path, though, never a second set of rules: :func:`decode_status` takes it only for an answer
whose every field has the exact JSON type the model wants (text as text, numbers as numbers,
nulls where allowed) and no field it does not know, and otherwise decodes the JSON as before,
so that ``parse_status`` reads it with its own leniency (numbers sent as text, another
casing of ``totalConsumptionKwh``, a numbered status) and raises its own clear errors; a body
that is not JSON at all fails in ``json.loads``, as it did.  Whatever the typed path accepts,
``json.loads`` + ``parse_status`` read the same (tests/unit/test_status_wire.py checks this).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from charged.chargeamps.errors import PayloadError
from charged.chargeamps.models import ChargePointStatus, ConnectorStatus, Measurement
from charged.chargeamps.parsers import parse_time
from charged.chargeamps.states import status_name


class _WireMeasurement(msgspec.Struct, forbid_unknown_fields=True):
    phase: str
    current: float | None = None
    voltage: float | None = None


class _WireConnector(msgspec.Struct, forbid_unknown_fields=True):
    connectorId: int  # the vendor's field names, as they come
    status: str
    chargePointId: str | None = None
    totalConsumptionKwh: float | None = None
    chargingPowerKw: float | None = None
    sessionType: str | None = None
    measurements: list[_WireMeasurement] | None = None
    startTime: str | None = None
    endTime: str | None = None
    sessionId: int | None = None


class _WireStatus(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    status: str
    connectorStatuses: list[_WireConnector] | None = None


_DECODER = msgspec.json.Decoder(_WireStatus)


# -- building the frozen models without their __init__ ------------------------------------
#
# A frozen dataclass's __init__ sets each field through object.__setattr__ (~0.15 µs a field
# on the benchmark machine); a status of two connectors and three phases is 33 fields, and
# building them was most of the typed path's ~13 µs.  Setting each slot through its own
# descriptor, as that __init__ ends up doing, takes under half the time and gives the very
# same object (equal, hashable, frozen afterwards).  The setters are taken by field name,
# checked against the class's fields here, so a field added to a model without adding it
# below fails at import (and in tests/unit/test_status_wire.py), never silently unset.

_T = TypeVar("_T")


def _slot_setters(cls: type[_T], names: tuple[str, ...]) -> tuple[Callable[..., None], ...]:
    fields = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    if fields != names or hasattr(cls, "__post_init__") or "__slots__" not in cls.__dict__:
        raise TypeError(f"status_wire builds {cls.__name__} from {names}, not from {fields}")
    return tuple(getattr(cls, name).__set__ for name in names)


_new = object.__new__
_M_PHASE, _M_CURRENT, _M_VOLTAGE = _slot_setters(Measurement, ("phase", "current", "voltage"))
(
    _C_CHARGE_POINT_ID,
    _C_CONNECTOR_ID,
    _C_TOTAL,
    _C_POWER,
    _C_SESSION_TYPE,
    _C_STATUS,
    _C_MEASUREMENTS,
    _C_START,
    _C_END,
    _C_SESSION_ID,
    _C_STATUS_RAW,
) = _slot_setters(
    ConnectorStatus,
    (
        "charge_point_id",
        "connector_id",
        "total_consumption_kwh",
        "charging_power_kw",
        "session_type",
        "status",
        "measurements",
        "start_time",
        "end_time",
        "session_id",
        "status_raw",
    ),
)
_S_ID, _S_STATUS, _S_CONNECTORS = _slot_setters(
    ChargePointStatus, ("id", "status", "connector_statuses")
)


def _measurement(m: _WireMeasurement) -> Measurement:
    built: Measurement = _new(Measurement)
    _M_PHASE(built, m.phase)
    _M_CURRENT(built, m.current)
    _M_VOLTAGE(built, m.voltage)
    return built


class _NotTyped(Exception):
    """The answer needs parse_status's rules (or its error): take the JSON path."""


def decode_status(raw: bytes) -> ChargePointStatus | Any:
    """The status model, or (for any other answer) the decoded JSON for ``parse_status``;
    raises ValueError, as ``json.loads`` does, when the body is not JSON."""
    try:
        return _model(_DECODER.decode(raw))
    except (msgspec.MsgspecError, _NotTyped):
        return json.loads(raw)


def _model(wire: _WireStatus) -> ChargePointStatus:
    cp_id = wire.id
    connectors = wire.connectorStatuses
    built: ChargePointStatus = _new(ChargePointStatus)
    _S_ID(built, cp_id)
    _S_STATUS(built, wire.status)
    _S_CONNECTORS(
        built, () if connectors is None else tuple([_connector(c, cp_id) for c in connectors])
    )
    return built


def _connector(c: _WireConnector, cp_id: str) -> ConnectorStatus:
    raw_status = c.status
    if raw_status.strip().isdigit():
        raise _NotTyped  # a numbered status: what it means depends on the charger's protocol
    status = status_name(raw_status)  # a name means itself whatever the protocol
    measurements = c.measurements
    built: ConnectorStatus = _new(ConnectorStatus)
    _C_CHARGE_POINT_ID(built, c.chargePointId or cp_id)
    _C_CONNECTOR_ID(built, c.connectorId)
    _C_TOTAL(built, c.totalConsumptionKwh)
    _C_POWER(built, c.chargingPowerKw)
    _C_SESSION_TYPE(built, c.sessionType)
    _C_STATUS(built, status)
    _C_MEASUREMENTS(
        built, () if measurements is None else tuple([_measurement(m) for m in measurements])
    )
    _C_START(built, _time(c.startTime))
    _C_END(built, _time(c.endTime))
    _C_SESSION_ID(built, c.sessionId)
    _C_STATUS_RAW(built, None if raw_status == status else raw_status)
    return built


def _time(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_time(value)
    except PayloadError:
        raise _NotTyped from None  # parse_status words the error
