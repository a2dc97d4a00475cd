"""The client's reads of charge points and their statuses.

A numbered connector status means one thing on CAPI, another on OCPP: the reads here learn
each charger's ocppVersion (from the lists and charger reads) so a status means the right one.
"""

from __future__ import annotations

from charged.chargeamps.endpoints import CHARGEPOINT, ORGANISATION_STATUSES, OWNED, STATUS
from charged.chargeamps.errors import PayloadError
from charged.chargeamps.models import ChargePoint, ChargePointStatus
from charged.chargeamps.parsers import has_numbered_status, parse_chargepoint, parse_status
from charged.chargeamps.status_wire import decode_status
from charged.chargeamps.typed_calls import TypedCalls

# An organisation's statuses hold every charger: its cap is this much per charger expected
# (a status of two charging connectors is about 1 KiB), or api.max_body_bytes if larger.
ORGANISATION_BYTES_PER_CHARGER = 16 * 1024


class ChargePointReads(TypedCalls):
    """The charge points of the account, one charger, its status, an organisation's."""

    _ocpp_versions: dict[str, str | None]  # set by ChargeAmpsClient.__init__
    _unknown_statuses: set[str]

    async def owned_chargepoints(self, *, deadline: float | None = None) -> list[ChargePoint]:
        """Every charge point of the account; one that cannot be parsed is logged and skipped."""
        data = await self._fetch(OWNED, {}, deadline=deadline)
        if data is None:
            return []
        if not isinstance(data, list):
            raise self._payload_problem(
                PayloadError("expected a JSON array of charge points"), OWNED, None
            )
        found: list[ChargePoint] = []
        for item in data:
            cp_id = item.get("id") if isinstance(item, dict) else None
            key = cp_id if isinstance(cp_id, str) else None
            try:
                cp = parse_chargepoint(item)
            except PayloadError as exc:
                self._payload_problem(exc, OWNED, key)
                continue
            self._payload_recovered(key)
            self._ocpp_versions[cp.id] = cp.ocpp_version
            found.append(cp)
        return found

    async def chargepoint(
        self, cp_id: str, *, expand_settings: bool = False, deadline: float | None = None
    ) -> ChargePoint:
        params = {"expand": "settings"} if expand_settings else None
        cp = await self._get(
            CHARGEPOINT, {"id": cp_id}, parse_chargepoint, cp_id, params=params, deadline=deadline
        )
        self._ocpp_versions[cp.id] = cp.ocpp_version
        return cp

    async def status(self, cp_id: str, *, deadline: float | None = None) -> ChargePointStatus:
        """The charger's status, connector statuses normalised (charged.chargeamps.states)."""
        data = await self._fetch(
            STATUS, {"id": cp_id}, cp_id=cp_id, deadline=deadline, decode=decode_status
        )
        if isinstance(data, ChargePointStatus):
            # the usual answer, decoded typed (charged.chargeamps.status_wire): no numbered
            # status in it, so nothing to learn of the charger's protocol first
            self._payload_recovered(cp_id)
            self._warn_unknown_statuses(data)
            return data
        if cp_id not in self._ocpp_versions and has_numbered_status(data):
            # a numbered status means one thing on CAPI, another on OCPP: learn which once
            await self.chargepoint(cp_id, deadline=deadline)
        return self._status_of(data, cp_id, STATUS)

    async def organisation_statuses(
        self, organisation_id: str, *, chargers: int = 1, deadline: float | None = None
    ) -> tuple[list[ChargePointStatus], list[str]]:
        """Every charger of the organisation in one call (v5).

        ``chargers``: how many the caller expects; the answer may be
        ``max(api.max_body_bytes, chargers × ORGANISATION_BYTES_PER_CHARGER)`` long.
        → (the statuses that parse, the ids of those that do not: each counted and logged
        as a payload error of its own, so one bad charger does not cost the others).
        """
        self._body_caps[ORGANISATION_STATUSES] = max(
            self._max_body, chargers * ORGANISATION_BYTES_PER_CHARGER
        )
        path = {"org": organisation_id}
        data = await self._fetch(ORGANISATION_STATUSES, path, deadline=deadline)
        if data is None:
            return [], []
        if not isinstance(data, list):
            raise self._payload_problem(
                PayloadError("expected a JSON array of charge point statuses"),
                ORGANISATION_STATUSES,
                None,
            )
        unknown_kind = {
            item["id"]
            for item in data
            if isinstance(item, dict)
            and isinstance(item.get("id"), str)
            and item["id"] not in self._ocpp_versions
            and has_numbered_status(item)
        }
        if unknown_kind:
            await self.owned_chargepoints(deadline=deadline)  # one list for all of them
        statuses: list[ChargePointStatus] = []
        broken: list[str] = []
        for item in data:
            cp_id = item.get("id") if isinstance(item, dict) else None
            key = cp_id if isinstance(cp_id, str) else None
            try:
                statuses.append(self._status_of(item, key, ORGANISATION_STATUSES))
            except PayloadError:
                if key is not None:
                    broken.append(key)
        return statuses, broken

    def _status_of(self, data: object, cp_id: str | None, template: str) -> ChargePointStatus:
        version = self._ocpp_versions.get(cp_id) if cp_id is not None else None
        try:
            status = parse_status(data, version)
        except PayloadError as exc:
            raise self._payload_problem(exc, template, cp_id) from exc
        self._payload_recovered(cp_id)
        self._warn_unknown_statuses(status)
        return status

    def _warn_unknown_statuses(self, status: ChargePointStatus) -> None:
        for c in status.connector_statuses:
            if c.state is None and c.status not in self._unknown_statuses:
                # stored as it came; a value no document names may be a new firmware's
                self._unknown_statuses.add(c.status)
                self._log.warning(
                    "connector status no vendor document names; stored as it came",
                    status=c.status[:64],
                    charge_point_id=c.charge_point_id,
                    connector_id=c.connector_id,
                )
