"""TLS verification stays on: the client refuses a server whose certificate it cannot trust,
with a line that says so, and works once the certificate is trusted."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from charged.chargeamps.client import ChargeAmpsClient
from charged.chargeamps.errors import ApiUnavailable
from charged.clock import FakeClock
from charged.metrics import Metrics
from charged.simulator import Simulator, SimulatorConfig

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def https_simulator(tmp_path: Path) -> AsyncIterator[tuple[Simulator, str, Path]]:
    cert, key = self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    sim = Simulator(SimulatorConfig(chargers=1, seed=1))
    runner = web.AppRunner(sim.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield sim, f"https://127.0.0.1:{port}", cert
    finally:
        await runner.cleanup()


def client_for(session: aiohttp.ClientSession, sim: Simulator, base_url: str) -> ChargeAmpsClient:
    return ChargeAmpsClient(
        session,
        base_url=base_url,
        email=sim.account.email,
        password=sim.account.password,
        api_key=sim.account.api_key,
        clock=FakeClock(),
        max_attempts=1,
        metrics=Metrics(),
    )


async def test_an_untrusted_certificate_is_refused_with_a_clear_line(
    https_simulator: tuple[Simulator, str, Path],
) -> None:
    sim, base_url, _ = https_simulator
    async with aiohttp.ClientSession() as session:  # the defaults the collector uses
        client = client_for(session, sim, base_url)
        with pytest.raises(ApiUnavailable) as info:
            await client.login()
    message = str(info.value)
    assert "TLS certificate is not trusted" in message and "\n" not in message
    assert sim.login_attempts == 0  # nothing reached the server's login handler


async def test_the_same_server_is_used_once_its_certificate_is_trusted(
    https_simulator: tuple[Simulator, str, Path],
) -> None:
    sim, base_url, cert = https_simulator
    trusting = ssl.create_default_context(cafile=str(cert))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as session:
        client = client_for(session, sim, base_url)
        await client.login()
        assert [cp.id for cp in await client.owned_chargepoints()] == sim.charge_point_ids()
