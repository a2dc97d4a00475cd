"""What the read-back and the status say of a change: the verdict on settings written (every
field that did not stick named), the status tests of a start or stop, and the sentences that
explain an offline charger, an RFID lock that is off or a connector with no vehicle.
"""

from __future__ import annotations

from typing import Final

from charged.chargeamps.models import ConnectorStatus
from charged.control.audit import json_text
from charged.control.results import FieldChange, Outcome
from charged.control.validation import UNSET, JsonValue

OFFLINE: Final = "Offline"
RFID_LOCK_OFF: Final = (
    "the connector's RFID lock is off: a remote start only makes sense with it on (the "
    "vendor's description): set rfidLock on"
)
NO_VEHICLE_HINT: Final = "the connector read Available before the start: is a vehicle plugged in?"


def offline(cp_id: str) -> str:
    return f"charger {cp_id} is Offline: nothing sent; try again when it is Online"


def session_running(c: ConnectorStatus) -> bool:
    """A session is open on the connector: charging, paused (SuspendedEV/EVSE: a car held
    back by a limit has not ended its session), finishing, or plugged in with a session that
    has not ended (a full car, a limit of 0); see charged.chargeamps.states."""
    return c.session_open


def command_change(field: str, new: JsonValue, before: ConnectorStatus | None) -> FieldChange:
    return FieldChange(field, new, UNSET if before is None else before.status)


def field_changes(
    wanted: dict[str, JsonValue], old: dict[str, JsonValue]
) -> tuple[FieldChange, ...]:
    return tuple(FieldChange(name, value, old.get(name)) for name, value in wanted.items())


def verify(wanted: dict[str, JsonValue], after: dict[str, JsonValue]) -> tuple[Outcome, str | None]:
    """Compare the read-back with what was asked; every field that differs is named."""
    wrong = [
        f"{name} reads back {json_text(after.get(name))} (asked {json_text(value)})"
        for name, value in wanted.items()
        if after.get(name) != value
    ]
    if wrong:
        return Outcome.FAILED, "did not stick: " + "; ".join(wrong)
    return Outcome.OK, None
