"""The ops server over a real socket on 127.0.0.1, and the readiness rule behind /readyz."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from charged.clock import FakeClock
from charged.metrics import Metrics
from charged.ops import OpsServer, ReadinessState, evaluate_readiness
from charged.ops.server import OpsServerError

# ---------------------------------------------------------------- the rule (pure)


def test_ready_when_fresh_tick_and_db_writable() -> None:
    result = evaluate_readiness(ReadinessState(interval=30, last_tick_stored=1000.0), now=1089.0)
    assert result.ready and result.reasons == []
    assert result.as_json()["status"] == "ready"
    assert result.as_json()["last_tick_age_seconds"] == 89.0


def test_stale_tick_is_not_ready_with_the_age_and_limit() -> None:
    result = evaluate_readiness(ReadinessState(interval=30, last_tick_stored=1000.0), now=1095.0)
    assert not result.ready
    assert result.reasons == ["no tick stored in the database for 95 s (limit 90 s)"]


def test_no_tick_yet_is_not_ready() -> None:
    result = evaluate_readiness(ReadinessState(interval=30), now=5.0)
    assert result.reasons == ["no tick stored yet"]


def test_db_down_is_fine_while_the_spool_has_room() -> None:
    spooling = ReadinessState(interval=30, last_tick_stored=1000.0, db_writable=False)
    assert evaluate_readiness(spooling, now=1010.0).ready
    full_but_db_ok = ReadinessState(interval=30, last_tick_stored=1000.0, spool_full=True)
    assert evaluate_readiness(full_but_db_ok, now=1010.0).ready
    stuck = ReadinessState(interval=30, last_tick_stored=1000.0, db_writable=False, spool_full=True)
    result = evaluate_readiness(stuck, now=1010.0)
    assert result.reasons == ["database not writable and spool full"]


def test_all_reasons_are_listed_and_a_clock_step_back_is_not_stale() -> None:
    stuck = ReadinessState(interval=10, last_tick_stored=1000.0, db_writable=False, spool_full=True)
    assert evaluate_readiness(stuck, now=1031.0).reasons == [
        "no tick stored in the database for 31 s (limit 30 s)",
        "database not writable and spool full",
    ]
    assert evaluate_readiness(ReadinessState(interval=10, last_tick_stored=1000.0), now=900.0).ready


def test_a_vendor_outage_is_ready_and_degraded_with_its_reason() -> None:
    """Ticks of gaps are stored ticks (the README's rule): 200, the outage named."""
    outage = ReadinessState(interval=30, last_tick_stored=1000.0, vendor_outage_since=700.0)
    result = evaluate_readiness(outage, now=1010.0)
    assert result.ready
    body = result.as_json()
    assert body["status"] == "degraded"
    assert body["reasons"] == [
        "vendor outage: no charger has answered for 310 s; each tick is stored as gaps"
    ]
    assert body["vendor_outage"] is True and body["vendor_outage_seconds"] == 310.0
    # the collector failing too is still not ready, and both are said
    stale = evaluate_readiness(outage, now=1100.0)
    assert not stale.ready and stale.as_json()["status"] == "not ready"
    assert stale.reasons[0].startswith("no tick stored in the database for 100 s")
    assert stale.reasons[1].startswith("vendor outage")
    calm = evaluate_readiness(ReadinessState(interval=30, last_tick_stored=1000.0), now=1010.0)
    assert calm.as_json()["vendor_outage"] is False and "reasons" not in calm.as_json()


# ---------------------------------------------------------------- the server (real socket)


class Probe:
    """The readiness source the supervisor/writer would update."""

    def __init__(self, state: ReadinessState) -> None:
        self.state = state
        self.broken = False

    def __call__(self) -> ReadinessState:
        if self.broken:
            raise RuntimeError("writer gone")
        return self.state


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def probe(fake_clock: FakeClock) -> Probe:
    return Probe(ReadinessState(interval=30, last_tick_stored=fake_clock.time()))


@pytest.fixture
async def server(metrics: Metrics, probe: Probe, fake_clock: FakeClock) -> AsyncIterator[OpsServer]:
    def extra(app: web.Application) -> None:
        async def hello(_request: web.Request) -> web.Response:
            return web.json_response({"hello": "control"})

        app.router.add_get("/api/v1/hello", hello)

    srv = OpsServer(metrics=metrics, readiness=probe, clock=fake_clock, port=0, extra_routes=extra)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def http(server: OpsServer) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with aiohttp.ClientSession() as session:
        yield session, f"http://127.0.0.1:{server.port}"


async def test_binds_loopback_on_a_real_port(server: OpsServer) -> None:
    assert server.host == "127.0.0.1" and server.port > 0


async def test_healthz(http: tuple[aiohttp.ClientSession, str]) -> None:
    session, base = http
    async with session.get(f"{base}/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_readyz_follows_state_and_clock(
    http: tuple[aiohttp.ClientSession, str], probe: Probe, fake_clock: FakeClock
) -> None:
    session, base = http
    async with session.get(f"{base}/readyz") as resp:
        assert resp.status == 200
        body = await resp.json()
        assert body["status"] == "ready" and body["db_writable"] is True

    await fake_clock.advance(95)
    async with session.get(f"{base}/readyz") as resp:
        assert resp.status == 503
        body = await resp.json()
        assert body["status"] == "not ready"
        assert body["reasons"] == ["no tick stored in the database for 95 s (limit 90 s)"]

    probe.state.last_tick_stored = fake_clock.time()
    probe.state.db_writable = False
    probe.state.spool_full = True
    async with session.get(f"{base}/readyz") as resp:
        assert resp.status == 503
        assert (await resp.json())["reasons"] == ["database not writable and spool full"]

    probe.state.spool_full = False  # DB still down, but rows are being spooled
    async with session.get(f"{base}/readyz") as resp:
        assert resp.status == 200


async def test_readyz_is_503_when_the_probe_itself_fails(
    http: tuple[aiohttp.ClientSession, str], probe: Probe
) -> None:
    session, base = http
    probe.broken = True
    async with session.get(f"{base}/readyz") as resp:
        assert resp.status == 503
        body = await resp.json()
        assert body["reasons"] == ["readiness check failed (RuntimeError)"]
        assert "writer gone" not in await resp.text()  # no free-form error text leaks out


async def test_metrics_in_prometheus_format(
    http: tuple[aiohttp.ClientSession, str], metrics: Metrics
) -> None:
    session, base = http
    metrics.ticks.labels(result="ok").inc(3)
    metrics.rows_spooled.labels(table="measurement").inc(12)
    async with session.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = await resp.text()
    assert 'charged_ticks_total{result="ok"} 3.0' in text
    assert 'charged_rows_spooled_total{table="measurement"} 12.0' in text
    assert "# TYPE charged_spool_bytes gauge" in text


async def test_unknown_path_is_404_and_extra_routes_are_served(
    http: tuple[aiohttp.ClientSession, str],
) -> None:
    session, base = http
    async with session.get(f"{base}/nope") as resp:
        assert resp.status == 404
    async with session.get(f"{base}/api/v1/hello") as resp:
        assert resp.status == 200 and await resp.json() == {"hello": "control"}
    async with session.post(f"{base}/healthz") as resp:
        assert resp.status == 405


async def test_port_in_use_is_one_clear_error(metrics: Metrics, fake_clock: FakeClock) -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        srv = OpsServer(
            metrics=metrics,
            readiness=lambda: ReadinessState(interval=30),
            clock=fake_clock,
            port=port,
        )
        with pytest.raises(OpsServerError, match=rf"cannot listen on 127.0.0.1:{port} .*ops.port"):
            await srv.start()
        await srv.stop()  # harmless after a failed start
    finally:
        blocker.close()


async def test_stop_closes_the_port(metrics: Metrics, fake_clock: FakeClock) -> None:
    srv = OpsServer(
        metrics=metrics, readiness=lambda: ReadinessState(interval=30), clock=fake_clock, port=0
    )
    await srv.start()
    port = srv.port
    await srv.stop()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{port}/healthz")
