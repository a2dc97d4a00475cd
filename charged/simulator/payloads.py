"""The simulator's wire format, written from the API reference (not shared with the client).

Builders turn fleet objects into the vendor's camelCase JSON; parsers check request bodies and
raise :class:`BadRequest` with one line saying which field is wrong and what it must be.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from charged.simulator.charger_state import (
    ChargePointSettings,
    ConnectorReading,
    ConnectorSettings,
    Session,
)
from charged.simulator.connector import MAX_CURRENT, MIN_CURRENT, ConnectorBase
from charged.simulator.fleet import ChargePoint

JsonObject = dict[str, Any]
PHASES = ("L1", "L2", "L3")
DIMMER_VALUES = ("Off", "Low", "Medium", "High")
MODE_VALUES = ("On", "Off", "Schedule")
RFID_FORMATS = ("Hex", "Dec", "ReverseDec")
RFID_LENGTHS = (4, 7, 10)


class BadRequest(ValueError):
    """A request body the vendor would answer with 400."""


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_id(email: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"charged-simulator:{email.casefold()}"))


def _number(value: float | None) -> float | int | None:
    # 10.0 goes out as 10, as the vendor shows whole amperes
    if value is not None and float(value).is_integer():
        return int(value)
    return value


# ------------------------------------------------------------------ responses


def login_json(token: str, refresh_token: str, email: str) -> JsonObject:
    return {
        "message": "Login successful",
        "token": token,
        "refreshToken": refresh_token,
        "user": {
            "id": user_id(email),
            "firstName": "Demo",
            "lastName": "User",
            "email": email,
            "mobile": None,
            "rfidTags": [],
            "userStatus": "Valid",
        },
    }


def charge_point_json(cp: ChargePoint, email: str, *, expand_settings: bool = False) -> JsonObject:
    kind = cp.kind
    connectors = []
    for c in cp.connectors:
        owner: str | None = None
        if kind.owned_connector is not None:
            # a single connector owner: each connector names its user, ours and another's
            mine = c.connector_id == kind.owned_connector
            owner = user_id(email) if mine else user_id(f"neighbour-{cp.id}-{c.connector_id}")
        item: JsonObject = {
            "chargePointId": cp.id,
            "connectorId": c.connector_id,
            "type": kind.connector_type(c.connector_id),
            "connectorUserId": owner,
        }
        if expand_settings:
            item["settings"] = connector_settings_json(c)
        connectors.append(item)
    body: JsonObject = {
        "id": cp.id,
        "name": cp.name,
        "password": cp.password,
        "type": kind.model,
        "isLoadbalanced": cp.is_loadbalanced,
        "firmwareVersion": cp.firmware_version,
        "hardwareVersion": cp.hardware_version,
        "ownerReadOnly": kind.owned_connector is not None,
        "ocppVersion": kind.ocpp_version,  # null: a CAPI charger
        "connectors": connectors,
    }
    if expand_settings:
        body["settings"] = charge_point_settings_json(cp)
    return body


def charge_point_settings_json(cp: ChargePoint) -> JsonObject:
    s = cp.settings
    return {
        "id": cp.id,
        "dimmer": s.dimmer,
        # only a Halo has a down light: an Aura's is null
        "downLight": s.down_light if cp.kind.has_down_light else None,
        "maxCurrent": _number(s.max_current),
        "installationCurrent": _number(cp.installation_current),
    }


def connector_settings_json(c: ConnectorBase) -> JsonObject:
    s = c.settings
    return {
        "chargePointId": c.charge_point.id,
        "connectorId": c.connector_id,
        "maxCurrent": _number(s.max_current),
        "rfidLock": s.rfid_lock,
        "mode": s.mode,
        "cableLock": s.cable_lock,
        # the charge point's wiring: both connectors share it
        "installationCurrent": _number(c.charge_point.installation_current),
    }


def status_json(
    cp: ChargePoint,
    *,
    offline: bool,
    no_measurements: bool,
    status_override: str | None = None,
    null_readings: bool = False,
) -> JsonObject:
    """``status_override``: every connector's ``status`` as given (Faulted, a digit, a value
    no document names); ``null_readings``: L2's current and L3's voltage null."""
    if offline:
        # the key stays (nullable in the schema; public clients require it)
        return {"id": cp.id, "status": "Offline", "connectorStatuses": None}
    owned = cp.kind.owned_connector
    return {
        "id": cp.id,
        "status": "Online",
        "connectorStatuses": [
            connector_status_json(c, no_measurements, status_override, null_readings)
            for c in cp.connectors
            if owned is None or c.connector_id == owned  # a single owner sees only theirs
        ],
    }


def connector_state(c: ConnectorBase, reading: ConnectorReading) -> str:
    """The reading as the charger's protocol names it: CAPI's Available/Charging/Connected,
    or OCPP's (Preparing, SuspendedEV/EVSE, Finishing) on chargers that report those."""
    if not c.charge_point.kind.uses_ocpp_states or reading.status != "Connected":
        return reading.status
    return {
        "stopped": "Preparing",  # plugged in, no transaction: waiting for a start
        "full": "SuspendedEV",  # the car takes nothing
        "finishing": "Finishing",
        "paused": "SuspendedEVSE",  # the charger offers too little (a limit, mode Off)
    }.get(reading.idle or "", "SuspendedEV")


def connector_status_json(
    c: ConnectorBase,
    no_measurements: bool,
    status_override: str | None = None,
    null_readings: bool = False,
) -> JsonObject:
    reading = c.reading()
    session = reading.session
    measurements: list[JsonObject] | None = None
    power = 0.0
    if reading.currents is not None:
        power = reading.power_kw
        if not no_measurements:
            measurements = [
                {"phase": phase, "current": round(i, 3), "voltage": v}
                for phase, i, v in zip(PHASES, reading.currents, reading.voltages, strict=True)
            ]
            if null_readings:
                measurements[1]["current"] = None
                measurements[2]["voltage"] = None
    status: str | int = c.charge_point.kind.spell(connector_state(c, reading))
    if status_override is not None:
        status = status_override
    return {
        "chargePointId": c.charge_point.id,
        "connectorId": c.connector_id,
        "totalConsumptionKwh": round(session.energy_kwh, 3) if session else 0.0,
        "chargingPowerKw": round(power, 3),
        "sessionType": session.session_type if session else None,
        "status": status,
        "measurements": measurements,
        "startTime": iso(session.start) if session else None,
        "endTime": iso(session.end) if session else None,
        "sessionId": session.id if session else None,
    }


# The garage's drivers: each session is started by one of them with their tag (RFID lock on),
# a few without one (from the app, or with the lock off).
DRIVERS = 48
UNTAGGED_SHARE = 0.1


def session_rfid(session: Session) -> str | None:
    """The tag (4 bytes, hex) that started the session; None for one started without.

    A pure function of the session, so a fleet's sessions name the same drivers whatever the
    order of requests, and without drawing on the connectors' random streams."""
    digest = hashlib.sha256(
        f"{session.charge_point_id}/{session.connector_id}/{session.id}".encode()
    ).digest()
    if digest[0] < UNTAGGED_SHARE * 256:
        return None
    driver = int.from_bytes(digest[1:3], "big") % DRIVERS
    return hashlib.sha256(f"driver/{driver}".encode()).hexdigest()[:8].upper()


def session_json(session: Session, email: str) -> JsonObject:
    rfid = session_rfid(session)
    return {
        "id": session.id,
        "chargePointId": session.charge_point_id,
        "connectorId": session.connector_id,
        "userId": user_id(email),
        "rfid": rfid,
        "rfidDec": None if rfid is None else str(int(rfid, 16)),
        "sessionType": session.session_type,
        "startTime": iso(session.start),
        "endTime": iso(session.end),
        "totalConsumptionKwh": round(session.energy_kwh, 3),
        "externalTransactionId": None,
        "externalId": None,
    }


# ------------------------------------------------------------------ request bodies


def _object(body: object, what: str) -> JsonObject:
    if not isinstance(body, dict):
        raise BadRequest(f"{what}: the body must be a JSON object")
    return body


def _bool(d: JsonObject, key: str, what: str, *, required: bool = True) -> bool | None:
    if key not in d and not required:
        return None
    value = d.get(key)
    if not isinstance(value, bool):
        raise BadRequest(f"{what}.{key}: must be true or false")
    return value


def _choice(d: JsonObject, key: str, values: tuple[str, ...], what: str) -> str:
    value = d.get(key)
    if value not in values:
        raise BadRequest(f"{what}.{key}: must be one of {', '.join(values)}")
    assert isinstance(value, str)
    return value


def _max_current(
    d: JsonObject, what: str, installation_current: float, clip: bool = False
) -> float | None:
    value = d.get("maxCurrent")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{what}.maxCurrent: must be null or a number of amperes")
    if value != 0 and not MIN_CURRENT <= value <= MAX_CURRENT:
        raise BadRequest(f"{what}.maxCurrent: must be null, 0 or {MIN_CURRENT:g}–{MAX_CURRENT:g} A")
    if value > installation_current:
        # The reference lists 400 for invalid input and says no more: refused (the default)
        # or, as an option, clipped to what the wiring carries.
        if clip:
            return float(installation_current)
        raise BadRequest(
            f"{what}.maxCurrent: {value:g} A is above the installation current "
            f"({installation_current:g} A)"
        )
    return float(value)


def _same_id(d: JsonObject, key: str, expected: str | int, what: str) -> None:
    if key in d and d[key] != expected:
        raise BadRequest(f"{what}.{key}: {d[key]!r} does not match the URL ({expected!r})")


def parse_connector_settings(
    body: object,
    cp_id: str,
    connector_id: int,
    installation_current: float = MAX_CURRENT,
    *,
    clip: bool = False,
) -> ConnectorSettings:
    what = "ConnectorSettings"
    d = _object(body, what)
    _same_id(d, "chargePointId", cp_id, what)
    _same_id(d, "connectorId", connector_id, what)
    rfid_lock = _bool(d, "rfidLock", what)
    cable_lock = _bool(d, "cableLock", what)
    assert rfid_lock is not None and cable_lock is not None
    return ConnectorSettings(
        max_current=_max_current(d, what, installation_current, clip),
        mode=_choice(d, "mode", MODE_VALUES, what),
        rfid_lock=rfid_lock,
        cable_lock=cable_lock,
    )


def parse_charge_point_settings(
    body: object,
    cp_id: str,
    installation_current: float = MAX_CURRENT,
    *,
    has_down_light: bool = True,
    current: ChargePointSettings | None = None,
    clip: bool = False,
) -> ChargePointSettings:
    """``current``: the settings now (a null downLight on a Halo leaves its light as it is;
    an Aura has none, and only null is accepted for it)."""
    what = "ChargePointSettings"
    d = _object(body, what)
    _same_id(d, "id", cp_id, what)
    down_light = d.get("downLight")
    if down_light is not None and not isinstance(down_light, bool):
        raise BadRequest(f"{what}.downLight: must be true, false or null")
    if down_light is not None and not has_down_light:
        raise BadRequest(f"{what}.downLight: this charger has no down light; send null")
    if down_light is None:
        down_light = current.down_light if current is not None and has_down_light else False
    return ChargePointSettings(
        dimmer=_choice(d, "dimmer", DIMMER_VALUES, what),
        down_light=down_light,
        max_current=_max_current(d, what, installation_current, clip),
    )


def parse_remote_start(body: object) -> str | None:
    """Check a remote start body; returns its externalTransactionId."""
    what = "RemoteStart"
    d = _object(body, what)
    length = d.get("rfidLength")
    # the v5 description: the RFID is hex, 4, 7 or 10 bytes
    if isinstance(length, bool) or length not in RFID_LENGTHS:
        raise BadRequest(f"{what}.rfidLength: must be 4, 7 or 10 (bytes)")
    fmt = _choice(d, "rfidFormat", RFID_FORMATS, what)
    rfid = d.get("rfid")
    if not isinstance(rfid, str):
        raise BadRequest(f"{what}.rfid: must be a string")
    if fmt == "Hex":
        if len(rfid) != 2 * length or any(ch not in "0123456789abcdefABCDEF" for ch in rfid):
            raise BadRequest(f"{what}.rfid: must be {2 * length} hex digits ({length} bytes)")
    elif not (rfid.isascii() and rfid.isdigit()):
        raise BadRequest(f"{what}.rfid: a {fmt} RFID must be decimal digits")
    external = d.get("externalTransactionId")
    if external is not None and not isinstance(external, str):
        raise BadRequest(f"{what}.externalTransactionId: must be a string or absent")
    return external


def parse_charge_point_ids(body: object) -> list[str]:
    what = "Callbacks"
    d = _object(body, what)
    ids = d.get("chargePointIds")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest(f"{what}.chargePointIds: must be a list of charge point ids")
    return list(ids)
