"""A charger's status answer decoded straight into the model, when it has the usual shape.

Every tick decodes one status per charger; ``json.loads`` and :func:`~charged.chargeamps.
models.parse_status` on the dicts took ~23 µs a status, msgspec's typed decoding of the same
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

import json
from typing import Any

import msgspec

from charged.chargeamps.errors import PayloadError
from charged.chargeamps.models import (
    ChargePointStatus,
    ConnectorStatus,
    Measurement,
    parse_time,
)
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
    return ChargePointStatus(
        id=cp_id,
        status=wire.status,
        connector_statuses=()
        if connectors is None
        else tuple(_connector(c, cp_id) for c in connectors),
    )


def _connector(c: _WireConnector, cp_id: str) -> ConnectorStatus:
    raw_status = c.status
    if raw_status.strip().isdigit():
        raise _NotTyped  # a numbered status: what it means depends on the charger's protocol
    status = status_name(raw_status)  # a name means itself whatever the protocol
    measurements = c.measurements
    return ConnectorStatus(
        charge_point_id=c.chargePointId or cp_id,
        connector_id=c.connectorId,
        total_consumption_kwh=c.totalConsumptionKwh,
        charging_power_kw=c.chargingPowerKw,
        session_type=c.sessionType,
        status=status,
        measurements=()
        if measurements is None
        else tuple(Measurement(m.phase, m.current, m.voltage) for m in measurements),
        start_time=_time(c.startTime),
        end_time=_time(c.endTime),
        session_id=c.sessionId,
        status_raw=None if raw_status == status else raw_status,
    )


def _time(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_time(value)
    except PayloadError:
        raise _NotTyped from None  # parse_status words the error
