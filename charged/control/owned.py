"""The account's own chargers, listed by the vendor and cached a while, and the check that a
control target (a charger, a connector of one) is one of them, so a typo never reaches
somebody's car.
"""

from __future__ import annotations

import asyncio

from charged.chargeamps.models import ChargePoint
from charged.clock import Clock
from charged.control.client import ControlClient
from charged.control.results import UnknownTarget

# How long the list of owned chargers is trusted before it is read again.
FLEET_TTL = 60.0


class OwnedFleet:
    """The owned charge points, read again once ``ttl`` seconds old (or when asked)."""

    def __init__(self, client: ControlClient, clock: Clock, ttl: float = FLEET_TTL) -> None:
        self._client = client
        self._clock = clock
        self._fleet_ttl = ttl
        self._fleet: dict[str, ChargePoint] = {}
        self._fleet_read_at: float | None = None
        self._fleet_lock = asyncio.Lock()

    async def owned(self, *, refresh: bool) -> dict[str, ChargePoint]:
        async with self._fleet_lock:
            now = self._clock.monotonic()
            stale = self._fleet_read_at is None or now - self._fleet_read_at >= self._fleet_ttl
            if refresh or stale:
                fleet = await self._client.owned_chargepoints()
                self._fleet = {cp.id: cp for cp in fleet}
                self._fleet_read_at = now
            return self._fleet

    async def charger(self, cp_id: str) -> ChargePoint:
        cp = (await self.owned(refresh=False)).get(cp_id)
        if cp is None:
            raise UnknownTarget(f"charger {cp_id} is not one of this account's chargers", cp_id)
        return cp

    async def connector(self, cp_id: str, connector_id: int) -> None:
        cp = await self.charger(cp_id)
        ids = [c.connector_id for c in cp.connectors]
        if connector_id not in ids:
            have = ", ".join(str(i) for i in ids) or "none"
            raise UnknownTarget(
                f"charger {cp_id} has no connector {connector_id} (it has: {have})",
                cp_id,
                connector_id,
            )
