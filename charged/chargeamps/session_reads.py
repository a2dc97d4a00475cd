"""The client's reads of charging sessions: a charger's, a connector's, one session."""

from __future__ import annotations

from datetime import UTC, datetime

from charged.chargeamps.endpoints import CONNECTOR_SESSIONS, SESSION, SESSIONS
from charged.chargeamps.models import ChargingSession
from charged.chargeamps.parsers import parse_charging_session, parse_list
from charged.chargeamps.typed_calls import TypedCalls


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # naive means UTC, as everywhere in charged
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SessionReads(TypedCalls):
    """A charger's (or one connector's) charging sessions, and one session by id."""

    async def charging_sessions(
        self,
        cp_id: str,
        connector_id: int | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        max_count: int | None = None,
        deadline: float | None = None,
    ) -> list[ChargingSession]:
        params: dict[str, str] = {}
        if start is not None:
            params["startTime"] = _iso(start)
        if end is not None:
            params["endTime"] = _iso(end)
        if max_count is not None:
            if max_count < 1:
                raise ValueError(f"max_count must be at least 1, got {max_count}")
            params["maxCount"] = str(max_count)
        path: dict[str, str | int] = {"id": cp_id}
        template = SESSIONS
        if connector_id is not None:
            template, path["connector"] = CONNECTOR_SESSIONS, connector_id
        return await self._get(
            template,
            path,
            lambda d: parse_list(d, parse_charging_session, "ChargingSession[]"),
            cp_id,
            params=params or None,
            deadline=deadline,
        )

    async def charging_session(
        self, cp_id: str, session_id: int, *, deadline: float | None = None
    ) -> ChargingSession:
        return await self._get(
            SESSION,
            {"id": cp_id, "session": session_id},
            parse_charging_session,
            cp_id,
            deadline=deadline,
        )
