"""The client's calls on a charger's configuration: its settings, its connectors', its schedules."""

from __future__ import annotations

from charged.chargeamps.endpoints import (
    CONNECTOR_SETTINGS,
    CP_SETTINGS,
    SCHEDULE,
    SCHEDULE_OVERRIDE,
    SCHEDULE_OVERRIDE_STATUS,
    SCHEDULES,
)
from charged.chargeamps.models import ChargePointSettings, ConnectorSettings, Schedule
from charged.chargeamps.parsers import (
    parse_chargepoint_settings,
    parse_connector_settings,
    parse_list,
    parse_override,
    parse_schedule,
)
from charged.chargeamps.typed_calls import TypedCalls


class ChargerConfigCalls(TypedCalls):
    """Read and change a charger's and its connectors' settings, and its schedules."""

    async def chargepoint_settings(
        self, cp_id: str, *, deadline: float | None = None
    ) -> ChargePointSettings:
        return await self._get(
            CP_SETTINGS, {"id": cp_id}, parse_chargepoint_settings, cp_id, deadline=deadline
        )

    async def set_chargepoint_settings(
        self, settings: ChargePointSettings, *, deadline: float | None = None
    ) -> None:
        await self._write(
            "PUT",
            CP_SETTINGS,
            path={"id": settings.id},
            body=settings.to_json(),
            deadline=deadline,
        )

    async def connector_settings(
        self, cp_id: str, connector_id: int, *, deadline: float | None = None
    ) -> ConnectorSettings:
        return await self._get(
            CONNECTOR_SETTINGS,
            {"id": cp_id, "connector": connector_id},
            parse_connector_settings,
            cp_id,
            deadline=deadline,
        )

    async def set_connector_settings(
        self, settings: ConnectorSettings, *, deadline: float | None = None
    ) -> None:
        await self._write(
            "PUT",
            CONNECTOR_SETTINGS,
            path={"id": settings.charge_point_id, "connector": settings.connector_id},
            body=settings.to_json(),
            deadline=deadline,
        )

    # ------------------------------------------------------------ schedules

    async def schedules(self, cp_id: str, *, deadline: float | None = None) -> list[Schedule]:
        return await self._get(
            SCHEDULES,
            {"id": cp_id},
            lambda d: parse_list(d, parse_schedule, "Schedule[]"),
            cp_id,
            deadline=deadline,
        )

    async def schedule(
        self, cp_id: str, schedule_id: str, *, deadline: float | None = None
    ) -> Schedule:
        return await self._get(
            SCHEDULE,
            {"id": cp_id, "schedule": schedule_id},
            parse_schedule,
            cp_id,
            deadline=deadline,
        )

    async def create_schedule(
        self, cp_id: str, schedule: Schedule, *, deadline: float | None = None
    ) -> Schedule:
        """POST a schedule; returns the vendor's copy when it sends one back."""
        data = await self._write(
            "POST", SCHEDULES, path={"id": cp_id}, body=schedule.to_json(), deadline=deadline
        )
        return self._parse(data, parse_schedule, SCHEDULES, cp_id) if data else schedule

    async def update_schedule(
        self, cp_id: str, schedule: Schedule, *, deadline: float | None = None
    ) -> None:
        await self._write(
            "PUT", SCHEDULES, path={"id": cp_id}, body=schedule.to_json(), deadline=deadline
        )

    async def override_schedule(
        self, cp_id: str, connector_id: int, *, deadline: float | None = None
    ) -> None:
        """Charge now on a connector whose schedule would hold it (v5; the PUT has no body)."""
        await self._write(
            "PUT",
            SCHEDULE_OVERRIDE,
            path={"id": cp_id, "connector": connector_id},
            deadline=deadline,
        )

    async def schedule_override_status(
        self, cp_id: str, *, deadline: float | None = None
    ) -> dict[int, bool]:
        """connector id → whether its schedule is overridden (v5: [{connectorId, isOverridden}])."""
        return await self._get(
            SCHEDULE_OVERRIDE_STATUS,
            {"id": cp_id},
            lambda d: dict(parse_list(d, parse_override, "ScheduleOverride[]")),
            cp_id,
            deadline=deadline,
        )

    async def delete_schedule(
        self, cp_id: str, schedule_id: str, *, deadline: float | None = None
    ) -> None:
        await self._write(
            "DELETE", SCHEDULE, path={"id": cp_id, "schedule": schedule_id}, deadline=deadline
        )
