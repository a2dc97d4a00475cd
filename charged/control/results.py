"""What the control operations answer: each change's outcome and fields, and the overview.

Plain values with their JSON (the vendor's camelCase, like every key charged prints or
serves), shared by the CLI's output, the control API and the balancer's actuator; the
operations themselves are :mod:`charged.control.operations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from charged.chargeamps.models import ChargePointSettings, ConnectorSettings
from charged.control.validation import UNSET, JsonValue, Unset


class UnknownTarget(LookupError):
    """A charger the account does not own, or a connector the charger does not have."""

    def __init__(self, message: str, cp_id: str, connector_id: int | None = None) -> None:
        super().__init__(message)
        self.cp_id = cp_id
        self.connector_id = connector_id


class Outcome(StrEnum):
    OK = "ok"  # written and read back as asked, or the command's effect was seen
    UNCHANGED = "unchanged"  # already as asked (or nothing to stop / start): nothing was sent
    UNVERIFIED = "unverified"  # a command the vendor accepted whose effect did not show yet
    FAILED = "failed"  # the vendor refused or failed, the value did not stick, or not sent
    REJECTED = "rejected"  # invalid value or unknown target: nothing was sent


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    new: JsonValue  # what was asked; None for stop and reboot, which take no value
    old: JsonValue | Unset = UNSET  # UNSET: never read (e.g. the target was refused)

    def to_json(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {"field": self.field}
        if not isinstance(self.old, Unset):
            out["old"] = self.old
        out["new"] = self.new
        return out


@dataclass(frozen=True, slots=True)
class ChangeResult:
    charger: str
    connector: int | None
    action: str
    changes: tuple[FieldChange, ...]
    outcome: Outcome
    error: str | None = None
    audit_error: str | None = None  # the audit row could not be written (or completed)
    unknown_target: bool = False  # rejected because the charger or connector is not ours
    note: str | None = None  # what was seen, for a person: "stopped: connector now Connected"
    # failed because of the charger's state: offline, or the vendor answered 409 (conflict)
    conflict: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.OK, Outcome.UNCHANGED) and self.audit_error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "charger": self.charger,
            "connector": self.connector,
            "action": self.action,
            "changes": [change.to_json() for change in self.changes],
            "result": self.outcome.value,
            "ok": self.ok,
            "error": self.error,
            "note": self.note,
            "auditError": self.audit_error,
        }


@dataclass(frozen=True, slots=True)
class ConnectorOverview:
    connector_id: int
    status: str
    current: float | None  # the highest phase current (A); None when not charging
    power_kw: float | None
    energy_kwh: float | None  # energy of the current session

    def to_json(self) -> dict[str, Any]:
        # the vendor's camelCase, like every JSON key charged prints or serves
        return {
            "connectorId": self.connector_id,
            "status": self.status,
            "current": self.current,
            "powerKw": self.power_kw,
            "energyKwh": self.energy_kwh,
        }


@dataclass(frozen=True, slots=True)
class ChargerOverview:
    id: str
    name: str | None
    type: str | None
    status: str  # Online / Offline, or "unknown" when the status could not be read
    connectors: tuple[ConnectorOverview, ...]
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "error": self.error,
            "connectors": [c.to_json() for c in self.connectors],
        }


def connector_settings_json(settings: ConnectorSettings) -> dict[str, JsonValue]:
    return {
        **settings.to_json(),
        "maxCurrent": _amps(settings.max_current),
        "installationCurrent": settings.installation_current,
    }


def chargepoint_settings_json(settings: ChargePointSettings) -> dict[str, JsonValue]:
    return {
        **settings.to_json(),
        "maxCurrent": _amps(settings.max_current),
        "installationCurrent": settings.installation_current,
    }


def _amps(value: float | None) -> JsonValue:
    """Whole amperes as an int (the vendor may send 10.0): what a person typed reads back."""
    if value is not None and float(value).is_integer():
        return int(value)
    return value
