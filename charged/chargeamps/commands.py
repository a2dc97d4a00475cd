"""The client's commands to a charger: remote start and stop, reboot, callbacks."""

from __future__ import annotations

from typing import Any

from charged.chargeamps.endpoints import CALLBACKS, REBOOT, REMOTE_START, REMOTE_STOP
from charged.chargeamps.typed_calls import TypedCalls

RFID_FORMATS = ("Hex", "Dec", "ReverseDec")


class CommandCalls(TypedCalls):
    """Commands to a charger; those that must not happen twice are never retried."""

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
    ) -> None:
        if rfid_format not in RFID_FORMATS:
            raise ValueError(
                f"rfid_format must be one of {', '.join(RFID_FORMATS)}, got {rfid_format!r}"
            )
        if rfid_length is None:
            if rfid_format != "Hex":
                raise ValueError(
                    f"rfid_length is needed for a {rfid_format} RFID; pass it in bytes"
                )
            rfid_length = len(rfid) // 2  # two hex digits per byte
        body: dict[str, Any] = {"rfidLength": rfid_length, "rfidFormat": rfid_format, "rfid": rfid}
        if external_transaction_id is not None:
            body["externalTransactionId"] = external_transaction_id
        # Not idempotent: a start that reached the charger must not be sent twice.
        await self._write(
            "PUT",
            REMOTE_START,
            path={"id": cp_id, "connector": connector_id},
            body=body,
            deadline=deadline,
            idempotent=False,
        )

    async def remote_stop(
        self, cp_id: str, connector_id: int, *, deadline: float | None = None
    ) -> None:
        # The vendor answers 403 to a PUT without a body: always send {}.  Retried like any
        # PUT: a second stop of a connector that has stopped changes nothing, and a stop
        # that gets through matters more than one request too many.
        await self._write(
            "PUT",
            REMOTE_STOP,
            path={"id": cp_id, "connector": connector_id},
            body={},
            deadline=deadline,
        )

    async def reboot(self, cp_id: str, *, deadline: float | None = None) -> None:
        # Not idempotent: a second reboot would interrupt the charger again.
        await self._write(
            "PUT", REBOOT, path={"id": cp_id}, body={}, deadline=deadline, idempotent=False
        )

    async def set_callbacks(
        self, cp_ids: list[str], *, enabled: bool, deadline: float | None = None
    ) -> None:
        await self._write(
            "PUT",
            CALLBACKS,
            path={"action": "enable" if enabled else "disable"},
            body={"chargePointIds": list(cp_ids)},
            deadline=deadline,
        )
