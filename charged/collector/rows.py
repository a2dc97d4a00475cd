"""Typed API models → plain row dicts for the storage tables (no I/O here)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from charged.chargeamps.models import ChargePoint, ChargePointStatus

Row = dict[str, Any]


def db_time(moment: datetime) -> datetime:
    """Naive UTC at whole seconds: how every DATETIME column is stored."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0)


# A session's start time comes back in every poll of it: its text is kept by value (a
# bounded dict; strftime was most of the row building, bench/README.md).
_ISO: dict[datetime, str] = {}
_ISO_MAX = 65_536


def _iso(moment: datetime | None) -> str | None:
    # start_time/end_time keep the original scripts' string columns; store ISO 8601 UTC.
    if moment is None:
        return None
    if moment.tzinfo is None:  # local time, as astimezone reads it: not kept
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = _ISO.get(moment)  # equal aware moments are the same instant: the same text
    if text is None:
        if len(_ISO) >= _ISO_MAX:
            _ISO.clear()
        text = _ISO[moment] = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return text


def status_rows(status: ChargePointStatus, poll_time: datetime) -> dict[str, list[Row]]:
    """Rows of one charger's status at one tick: its charge point, connectors, phases."""
    stamp = db_time(poll_time)
    connectors: list[Row] = []
    measurements: list[Row] = []
    for conn in status.connector_statuses:
        connectors.append(
            {
                "charge_point_id": status.id,
                "connector_id": conn.connector_id,
                "total_consumption_kwh": conn.total_consumption_kwh,
                "charging_power_kw": conn.charging_power_kw,
                "session_type": conn.session_type,
                "status": conn.status,
                "status_raw": conn.status_raw,
                "start_time": _iso(conn.start_time),
                "end_time": _iso(conn.end_time),
                "session_id": conn.session_id,
                "date_created": stamp,
            }
        )
        for m in conn.measurements:
            measurements.append(
                {
                    "phase": m.phase,
                    "current": m.current,
                    "voltage": m.voltage,
                    "connector_id": conn.connector_id,
                    "charge_point_id": status.id,
                    "comment": None,
                    "session_id": conn.session_id,
                    "date_created": stamp,
                }
            )
    rows: dict[str, list[Row]] = {
        "charge_point_status": [{"id": status.id, "status": status.status, "last_seen": stamp}],
        "connector_status": connectors,
    }
    if measurements:
        rows["measurement"] = measurements
    return rows


def offline_rows(status: ChargePointStatus) -> dict[str, list[Row]]:
    """An Offline charger's rows: its status only.  last_seen stays the last tick it was
    online, and what connectorStatuses it lists are the cloud's last known values, not
    readings of this tick, so no connector or phase rows are made of them."""
    return {"charge_point_status": [{"id": status.id, "status": status.status}]}


def charge_point_rows(charge_points: Iterable[ChargePoint]) -> dict[str, list[Row]]:
    """Descriptive columns of the owned chargers (name, type, firmware)."""
    return {
        "charge_point_status": [
            {
                "id": cp.id,
                "name": cp.name,
                "type": cp.type,
                "firmware_version": cp.firmware_version,
                "hardware_version": cp.hardware_version,
            }
            for cp in charge_points
        ]
    }


def count_rows(batch: dict[str, list[Row]]) -> int:
    return sum(len(rows) for rows in batch.values())
