"""What the control operations need of the vendor client: the calls a :class:`Controller`
makes, as a protocol that :class:`~charged.chargeamps.client.ChargeAmpsClient` (and the
tests' in-memory vendors) satisfy.
"""

from __future__ import annotations

from typing import Protocol

from charged.chargeamps.models import (
    ChargePoint,
    ChargePointSettings,
    ChargePointStatus,
    ConnectorSettings,
)


class ControlClient(Protocol):
    """What the controller needs of :class:`~charged.chargeamps.client.ChargeAmpsClient`."""

    async def owned_chargepoints(self, *, deadline: float | None = None) -> list[ChargePoint]: ...

    async def status(self, cp_id: str, *, deadline: float | None = None) -> ChargePointStatus: ...

    async def chargepoint_settings(
        self, cp_id: str, *, deadline: float | None = None
    ) -> ChargePointSettings: ...

    async def set_chargepoint_settings(
        self, settings: ChargePointSettings, *, deadline: float | None = None
    ) -> None: ...

    async def connector_settings(
        self, cp_id: str, connector_id: int, *, deadline: float | None = None
    ) -> ConnectorSettings: ...

    async def set_connector_settings(
        self, settings: ConnectorSettings, *, deadline: float | None = None
    ) -> None: ...

    async def remote_start(
        self,
        cp_id: str,
        connector_id: int,
        *,
        rfid: str,
        rfid_format: str = "Hex",
        rfid_length: int | None = None,
        external_transaction_id: str | None = None,
        deadline: float | None = None,
    ) -> None: ...

    async def remote_stop(
        self, cp_id: str, connector_id: int, *, deadline: float | None = None
    ) -> None: ...

    async def reboot(self, cp_id: str, *, deadline: float | None = None) -> None: ...
