"""Typed payloads of the Charge Amps external API: the frozen dataclasses the client returns.

Each has snake_case attributes; those sent back to the vendor have ``to_json()``.  They are
built from the vendor's JSON by charged.chargeamps.parsers (and, for a status, the typed
decoding of charged.chargeamps.status_wire, which checks these classes' fields at import).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from charged.chargeamps.states import (
    ConnectorState,
    is_charging,
    is_session_open,
    normalise,
)

JsonObject = dict[str, Any]


# ---------------------------------------------------------------- the payloads


@dataclass(frozen=True, slots=True)
class Measurement:
    phase: str
    # null in practice now and then (a meter that did not answer): kept as None
    current: float | None
    voltage: float | None


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    charge_point_id: str
    connector_id: int
    total_consumption_kwh: float | None
    charging_power_kw: float | None
    session_type: str | None
    # The normalised name (charged.chargeamps.states), or the raw value if it names no state.
    status: str
    measurements: tuple[Measurement, ...]
    start_time: datetime | None
    end_time: datetime | None
    session_id: int | None
    # What the vendor sent (a digit, another casing); None: the same as ``status``.
    status_raw: str | None = None

    @property
    def state(self) -> ConnectorState | None:
        """The normalised state; None for a value no document names."""
        return normalise(self.status)

    @property
    def charging(self) -> bool:
        """Drawing power now."""
        return is_charging(self.status)

    @property
    def session_open(self) -> bool:
        """A session is open: charging, paused (SuspendedEV/EVSE), finishing, or plugged in
        with a session that has not ended."""
        return is_session_open(
            self.status, session_id=self.session_id, ended=self.end_time is not None
        )


@dataclass(frozen=True, slots=True)
class ChargePointStatus:
    id: str
    status: str
    connector_statuses: tuple[ConnectorStatus, ...]


@dataclass(frozen=True, slots=True)
class ChargePointSettings:
    id: str
    dimmer: str
    down_light: bool | None
    max_current: float | None
    # Read-only on the vendor side: shown by GET, never sent back by to_json().
    installation_current: float | None = None

    def to_json(self) -> JsonObject:
        """The whole PUT body, in the reference's field names."""
        return {
            "id": self.id,
            "dimmer": self.dimmer,
            "downLight": self.down_light,
            "maxCurrent": self.max_current,
        }


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    charge_point_id: str
    connector_id: int
    max_current: float | None
    rfid_lock: bool
    mode: str
    cable_lock: bool
    installation_current: float | None = None

    def to_json(self) -> JsonObject:
        """The whole PUT body, in the reference's field names."""
        return {
            "chargePointId": self.charge_point_id,
            "connectorId": self.connector_id,
            "maxCurrent": self.max_current,
            "rfidLock": self.rfid_lock,
            "mode": self.mode,
            "cableLock": self.cable_lock,
        }


@dataclass(frozen=True, slots=True)
class Connector:
    charge_point_id: str
    connector_id: int
    type: str
    settings: ConnectorSettings | None = None
    connector_user_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChargePoint:
    id: str
    name: str | None
    # The charger's own OCPP/pairing password: data of the charger, still kept out of repr().
    password: str | None = field(repr=False)
    type: str | None
    is_loadbalanced: bool
    firmware_version: str | None
    hardware_version: str | None
    owner_read_only: bool
    ocpp_version: str | None
    connectors: tuple[Connector, ...]
    settings: ChargePointSettings | None


@dataclass(frozen=True, slots=True)
class ChargingSession:
    id: int
    charge_point_id: str
    connector_id: int
    user_id: str | None
    rfid: str | None
    rfid_dec: str | None
    session_type: str | None
    start_time: datetime | None
    end_time: datetime | None
    total_consumption_kwh: float | None
    external_transaction_id: str | None
    external_id: str | None


@dataclass(frozen=True, slots=True)
class User:
    id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    mobile: str | None
    # The shape of an RFID tag is not documented; each is kept as the JSON object it was.
    rfid_tags: tuple[Mapping[str, Any], ...]
    user_status: str | None


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    user: User | None


@dataclass(frozen=True, slots=True)
class MeterValue:
    """One entry of the ``metervalue`` callback the vendor pushes while a car charges."""

    charge_point_id: str
    connector_id: int
    total_consumption_kwh: float | None
    measurements: tuple[Measurement, ...]
    timestamp: datetime | None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A charging schedule (CAPI chargers).  Its fields are not documented field by field,
    so the JSON object is kept whole and sent back as it came."""

    id: str | None
    charge_point_id: str | None
    raw: Mapping[str, Any]

    def to_json(self) -> JsonObject:
        return dict(self.raw)
