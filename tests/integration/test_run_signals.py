"""SIGTERM/SIGINT while `charged run` is still starting, against a real process.

The simulator in this process holds the login (its latency fault, far longer than the
client's request timeout here), so the daemon is certainly inside ``Daemon.start()`` when
the test signals it: once the login request has reached the simulator.  The daemon must cut
the start short and exit 0 at once — not wait for the login to give up (10 minutes here),
and without a traceback — also when a second signal follows the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from charged.simulator import Faults, Simulator, SimulatorConfig

DEADLINE = 60.0  # seconds any one awaited condition may take (the login would take 600)
POLL = 0.05


@pytest.fixture
async def hanging_login() -> AsyncIterator[Simulator]:
    # every answer, the login's too, waits an hour: the login hangs until it is cut
    sim = Simulator(SimulatorConfig(chargers=2, seed=3, faults=Faults(latency=3600.0)))
    await sim.start("127.0.0.1", 0)
    try:
        yield sim
    finally:
        await sim.stop()


def output(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


async def wait_until(
    what: str, check: Callable[[], bool], proc: asyncio.subprocess.Process, log: Path
) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + DEADLINE
    while not check():
        if proc.returncode is not None:
            pytest.fail(f"charged run exited ({proc.returncode}) before {what}:\n{output(log)}")
        if loop.time() > give_up:
            pytest.fail(f"timed out waiting for {what}:\n{output(log)}")
        await asyncio.sleep(POLL)  # polling another process; not waiting for time to pass


async def start_daemon(sim: Simulator, workdir: Path) -> tuple[asyncio.subprocess.Process, Path]:
    config = workdir / "config.yaml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "api": {
                    "base_url": sim.base_url,
                    "email": sim.account.email,
                    "password": sim.account.password,
                    "api_key": sim.account.api_key,
                    "request_timeout": 600,
                    "max_attempts": 1,
                },
                "database": {"url": f"sqlite+aiosqlite:///{workdir / 'charged.db'}"},
                "spool": {"directory": str(workdir / "spool")},
                "ops": {"enabled": False},
                "log": {"level": "info", "format": "json"},
            }
        )
    )
    config.chmod(0o600)
    log = workdir / "daemon.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHARGED_", "NOTIFY_"))}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "charged.cli", "run", "-c", str(config),
            cwd=workdir, env=env, stdout=out, stderr=out,
        )  # fmt: skip
    return proc, log


async def exit_code(proc: asyncio.subprocess.Process, log: Path) -> int:
    try:
        return await asyncio.wait_for(proc.wait(), timeout=DEADLINE)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"charged run did not exit on the signal:\n{output(log)}")


def events(log: Path) -> list[str]:
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line)["event"])
        except (ValueError, KeyError):
            out.append(line)  # not a log line: a traceback, say
    return out


async def login_reached(sim: Simulator, proc: asyncio.subprocess.Process, log: Path) -> None:
    # the simulator counts a request before its latency: the login is in flight
    await wait_until("the login request", lambda: sim.requests >= 1, proc, log)


async def test_sigterm_during_a_hung_login_stops_the_start_and_exits_0(
    hanging_login: Simulator, tmp_path: Path
) -> None:
    proc, log = await start_daemon(hanging_login, tmp_path)
    try:
        await login_reached(hanging_login, proc, log)
        proc.send_signal(signal.SIGTERM)
        assert await exit_code(proc, log) == 0, log.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    seen = events(log)
    assert "Traceback" not in log.read_text()
    assert "stop requested while starting; the start is cut short" in seen
    assert seen[-1] == "stopped", seen
    assert hanging_login.login_attempts == 0  # the login never got its answer


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
async def test_a_second_signal_while_starting_exits_0_without_a_traceback(
    hanging_login: Simulator, tmp_path: Path, second: signal.Signals
) -> None:
    proc, log = await start_daemon(hanging_login, tmp_path)
    try:
        await login_reached(hanging_login, proc, log)
        # Two signals back to back: the second reaches the daemon while it cuts the start
        # short, while it closes, or once all is done (then it ends the exit at once);
        # whichever it is, the exit is 0 and quiet.
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):  # gone: the first alone was seen
            proc.send_signal(second)
        assert await exit_code(proc, log) == 0, log.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = log.read_text()
    assert "Traceback" not in text and "CancelledError" not in text, text
    assert "stop requested while starting; the start is cut short" in events(log)
