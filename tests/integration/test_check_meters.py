"""`charged check` reaches each site meter: a real mosquitto and an HTTP meter on 127.0.0.1,
one line each, failures saying what to check (no sleeps: the time limit runs on a FakeClock)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from aiohttp import web

from charged.check_meters import check_meters
from charged.check_result import CheckResult, Status
from charged.clock import FakeClock
from charged.config import Settings, settings_from_mapping
from charged.simulator import Simulator, SimulatorConfig
from tests.integration.mqtt_broker import Mosquitto, free_port

WAIT = 20.0  # seconds any awaited event may take before the test fails (never slept)
FIELDS = ["grid.i.0", "grid.i.1", "grid.i.2"]


def config(meters: Mapping[str, Any], port: int) -> Settings:
    return settings_from_mapping(
        {
            "site": {
                "fuse": {
                    "name": "main",
                    "limit": 63,
                    "children": [{"name": "row-a", "limit": 40, "chargers": ["CP1"]}],
                },
                "meters": dict(meters),
            },
            "mqtt": {"host": "127.0.0.1", "port": port},
        },
        require_secrets=False,
    )


async def publish(port: int, topic: str, payload: Any, *, retain: bool = False) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload)
        await client.publish(topic, raw, qos=1, retain=retain)


class HttpMeter:
    def __init__(self) -> None:
        self.status = 200
        self.body: Any = {"grid": {"i": [10, 4.25, 0]}}
        self.port = 0


@pytest.fixture
async def http_meter() -> AsyncIterator[HttpMeter]:
    meter = HttpMeter()

    async def answer(_: web.Request) -> web.Response:
        return web.json_response(meter.body, status=meter.status)

    app = web.Application()
    app.router.add_get("/state", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    meter.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield meter
    finally:
        await runner.cleanup()


async def run(
    settings: Settings,
    clock: FakeClock,
    *,
    limit: float = 15.0,
    received: asyncio.Event | None = None,
) -> Any:
    """The check as a task, and once the broker took its subscriptions."""
    subscribed = asyncio.Event()
    task = asyncio.create_task(
        check_meters(
            settings, clock=clock, time_limit=limit, subscribed=subscribed, received=received
        )
    )
    async with asyncio.timeout(WAIT):
        await asyncio.wait(
            {task, asyncio.ensure_future(subscribed.wait())},
            return_when=asyncio.FIRST_COMPLETED,
        )
    return task


async def finish(task: Any) -> list[CheckResult]:
    async with asyncio.timeout(WAIT):
        result: list[CheckResult] = await task
    return result


async def test_an_mqtt_and_an_http_meter_each_answer_in_one_line(
    mosquitto: Mosquitto, http_meter: HttpMeter
) -> None:
    settings = config(
        {
            "main": {"mqtt_topic": "c1/meter", "fields": FIELDS},
            "row-a": {"http_url": f"http://127.0.0.1:{http_meter.port}/state", "fields": FIELDS},
        },
        mosquitto.port,
    )
    task = await run(settings, FakeClock(auto_advance=False))
    await publish(mosquitto.port, "c1/meter", {"grid": {"i": [12, 0.5, 3]}})
    results = await finish(task)
    at = f"127.0.0.1:{mosquitto.port}"
    assert results == [
        CheckResult(
            "meter", Status.OK, f"main (mqtt c1/meter on {at}): L1 12.0 A, L2 0.5 A, L3 3.0 A"
        ),
        CheckResult(
            "meter",
            Status.OK,
            f"row-a (http http://127.0.0.1:{http_meter.port}/state): L1 10.0 A, L2 4.2 A, L3 0.0 A",
        ),
    ]


async def test_silence_a_retained_message_and_wrong_fields_are_each_said(
    mosquitto: Mosquitto,
) -> None:
    await publish(mosquitto.port, "c2/old", {"grid": {"i": [1, 2, 3]}}, retain=True)
    settings = config(
        {
            "main": {"mqtt_topic": "c2/quiet", "fields": FIELDS},
            "row-a": {"mqtt_topic": "c2/old", "fields": FIELDS},
        },
        mosquitto.port,
    )
    clock = FakeClock(auto_advance=False)
    received = asyncio.Event()
    task = await run(settings, clock, limit=5.0, received=received)
    async with asyncio.timeout(WAIT):
        await received.wait()  # the broker replays the retained message on subscribing
    await clock.advance(5.0)  # the time limit passes: nothing on c2/quiet
    quiet, old = await finish(task)
    at = f"127.0.0.1:{mosquitto.port}"
    assert quiet == CheckResult(
        "meter",
        Status.FAIL,
        f"main (mqtt c2/quiet on {at}): no message within 5 s; check that the meter publishes "
        "on that topic (site.meters.main.mqtt_topic)",
        69,
    )
    assert old.status is Status.WARN
    assert old.message == (
        f"row-a (mqtt c2/old on {at}): only a retained message within 5 s (L1 1.0 A, L2 2.0 A, "
        "L3 3.0 A); the daemon takes live messages only: check that the meter still publishes"
    )
    await publish(mosquitto.port, "c2/old", b"", retain=True)  # the broker forgets it

    wrong = config(
        {"main": {"mqtt_topic": "c3/meter", "fields": ["a.b", "a.c", "a.d"]}}, mosquitto.port
    )
    task = await run(wrong, FakeClock(auto_advance=False))
    await publish(mosquitto.port, "c3/meter", {"a": {"b": 1, "c": "x", "d": 2}})
    (bad,) = await finish(task)
    assert bad == CheckResult(
        "meter",
        Status.FAIL,
        f"main (mqtt c3/meter on {at}): field a.c: 'x' is not a number; check "
        "site.meters.main.fields (and unit) against what the meter sends",
        78,
    )


async def test_a_broker_that_is_not_there_fails_every_mqtt_meter() -> None:
    port = free_port()  # nothing listens there
    settings = config({"main": {"mqtt_topic": "c4/meter", "fields": FIELDS}}, port)
    (result,) = await finish(await run(settings, FakeClock(auto_advance=False)))
    assert result.status is Status.FAIL and result.exit_code == 69
    assert result.message.startswith(
        f"main (mqtt c4/meter on 127.0.0.1:{port}): the MQTT broker 127.0.0.1:{port} cannot be "
        "reached: "
    )
    assert result.message.endswith("; check mqtt.host, mqtt.port and that the broker runs")


async def test_an_http_meter_that_fails_or_does_not_fit_its_fields(http_meter: HttpMeter) -> None:
    url = f"http://127.0.0.1:{http_meter.port}/state"
    settings = config({"row-a": {"http_url": url, "fields": FIELDS}}, 1883)
    clock = FakeClock(auto_advance=False)
    http_meter.status = 503
    (down,) = await check_meters(settings, clock=clock, time_limit=5.0)
    assert down == CheckResult(
        "meter",
        Status.FAIL,
        f"row-a (http {url}): the URL answered HTTP 503; check site.meters.row-a.http_url and "
        "that the meter answers",
        69,
    )
    http_meter.status, http_meter.body = 200, {"grid": {"i": [1, 2]}}
    (short,) = await check_meters(settings, clock=clock, time_limit=5.0)
    assert short == CheckResult(
        "meter",
        Status.FAIL,
        f"row-a (http {url}): field grid.i.2: the payload has no '2' there; check "
        "site.meters.row-a.fields (and unit) against what the meter sends",
        78,
    )
    gone = f"http://127.0.0.1:{free_port()}/state"
    (refused,) = await check_meters(
        config({"row-a": {"http_url": gone, "fields": FIELDS}}, 1883), clock=clock, time_limit=5.0
    )
    assert refused.status is Status.FAIL and refused.exit_code == 69
    assert refused.message.startswith(
        f"row-a (http {gone}): cannot be reached: ClientConnectorError"
    )


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(chargers=1, seed=3)


async def test_charged_check_prints_the_meters_line_and_fails_on_a_dead_one(
    tmp_path: Path, simulator: Simulator, http_meter: HttpMeter
) -> None:
    url = f"http://127.0.0.1:{http_meter.port}/state"
    account = simulator.account
    path = tmp_path / "config.yaml"
    path.write_text(
        f"api: {{base_url: {simulator.base_url}, email: {account.email}, "
        f"password: {account.password}, api_key: {account.api_key}, token_cache: null}}\n"
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path / 'charged.db'}'}}\n"
        f"spool: {{directory: {tmp_path / 'spool'}}}\n"
        "site:\n  fuse: {name: main, limit: 63}\n"
        f"  meters:\n    main: {{http_url: '{url}', fields: {FIELDS}}}\n"
    )
    path.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGED_")}

    async def check() -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "charged.cli",
            "check",
            "-c",
            str(path),
            "--timeout",
            "10",
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        async with asyncio.timeout(60):
            out, _ = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    code, out = await check()
    assert code == 0, out
    lines = [line.split(None, 2) for line in out.splitlines() if line.split()[1:2] == ["meter"]]
    assert lines == [["ok", "meter", f"main (http {url}): L1 10.0 A, L2 4.2 A, L3 0.0 A"]], out
    http_meter.status = 500
    code, out = await check()
    assert code == 69, out
    lines = [line.split(None, 2) for line in out.splitlines() if line.split()[1:2] == ["meter"]]
    assert lines == [
        [
            "FAIL",
            "meter",
            f"main (http {url}): the URL answered HTTP 500; check site.meters.main.http_url "
            "and that the meter answers",
        ]
    ], out
