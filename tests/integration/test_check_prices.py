"""`charged check` reads the configured prices once, as the daemon does: a file, an HTTP JSON
URL on 127.0.0.1 (today's and tomorrow's), one line each way, failures saying what to check
(no sleeps: the time limit runs on a FakeClock)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from charged.check_prices import check_prices
from charged.check_result import Status
from charged.clock import FakeClock
from charged.config import Settings, settings_from_mapping
from charged.exits import EXIT_CONFIG, EXIT_UNAVAILABLE
from charged.simulator import Simulator, SimulatorConfig
from tests.integration.mqtt_broker import free_port
from tests.unit.test_prices import hourly_json

T0 = 1_772_438_400  # 2026-03-02 08:00 UTC, 09:00 in Stockholm
WAIT = 20.0  # seconds any awaited step may take before the test fails (never slept)


def config(prices: dict[str, Any]) -> Settings:
    return settings_from_mapping(
        {"site": {"timezone": "Europe/Stockholm"}, "prices": prices}, require_secrets=False
    )


async def check(settings: Settings, clock: FakeClock | None = None) -> Any:
    clock = clock or FakeClock(T0, auto_advance=False)
    return await asyncio.wait_for(check_prices(settings, clock=clock, time_limit=5), WAIT)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Day-ahead prices at /prices/<day>.json (404 for a day not there), behind a key."""
    answers: dict[str, Any] = {}

    async def prices(request: web.Request) -> web.Response:
        if request.query.get("key") != "s3cret":
            return web.Response(status=403)
        answer = answers.get(request.match_info["day"])
        if answer is None:
            return web.Response(status=404)
        if isinstance(answer, asyncio.Event):
            answers["entered"].set()
            await answer.wait()  # an answer that never comes (set at teardown)
            return web.Response(status=503)
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_get("/prices/{day}.json", prices)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/prices/{{date:%Y-%m-%d}}.json?key=s3cret", answers
    finally:
        for answer in answers.values():
            if isinstance(answer, asyncio.Event):
                answer.set()
        await runner.cleanup()


async def test_a_url_is_read_for_today_and_the_line_says_what_now_costs(
    server: tuple[str, dict[str, Any]],
) -> None:
    url, answers = server
    answers["2026-03-02"] = hourly_json("2026-03-02", [1.0] * 9 + [3.5] + [1.0] * 14)
    result = await check(config({"url": url, "dear_above": 2.0}))
    assert result.status is Status.OK, result.message
    assert result.message == (
        f"url {url.split('?')[0]}: 24 intervals, 2026-03-02T00:00+01:00 to "
        "2026-03-03T00:00+01:00; now 3.5 (dear, charging capped)"
    )
    assert "s3cret" not in result.message  # the key in the query is never shown
    answers["2026-03-03"] = hourly_json("2026-03-03", [0.5] * 24)  # tomorrow's came
    result = await check(config({"url": url, "dear_above": 2.0}), FakeClock(T0 + 3600))
    assert result.message.endswith("48 intervals, 2026-03-02T00:00+01:00 to "
                                   "2026-03-04T00:00+01:00; now 1 (not dear)")  # fmt: skip


async def test_a_url_that_fails_is_unavailable_and_bad_prices_are_the_config(
    server: tuple[str, dict[str, Any]],
) -> None:
    url, answers = server
    result = await check(config({"url": url}))  # today's prices are not there
    assert (result.status, result.exit_code) == (Status.FAIL, EXIT_UNAVAILABLE)
    assert "answered HTTP 404; check prices.url and that the URL answers" in result.message
    answers["2026-03-02"] = '[{"time_start": "2026-03-02T00:00:00+01:00"}]'
    result = await check(config({"url": url}))
    assert (result.status, result.exit_code) == (Status.FAIL, EXIT_CONFIG), result.message
    assert "SEK_per_kWh" in result.message and "check prices.url and the prices' fields" in (
        result.message
    )
    answers["entered"] = asyncio.Event()
    answers["2026-03-02"] = asyncio.Event()  # an answer that never comes
    clock = FakeClock(T0, auto_advance=False)
    checking = asyncio.ensure_future(check_prices(config({"url": url}), clock=clock, time_limit=5))
    await asyncio.wait_for(answers["entered"].wait(), WAIT)
    await clock.advance(5)  # the time limit passes on the check's clock
    result = await asyncio.wait_for(checking, WAIT)
    assert (result.status, result.exit_code) == (Status.FAIL, EXIT_UNAVAILABLE)
    assert "no answer within 5 s" in result.message


async def test_a_url_nobody_listens_on_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}/prices.json"
    result = await check(config({"url": url}))
    assert (result.status, result.exit_code) == (Status.FAIL, EXIT_UNAVAILABLE)
    assert "cannot be reached" in result.message and "check prices.url" in result.message


async def test_a_file_is_read_and_a_stale_or_missing_one_says_so(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("start,price\n2026-03-02T09:00:00+01:00,0.8\n2026-03-02T10:00:00+01:00,2.0\n")
    result = await check(config({"file": str(path), "dear_share": 0.5}))
    assert result.status is Status.OK, result.message
    assert result.message == (
        f"file {path}: 2 intervals, 2026-03-02T09:00+01:00 to 2026-03-02T11:00+01:00; "
        "now 0.8 (not dear)"
    )
    result = await check(config({"file": str(path)}), FakeClock(T0 + 3 * 3600))
    assert result.status is Status.WARN
    assert "all before now: nothing is capped for price until newer prices come" in (result.message)
    result = await check(config({"file": str(path)}), FakeClock(T0 - 3 * 3600))
    assert result.status is Status.WARN and "none for now (2026-03-02T06:00+01:00)" in (
        result.message
    )
    path.write_text("begin,price\n")
    result = await check(config({"file": str(path)}))
    assert (result.status, result.exit_code) == (Status.FAIL, EXIT_CONFIG)
    assert "unknown column 'begin'" in result.message
    result = await check(config({"file": str(tmp_path / "gone.csv")}))
    assert (result.status, result.exit_code) == (Status.FAIL, EXIT_CONFIG)
    assert "cannot read" in result.message and "check prices.file" in result.message


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(chargers=1, seed=3)


async def test_charged_check_prints_the_prices_line_and_fails_on_a_missing_file(
    tmp_path: Path, simulator: Simulator
) -> None:
    prices = tmp_path / "prices.csv"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = [f"{(hour + timedelta(hours=k)).isoformat()},{k}" for k in range(-2, 3)]
    prices.write_text("start,price\n" + "\n".join(rows) + "\n")
    account = simulator.account
    path = tmp_path / "config.yaml"
    path.write_text(
        f"api: {{base_url: {simulator.base_url}, email: {account.email}, "
        f"password: {account.password}, api_key: {account.api_key}, token_cache: null}}\n"
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path / 'charged.db'}'}}\n"
        f"spool: {{directory: {tmp_path / 'spool'}}}\n"
        f"prices: {{file: {prices}, dear_above: 1.5}}\n"
    )
    path.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGED_")}

    async def check() -> tuple[int, list[list[str]]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "charged.cli", "check", "-c", str(path), "--timeout", "10",
            stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, _ = await proc.communicate()
        assert proc.returncode is not None
        lines = [line.split(None, 2) for line in out.decode().splitlines()]
        return proc.returncode, [line for line in lines if line[1:2] == ["prices"]]

    code, lines = await check()
    assert code == 0, lines
    assert lines == [
        ["ok", "prices", f"file {prices}: 5 intervals, " + lines[0][2].split(", ", 1)[1]]
    ]
    assert lines[0][2].endswith("; now 0 (not dear)"), lines
    prices.unlink()
    code, lines = await check()
    assert code == EXIT_CONFIG and lines[0][:2] == ["FAIL", "prices"], lines
    assert "cannot read" in lines[0][2] and "check prices.file" in lines[0][2]
