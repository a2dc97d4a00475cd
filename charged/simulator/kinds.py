"""What kind of charger each simulated charge point is, and how it spells its statuses.

Written from the API reference, not shared with the client.  By default every charger is a
CAPI Aura that reports status names (Available, Charging, Connected).  A *mixed* fleet cycles
through the shapes the vendor's documents and public clients describe, so a client's parsing
of all of them is tested against one simulator:

- CAPI Auras that name their statuses, number them (v4: 0 Available, 1 Charging, 2 Connected,
  3 Error, 4 Unknown) or use OCPP's names (as a public Aura app sees them);
- OCPP 1.6 Auras that name or number them (0 Available, 1 Preparing, 2 Charging,
  3 SuspendedEVSE, 4 SuspendedEV, 5 Finishing, 6 Reserved, 7 Unavailable, 8 Faulted, 9 Unknown);
- a Halo (connector 1 Type 2, connector 2 a Schuko socket; it has a down light);
- an Aura with a single connector owner (``ownerReadOnly``; the account owns one connector:
  the status lists only that one, and writes to the other are refused with 403).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Spelling = Literal["names", "digits", "ocpp-names"]

CAPI_NUMBERS = {"Available": 0, "Charging": 1, "Connected": 2, "Error": 3, "Unknown": 4}
OCPP_NAMES = (
    "Available",
    "Preparing",
    "Charging",
    "SuspendedEVSE",
    "SuspendedEV",
    "Finishing",
    "Reserved",
    "Unavailable",
    "Faulted",
    "Unknown",
)
OCPP_NUMBERS = {name: number for number, name in enumerate(OCPP_NAMES)}
SCHUKO_MAX_CURRENT = 10.0  # A: what a household socket delivers at most


@dataclass(frozen=True)
class ChargerKind:
    model: str = "AURA"  # the ChargePoint's ``type``
    ocpp_version: str | None = None  # None: a CAPI charger
    spelling: Spelling = "names"
    owned_connector: int | None = None  # a single connector owner: the one the account owns

    @property
    def uses_ocpp_states(self) -> bool:
        """Reports OCPP's states (Preparing, SuspendedEV …) rather than CAPI's."""
        return self.ocpp_version is not None or self.spelling == "ocpp-names"

    @property
    def has_down_light(self) -> bool:
        return self.model == "HALO"

    def connector_type(self, connector_id: int) -> str:
        return "Schuko" if self.is_schuko(connector_id) else "Charger"

    def is_schuko(self, connector_id: int) -> bool:
        return self.model == "HALO" and connector_id == 2

    def spell(self, state: str) -> str | int:
        """A state as this charger puts it on the wire (a name, or the v4 number)."""
        if self.spelling != "digits":
            return state
        table = OCPP_NUMBERS if self.ocpp_version is not None else CAPI_NUMBERS
        return table.get(state, state)


AURA = ChargerKind()
MIXED_FLEET = (
    AURA,
    ChargerKind(spelling="digits"),
    ChargerKind(spelling="ocpp-names"),
    ChargerKind(ocpp_version="1.6"),
    ChargerKind(ocpp_version="1.6", spelling="digits"),
    ChargerKind(model="HALO"),
    ChargerKind(owned_connector=1),
)


def fleet_kinds(chargers: int, *, mixed: bool) -> list[ChargerKind]:
    """The kind of each of ``chargers`` chargers: all Auras, or the mixed cycle."""
    if not mixed:
        return [AURA] * chargers
    return [MIXED_FLEET[i % len(MIXED_FLEET)] for i in range(chargers)]
