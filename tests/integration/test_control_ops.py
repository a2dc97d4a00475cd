"""The control API mounted on the daemon's OpsServer through its extra_routes hook."""

from __future__ import annotations

import aiohttp
import pytest

from charged.chargeamps.models import ChargePoint, ChargePointStatus
from charged.clock import FakeClock
from charged.config_service import ControlSettings
from charged.control.api import control_routes
from charged.control.audit import MemoryAuditSink
from charged.control.operations import Controller
from charged.metrics import Metrics
from charged.ops.health import ReadinessState
from charged.ops.server import OpsServer

TOKEN = "ops-control-token-0123456789"


class OneCharger:
    """The two vendor calls a listing needs, for one idle charger."""

    async def owned_chargepoints(self, **_: object) -> list[ChargePoint]:
        return [ChargePoint("CP1", "Bay 1", None, "AURA", False, None, None, False, None, (), None)]

    async def status(self, cp_id: str, **_: object) -> ChargePointStatus:
        return ChargePointStatus(cp_id, "Online", ())


def not_asked() -> ReadinessState:
    raise AssertionError("readiness is not what these tests look at")


async def serve(control: ControlSettings, fake_clock: FakeClock) -> OpsServer:
    controller = Controller(
        OneCharger(),  # type: ignore[arg-type]
        MemoryAuditSink(),
        actor="control-api",
        clock=fake_clock,
    )
    server = OpsServer(
        metrics=Metrics(),
        readiness=not_asked,
        clock=fake_clock,
        port=0,
        extra_routes=control_routes(control, lambda: controller),
    )
    await server.start()
    return server


async def test_enabled_control_api_sits_next_to_health_and_wants_the_token(
    fake_clock: FakeClock,
) -> None:
    server = await serve(ControlSettings(enabled=True, token=TOKEN), fake_clock)
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with http.get(f"{base}/api/control/chargers") as response:
                assert response.status == 401
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with http.get(f"{base}/api/control/chargers", headers=headers) as response:
                assert response.status == 200
                assert [c["id"] for c in (await response.json())["chargers"]] == ["CP1"]
    finally:
        await server.stop()


async def test_disabled_control_api_is_not_there_at_all(fake_clock: FakeClock) -> None:
    server = await serve(ControlSettings(enabled=False, token=TOKEN), fake_clock)
    try:
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            url = f"http://127.0.0.1:{server.port}/api/control/chargers"
            async with http.get(url, headers=headers) as response:
                assert response.status == 404
    finally:
        await server.stop()


def test_enabled_without_a_token_refuses_to_mount() -> None:
    with pytest.raises(ValueError, match=r"control\.token is missing"):
        control_routes(ControlSettings(enabled=True), lambda: None)  # type: ignore[arg-type,return-value]
