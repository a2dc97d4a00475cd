"""Which charger or connector a simulated request names, and the cloud's refusals of it:
unknown (404), offline (409 with ``conflicts``), another user's connector (403).  Settings
the cloud stored for an offline charger reach it at the first request about it once it is
back online.
"""

from __future__ import annotations

import json

from aiohttp import web

from charged.simulator.config import SimulatorConfig
from charged.simulator.connector import ConnectorBase
from charged.simulator.faults import Faults
from charged.simulator.fleet import ChargePoint, Fleet
from charged.simulator.wire import http_error


class ChargerAccess:
    """Look-ups of the chargers a request names, against ``fleet`` with ``faults``."""

    def __init__(self, config: SimulatorConfig, fleet: Fleet, faults: Faults) -> None:
        self.config = config
        self.fleet = fleet
        self.faults = faults
        self._unsynced: set[str] = set()  # offline chargers whose stored settings wait

    def cp(self, request: web.Request) -> ChargePoint:
        cp = self.fleet.get(request.match_info["cp"])
        if cp is None:
            raise http_error(web.HTTPNotFound, f"unknown charge point {request.match_info['cp']}")
        if cp.id in self._unsynced and not self.is_offline(cp):
            # back online: the cloud pushes what it stored meanwhile (cars follow it late)
            self._unsynced.discard(cp.id)
            self.fleet.settings_changed(cp)
        return cp

    def settings_stored(self, cp: ChargePoint) -> None:
        """The cloud stored new settings: an online charger gets them now, an offline one
        when it is back (noticed at the next request about it, e.g. the next poll)."""
        if self.is_offline(cp):
            self._unsynced.add(cp.id)
        else:
            self.fleet.settings_changed(cp)

    def is_offline(self, cp: ChargePoint) -> bool:
        """Rebooting, or made offline by the ``offline`` fault."""
        return cp.id in self.faults.offline or cp.offline_until > self.fleet.now()

    @property
    def clip(self) -> bool:
        return self.config.above_installation == "clip"

    def refuse_if_offline(self, cp: ChargePoint) -> None:
        """With ``conflicts``: 409 + JSON for a change to an offline charger (by default the
        change is accepted: the cloud keeps settings, a command never reaches the charger)."""
        if self.config.conflicts and self.is_offline(cp):
            raise web.HTTPConflict(
                text=json.dumps(
                    {
                        "error": f"charge point {cp.id} is offline; try again when it is online",
                        "messageCode": "ChargePointOffline",
                    }
                ),
                content_type="application/json",
            )

    def refuse_if_not_ours(self, connector: ConnectorBase) -> None:
        owned = connector.charge_point.kind.owned_connector
        if owned is not None and connector.connector_id != owned:
            raise http_error(
                web.HTTPForbidden,
                f"connector {connector.connector_id} of {connector.charge_point.id} "
                "belongs to another user",
            )

    def connector(self, request: web.Request) -> ConnectorBase:
        cp = self.cp(request)
        raw = request.match_info["cid"]
        connector = cp.connector(int(raw)) if raw.isdigit() else None
        if connector is None:
            raise http_error(web.HTTPNotFound, f"charge point {cp.id} has no connector {raw}")
        return connector
