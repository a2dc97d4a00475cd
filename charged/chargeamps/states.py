"""Connector status values: what the vendor sends, normalised to one vocabulary.

The v5 description types a connector's ``status`` as a plain string; the v4 document lists
numbered codes whose meaning depends on the charger's protocol (``ocppVersion`` null: a CAPI
charger; otherwise OCPP 1.6).  Public clients see *names*, and an Aura app sees OCPP names
(SuspendedEV, Finishing) on chargers that are not OCPP.  So a name means that name whatever
the charger's kind (matched without regard to case), and only a digit is looked up in the
table of the charger's protocol.  Anything else is kept as it came, with no state.

Pure: no I/O, no logging (the client warns once per value it cannot read).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class ConnectorState(StrEnum):
    """Every connector status the v4/v5 documents name (CAPI's and OCPP 1.6's together)."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    CONNECTED = "Connected"
    SUSPENDED_EVSE = "SuspendedEVSE"
    SUSPENDED_EV = "SuspendedEV"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"
    ERROR = "Error"
    UNKNOWN = "Unknown"


# The v4 document's numbered codes, by protocol.
CAPI_CODES: Mapping[int, ConnectorState] = {
    0: ConnectorState.AVAILABLE,
    1: ConnectorState.CHARGING,
    2: ConnectorState.CONNECTED,
    3: ConnectorState.ERROR,
    4: ConnectorState.UNKNOWN,
}
# OCPP 1.6 ChargePointStatus in its own order (0-5 as the v4 document numbers them).
OCPP_CODES: Mapping[int, ConnectorState] = {
    0: ConnectorState.AVAILABLE,
    1: ConnectorState.PREPARING,
    2: ConnectorState.CHARGING,
    3: ConnectorState.SUSPENDED_EVSE,
    4: ConnectorState.SUSPENDED_EV,
    5: ConnectorState.FINISHING,
    6: ConnectorState.RESERVED,
    7: ConnectorState.UNAVAILABLE,
    8: ConnectorState.FAULTED,
    9: ConnectorState.UNKNOWN,
}

_BY_NAME: Mapping[str, ConnectorState] = {s.value.casefold(): s for s in ConnectorState}

# A session is open on the connector whatever its session fields say: drawing, or paused by
# the car or the charger (a limit below what the car takes, e.g. a balancer's), or ending.
SESSION_OPEN: frozenset[ConnectorState] = frozenset(
    {
        ConnectorState.CHARGING,
        ConnectorState.SUSPENDED_EV,
        ConnectorState.SUSPENDED_EVSE,
        ConnectorState.FINISHING,
    }
)
# Nothing is plugged in: no session can be open.
NO_VEHICLE: frozenset[ConnectorState] = frozenset({ConnectorState.AVAILABLE})


def is_ocpp(ocpp_version: str | None) -> bool:
    """A charger speaks OCPP when its ``ocppVersion`` is set (null means CAPI)."""
    return bool(ocpp_version and ocpp_version.strip())


def normalise(raw: str, ocpp_version: str | None = None) -> ConnectorState | None:
    """The state a raw status value stands for; None when it names none of them.

    A name counts whatever the charger's kind; a digit is read in the table of its protocol.
    """
    text = raw.strip()
    by_name = _BY_NAME.get(text.casefold())
    if by_name is not None:
        return by_name
    if text.isascii() and text.isdigit():
        table = OCPP_CODES if is_ocpp(ocpp_version) else CAPI_CODES
        return table.get(int(text))
    return None


def status_name(raw: str, ocpp_version: str | None = None) -> str:
    """What to show and store as the status: the state's name, or the raw value as it came."""
    state = normalise(raw, ocpp_version)
    return raw if state is None else state.value


def is_charging(status: str | None) -> bool:
    """Drawing power now (a stored or normalised status name)."""
    return status == ConnectorState.CHARGING.value


def is_session_open(status: str | None, *, session_id: object = None, ended: bool = True) -> bool:
    """A session is open on the connector.

    Charging, SuspendedEV/EVSE and Finishing always are; Available never is.  Any other state
    (Connected: a full car, a limit of 0; Preparing; a value no document names) is open when
    the connector shows a session that has not ended (``session_id`` set, ``ended`` false).
    """
    state = None if status is None else _BY_NAME.get(status.casefold())
    if state in SESSION_OPEN:
        return True
    if state in NO_VEHICLE:
        return False
    return session_id is not None and not ended


# The charge point's own status (not its connectors'): Online or Offline, whether the vendor's
# cloud reaches the charger.
CHARGE_POINT_OFFLINE = "offline"


def is_charge_point_offline(status: str | None) -> bool:
    """The charge point status says the cloud does not reach the charger (any casing)."""
    return status is not None and status.strip().casefold() == CHARGE_POINT_OFFLINE
