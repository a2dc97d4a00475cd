"""The vendor endpoints charged itself does not call, simulated so the API is whole:
schedules (kept per charger, numbered), the schedule override and its status, and
enabling or disabling callbacks.
"""

from __future__ import annotations

from aiohttp import web

from charged.simulator import payloads
from charged.simulator.access import ChargerAccess
from charged.simulator.fleet import ChargePoint
from charged.simulator.payloads import BadRequest, JsonObject
from charged.simulator.wire import error, ok, required_body


class VendorExtras:
    """The schedules, overrides and callbacks of the chargers ``access`` finds."""

    def __init__(self, access: ChargerAccess) -> None:
        self._access = access
        self._schedules: dict[str, dict[str, JsonObject]] = {}
        self._schedule_serial = 0
        self.callbacks_enabled: set[str] = set()
        self._overridden: set[tuple[str, int]] = set()  # (cp, connector) schedule overrides

    async def override_schedule(self, request: web.Request) -> web.StreamResponse:
        """PUT .../connectors/{cid}/schedule/override (no body): charge now, schedule aside."""
        connector = self._access.connector(request)
        self._access.refuse_if_not_ours(connector)
        self._overridden.add((connector.charge_point.id, connector.connector_id))
        return ok()

    async def override_status(self, request: web.Request) -> web.StreamResponse:
        cp = self._access.cp(request)
        return web.json_response(
            [
                {
                    "connectorId": c.connector_id,
                    "isOverridden": (cp.id, c.connector_id) in self._overridden,
                }
                for c in cp.connectors
            ]
        )

    async def callbacks_enable(self, request: web.Request) -> web.StreamResponse:
        return await self.callbacks(request, enable=True)

    async def callbacks_disable(self, request: web.Request) -> web.StreamResponse:
        return await self.callbacks(request, enable=False)

    async def callbacks(self, request: web.Request, *, enable: bool) -> web.StreamResponse:
        body = await required_body(request)
        try:
            ids = payloads.parse_charge_point_ids(body)
        except BadRequest as exc:
            return error(400, str(exc))
        known = set(self._access.fleet.charge_point_ids())
        unknown = [i for i in ids if i not in known]
        if unknown:
            return error(404, f"unknown charge point {unknown[0]}")
        if enable:
            self.callbacks_enabled.update(ids)
        else:
            self.callbacks_enabled.difference_update(ids)
        return ok()

    def cp_schedules(self, request: web.Request) -> tuple[ChargePoint, dict[str, JsonObject]]:
        cp = self._access.cp(request)
        return cp, self._schedules.setdefault(cp.id, {})

    async def list_schedules(self, request: web.Request) -> web.StreamResponse:
        _, schedules = self.cp_schedules(request)
        return web.json_response(list(schedules.values()))

    async def get_schedule(self, request: web.Request) -> web.StreamResponse:
        cp, schedules = self.cp_schedules(request)
        schedule = schedules.get(request.match_info["sched"])
        if schedule is None:
            return error(404, f"no schedule {request.match_info['sched']} on {cp.id}")
        return web.json_response(schedule)

    async def create_schedule(self, request: web.Request) -> web.StreamResponse:
        cp, schedules = self.cp_schedules(request)
        body = await required_body(request)
        if not isinstance(body, dict):
            return error(400, "Schedule: the body must be a JSON object")
        self._schedule_serial += 1
        schedule = {**body, "id": self._schedule_serial, "chargePointId": cp.id}
        schedules[str(self._schedule_serial)] = schedule
        return web.json_response(schedule)

    async def update_schedule(self, request: web.Request) -> web.StreamResponse:
        cp, schedules = self.cp_schedules(request)
        body = await required_body(request)
        if not isinstance(body, dict) or body.get("id") is None:
            return error(400, "Schedule: the body must be a JSON object with its id")
        key = str(body["id"])
        if key not in schedules:
            return error(404, f"no schedule {key} on {cp.id}")
        schedules[key] = {**body, "id": schedules[key]["id"], "chargePointId": cp.id}
        return web.json_response(schedules[key])

    async def delete_schedule(self, request: web.Request) -> web.StreamResponse:
        cp, schedules = self.cp_schedules(request)
        if schedules.pop(request.match_info["sched"], None) is None:
            return error(404, f"no schedule {request.match_info['sched']} on {cp.id}")
        return ok()
