"""Lenient parsers of the Charge Amps external API's payloads into the frozen models.

The parsers take whatever ``json.loads`` gave and return the frozen dataclasses of
charged.chargeamps.models, or raise :class:`PayloadError` with one line saying which field is
wrong.  Lenient where the vendor is known (or suspected) to vary: unknown status strings are
kept as they are, ``measurements: null`` is an empty tuple, integers may come as digit
strings, floats as numeric strings, times with or without an offset (no offset means UTC),
unknown fields are ignored and ``totalConsumptionKwh`` is found under any casing.  Parsing is
plain dict look-ups (no validation framework): a tick parses the status of thousands of
chargers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from charged.chargeamps.errors import PayloadError
from charged.chargeamps.models import (
    ChargePoint,
    ChargePointSettings,
    ChargePointStatus,
    ChargingSession,
    Connector,
    ConnectorSettings,
    ConnectorStatus,
    JsonObject,
    LoginResult,
    Measurement,
    MeterValue,
    Schedule,
    User,
)
from charged.chargeamps.states import status_name

T = TypeVar("T")


# ---------------------------------------------------------------- field readers


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return repr(value[:24] + ("…" if len(value) > 24 else ""))
    return type(value).__name__ + " " + repr(value)[:24]


def _fail(what: str, key: str, expected: str, value: object) -> PayloadError:
    return PayloadError(f"{what}.{key}: expected {expected}, got {_describe(value)}")


def _object(data: object, what: str) -> JsonObject:
    if not isinstance(data, dict):
        raise PayloadError(f"{what}: expected a JSON object, got {_describe(data)}")
    return data


def _array(data: object, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise PayloadError(f"{what}: expected a JSON array, got {_describe(data)}")
    return data


def _req_str(d: JsonObject, key: str, what: str) -> str:
    value = d.get(key)
    if isinstance(value, str):
        return value
    # Status "digits may occur" on the wire: keep them, as text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _fail(what, key, "a string", value)


def _opt_str(d: JsonObject, key: str, what: str) -> str | None:
    if d.get(key) is None:
        return None
    return _req_str(d, key, what)


def _to_int(value: object, what: str, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _fail(what, key, "an integer", value)


def _req_int(d: JsonObject, key: str, what: str) -> int:
    return _to_int(d.get(key), what, key)


def _opt_int(d: JsonObject, key: str, what: str) -> int | None:
    value = d.get(key)
    if value is None or value == "":
        return None
    return _to_int(value, what, key)


def _to_float(value: object, what: str, key: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _fail(what, key, "a number", value)


def _opt_float(d: JsonObject, key: str, what: str) -> float | None:
    value = d.get(key)
    if value is None or value == "":
        return None
    return _to_float(value, what, key)


def _opt_bool(d: JsonObject, key: str, what: str) -> bool | None:
    value = d.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _fail(what, key, "true or false", value)


def _bool(d: JsonObject, key: str, what: str) -> bool:
    # A missing flag is "off": the vendor leaves out what a model of charger lacks.
    return bool(_opt_bool(d, key, what))


def parse_time(value: object) -> datetime | None:
    """ISO 8601 (with ``Z``, an offset or none at all) → aware UTC; a missing time → None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise PayloadError(f"expected an ISO 8601 time, got {_describe(value)}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        raise PayloadError(f"expected an ISO 8601 time, got {_describe(value)}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _opt_time(d: JsonObject, key: str, what: str) -> datetime | None:
    try:
        return parse_time(d.get(key))
    except PayloadError as exc:
        raise PayloadError(f"{what}.{key}: {exc}") from None


_KWH_KEY = "totalconsumptionkwh"


def _consumption(d: JsonObject, what: str) -> float | None:
    # Callbacks and clients spell it totalConsumptionKwh, totalConsumptionKWh, …
    if "totalConsumptionKwh" in d:
        return _opt_float(d, "totalConsumptionKwh", what)
    for key in d:
        if key.lower() == _KWH_KEY:
            return _opt_float(d, key, what)
    return None


def _items(data: object, what: str, parse: Callable[[object], T]) -> tuple[T, ...]:
    if data is None:
        return ()
    return tuple(parse(item) for item in _array(data, what))


# ---------------------------------------------------------------- parsers


def parse_measurement(data: object) -> Measurement:
    d = _object(data, "Measurement")
    return Measurement(
        phase=_req_str(d, "phase", "Measurement"),
        current=_opt_float(d, "current", "Measurement"),
        voltage=_opt_float(d, "voltage", "Measurement"),
    )


def parse_connector_status(
    data: object, charge_point_id: str | None = None, ocpp_version: str | None = None
) -> ConnectorStatus:
    """One connector of a status; ``charge_point_id`` fills a missing ``chargePointId``;
    ``ocpp_version`` (the charger's) says how a numbered status is read."""
    what = "ConnectorStatus"
    d = _object(data, what)
    cp_id = _opt_str(d, "chargePointId", what) or charge_point_id
    if cp_id is None:
        raise _fail(what, "chargePointId", "a string", None)
    connector_id = _req_int(d, "connectorId", what)
    raw_status = _req_str(d, "status", what)
    status = status_name(raw_status, ocpp_version)
    return ConnectorStatus(
        charge_point_id=cp_id,
        connector_id=connector_id,
        total_consumption_kwh=_consumption(d, what),
        charging_power_kw=_opt_float(d, "chargingPowerKw", what),
        session_type=_opt_str(d, "sessionType", what),
        status=status,
        measurements=_items(d.get("measurements"), f"{what}.measurements", parse_measurement),
        start_time=_opt_time(d, "startTime", what),
        end_time=_opt_time(d, "endTime", what),
        session_id=_opt_int(d, "sessionId", what),
        status_raw=None if raw_status == status else raw_status,
    )


def parse_status(data: object, ocpp_version: str | None = None) -> ChargePointStatus:
    """A charger's status; ``ocpp_version`` is the charger's (null: CAPI), which says what a
    numbered connector status means (a name means itself on every charger)."""
    what = "ChargePointStatus"
    d = _object(data, what)
    cp_id = _req_str(d, "id", what)
    raw = d.get("connectorStatuses")
    connectors = () if raw is None else _array(raw, f"{what}.connectorStatuses")
    return ChargePointStatus(
        id=cp_id,
        status=_req_str(d, "status", what),
        connector_statuses=tuple(
            parse_connector_status(c, cp_id, ocpp_version) for c in connectors
        ),
    )


def has_numbered_status(data: object) -> bool:
    """Whether a raw status body holds a connector status given as a number (whose meaning
    depends on the charger's protocol)."""
    if not isinstance(data, dict):
        return False
    connectors = data.get("connectorStatuses")
    if not isinstance(connectors, list):
        return False
    for c in connectors:
        value = c.get("status") if isinstance(c, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            return True
        if isinstance(value, str) and value.strip().isdigit():
            return True
    return False


def parse_chargepoint_settings(data: object) -> ChargePointSettings:
    what = "ChargePointSettings"
    d = _object(data, what)
    return ChargePointSettings(
        id=_req_str(d, "id", what),
        dimmer=_req_str(d, "dimmer", what),
        down_light=_opt_bool(d, "downLight", what),
        max_current=_opt_float(d, "maxCurrent", what),
        installation_current=_opt_float(d, "installationCurrent", what),
    )


def parse_connector_settings(data: object) -> ConnectorSettings:
    what = "ConnectorSettings"
    d = _object(data, what)
    return ConnectorSettings(
        charge_point_id=_req_str(d, "chargePointId", what),
        connector_id=_req_int(d, "connectorId", what),
        max_current=_opt_float(d, "maxCurrent", what),
        rfid_lock=_bool(d, "rfidLock", what),
        mode=_req_str(d, "mode", what),
        cable_lock=_bool(d, "cableLock", what),
        installation_current=_opt_float(d, "installationCurrent", what),
    )


def parse_connector(data: object) -> Connector:
    what = "Connector"
    d = _object(data, what)
    settings = d.get("settings")
    return Connector(
        charge_point_id=_req_str(d, "chargePointId", what),
        connector_id=_req_int(d, "connectorId", what),
        type=_opt_str(d, "type", what) or "Unknown",
        settings=None if settings is None else parse_connector_settings(settings),
        connector_user_id=_opt_str(d, "connectorUserId", what),
    )


def parse_chargepoint(data: object) -> ChargePoint:
    what = "ChargePoint"
    d = _object(data, what)
    settings = d.get("settings")
    return ChargePoint(
        id=_req_str(d, "id", what),
        name=_opt_str(d, "name", what),
        password=_opt_str(d, "password", what),
        type=_opt_str(d, "type", what),
        is_loadbalanced=_bool(d, "isLoadbalanced", what),
        firmware_version=_opt_str(d, "firmwareVersion", what),
        hardware_version=_opt_str(d, "hardwareVersion", what),
        owner_read_only=_bool(d, "ownerReadOnly", what),
        ocpp_version=_opt_str(d, "ocppVersion", what),
        connectors=_items(d.get("connectors"), f"{what}.connectors", parse_connector),
        settings=None if settings is None else parse_chargepoint_settings(settings),
    )


def parse_charging_session(data: object) -> ChargingSession:
    what = "ChargingSession"
    d = _object(data, what)
    return ChargingSession(
        id=_req_int(d, "id", what),
        charge_point_id=_req_str(d, "chargePointId", what),
        connector_id=_req_int(d, "connectorId", what),
        user_id=_opt_str(d, "userId", what),
        rfid=_opt_str(d, "rfid", what),
        rfid_dec=_opt_str(d, "rfidDec", what),
        session_type=_opt_str(d, "sessionType", what),
        start_time=_opt_time(d, "startTime", what),
        end_time=_opt_time(d, "endTime", what),
        total_consumption_kwh=_consumption(d, what),
        external_transaction_id=_opt_str(d, "externalTransactionId", what),
        external_id=_opt_str(d, "externalId", what),
    )


def parse_user(data: object) -> User:
    what = "User"
    d = _object(data, what)
    tags = d.get("rfidTags")
    return User(
        id=_req_str(d, "id", what),
        first_name=_opt_str(d, "firstName", what),
        last_name=_opt_str(d, "lastName", what),
        email=_opt_str(d, "email", what),
        mobile=_opt_str(d, "mobile", what),
        rfid_tags=_items(tags, f"{what}.rfidTags", lambda t: _object(t, f"{what}.rfidTags[]")),
        user_status=_opt_str(d, "userStatus", what),
    )


def parse_login(data: object) -> LoginResult:
    what = "login response"
    d = _object(data, what)
    user = d.get("user")
    return LoginResult(
        token=_token_field(d, "token", what),
        refresh_token=_token_field(d, "refreshToken", what),
        user=None if user is None else parse_user(user),
    )


def _token_field(d: JsonObject, key: str, what: str) -> str:
    value = d.get(key)
    if isinstance(value, str) and value:
        return value
    # Never echo the value: it may be (part of) a token.
    raise PayloadError(f"{what}.{key}: expected a non-empty string")


def parse_refresh(data: object) -> tuple[str, str | None]:
    """``{"token", "refreshToken"?}`` → (token, refresh token or None if it was left out)."""
    what = "refresh response"
    d = _object(data, what)
    token = _token_field(d, "token", what)
    refresh = d.get("refreshToken")
    return token, refresh if isinstance(refresh, str) and refresh else None


def _recased(d: JsonObject, names: tuple[str, ...]) -> JsonObject:
    """``d`` with each of ``names`` found under any casing (meterValueList, MeterValueList,
    metervaluelist …) put under its camelCase name; an exact match wins."""
    wanted = {name.casefold(): name for name in names if name not in d}
    if not wanted:
        return d
    out = dict(d)
    for key, value in d.items():
        name = wanted.get(key.casefold())
        if name is not None and name not in out:
            out[name] = value
    return out


_METER_VALUE_KEYS = ("chargePointId", "connectorId", "measurements", "timestamp")
_MEASUREMENT_KEYS = ("phase", "current", "voltage")


def parse_meter_value(data: object) -> MeterValue:
    """One entry of a metervalue callback, its field names in any casing (callback bodies
    come in camelCase and PascalCase)."""
    what = "MeterValue"
    d = _recased(_object(data, what), _METER_VALUE_KEYS)
    return MeterValue(
        charge_point_id=_req_str(d, "chargePointId", what),
        connector_id=_req_int(d, "connectorId", what),
        total_consumption_kwh=_consumption(d, what),
        measurements=_items(
            d.get("measurements"),
            f"{what}.measurements",
            lambda m: parse_measurement(_recased(_object(m, "Measurement"), _MEASUREMENT_KEYS)),
        ),
        timestamp=_opt_time(d, "timestamp", what),
    )


def parse_meter_values(data: object) -> tuple[MeterValue, ...]:
    """The ``metervalue`` callback body: ``{"meterValueList": [...]}`` (any casing)."""
    d = _recased(_object(data, "metervalue callback"), ("meterValueList",))
    return _items(d.get("meterValueList"), "meterValueList", parse_meter_value)


def parse_schedule(data: object) -> Schedule:
    what = "Schedule"
    d = _object(data, what)
    sid = d.get("id", d.get("scheduleId"))
    return Schedule(
        id=None if sid is None else str(sid),
        charge_point_id=_opt_str(d, "chargePointId", what),
        raw=d,
    )


def parse_override(data: object) -> tuple[int, bool]:
    """One connector of GET .../schedule/override/status: ``{connectorId, isOverridden}``."""
    what = "ScheduleOverride"
    d = _object(data, what)
    return _req_int(d, "connectorId", what), _bool(d, "isOverridden", what)


def parse_list(data: object, parse: Callable[[object], T], what: str) -> list[T]:
    """A JSON array of payloads (``null`` is an empty list)."""
    if data is None:
        return []
    return [parse(item) for item in _array(data, what)]
