"""The vendor client against a real HTTP server that streams a huge answer.

aioresponses hands the client the whole body at once; only a server on a socket shows that
the client stops reading at the cap and never downloads (or holds) the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from charged.chargeamps.client import ChargeAmpsClient
from charged.chargeamps.errors import PayloadError
from charged.metrics import Metrics

CHUNK = 64 * 1024
HUGE = 64 * 1024 * 1024  # what the server would send if the client read it all


@dataclass
class Streamed:
    sent: int = 0
    finished: bool = False
    handler_done: asyncio.Event = field(default_factory=asyncio.Event)


async def _app(streamed: Streamed) -> web.Application:
    async def login(request: web.Request) -> web.Response:
        body = {"token": "t" * 20, "refreshToken": "r" * 20, "user": {"id": "u1"}}
        return web.json_response(body)

    async def status(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length to refuse it by
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(b'{"id": "CP1", "pad": "')
        try:
            while streamed.sent < HUGE:
                await response.write(b"x" * CHUNK)
                streamed.sent += CHUNK
            await response.write(b'"}')
            streamed.finished = True
        except ConnectionResetError:
            pass  # the client hung up, as it should
        finally:
            streamed.handler_done.set()
        return response

    async def declared(request: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"0," * 600_000 + b"0]", content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/v5/auth/login", login)
    app.router.add_get("/api/v5/chargepoints/CP1/status", status)
    app.router.add_get("/api/v5/chargepoints/owned", declared)
    return app


@pytest.fixture
async def served() -> AsyncIterator[tuple[Streamed, ChargeAmpsClient, Metrics]]:
    streamed = Streamed()
    server = TestServer(await _app(streamed), host="127.0.0.1")
    await server.start_server()
    metrics = Metrics()
    try:
        async with aiohttp.ClientSession() as http:
            client = ChargeAmpsClient(
                http,
                base_url=str(server.make_url("/")),
                email="owner@example.org",
                password="pw",
                api_key="key",
                max_body_bytes=1024 * 1024,
                max_attempts=1,
                metrics=metrics,
            )
            yield streamed, client, metrics
    finally:
        await server.close()


async def test_a_streamed_answer_past_the_cap_is_cut_off_not_downloaded(
    served: tuple[Streamed, ChargeAmpsClient, Metrics],
) -> None:
    streamed, client, metrics = served
    with pytest.raises(PayloadError, match="larger than 1048576 bytes"):
        await client.status("CP1")
    await asyncio.wait_for(streamed.handler_done.wait(), 10)  # the server saw the hang-up
    assert not streamed.finished
    # the client read cap + 1 bytes and closed; the server got at most its socket buffers
    # ahead of that, far from the 64 MiB it had to send
    assert streamed.sent < 16 * 1024 * 1024
    labels = {"endpoint": "/chargepoints/{id}/status"}
    assert metrics.registry.get_sample_value("charged_payload_errors_total", labels) == 1


async def test_a_declared_length_past_the_cap_is_refused_before_reading(
    served: tuple[Streamed, ChargeAmpsClient, Metrics],
) -> None:
    _, client, metrics = served
    with pytest.raises(PayloadError, match="larger than"):
        await client.owned_chargepoints()
    labels = {"endpoint": "/chargepoints/owned", "status": "body_too_large"}
    assert metrics.registry.get_sample_value("charged_api_requests_total", labels) == 1
