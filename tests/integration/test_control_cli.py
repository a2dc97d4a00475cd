"""The control commands in-process against the simulator on 127.0.0.1 and a SQLite file.

The handlers run on the test's event loop (``charged``'s main() would start its own), with the
same argument parser the `charged` command gets from ``add_control_commands``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from charged.cli import Fatal
from charged.control.cli import add_control_commands
from charged.simulator import Simulator, SimulatorConfig

MORNING = 1_767_258_000.0  # 09:00 UTC: vehicles are charging


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="charged")
    add_control_commands(top.add_subparsers(dest="command", required=True))
    return top


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # The commands point structlog at this test's (captured) stderr, as `charged` would at
    # the real one; later tests must not write to a stream pytest has closed.
    yield
    structlog.reset_defaults()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimulatorConfig(chargers=3, seed=3, start_time=MORNING))
    await simulator.start("127.0.0.1", 0)
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
def config(sim: Simulator, tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        json.dumps(  # JSON is YAML
            {
                "api": {
                    "base_url": sim.base_url,
                    "email": sim.account.email,
                    "password": sim.account.password,
                    "api_key": sim.account.api_key,
                    "token_cache": str(tmp_path / "token.json"),
                    "max_attempts": 1,
                },
                "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'charged.db'}"},
            }
        )
    )
    path.chmod(0o600)
    return path


async def run(config: Path, *argv: str) -> int:
    args = parser().parse_args([*argv, "-c", str(config)])
    return int(await args.control_handler(args))


async def test_chargers_lists_the_fleet_with_live_status(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(config, "chargers") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == [
        "CHARGER",
        "NAME",
        "TYPE",
        "STATUS",
        "CONNECTOR",
        "STATE",
        "CURRENT",
        "POWER",
        "ENERGY",
    ]
    assert len(lines) == 1 + 2 * 3
    for cp_id in sim.charge_point_ids():
        assert out.count(cp_id) == 2
    assert await run(config, "chargers", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in data["chargers"]] == sim.charge_point_ids()
    assert sim.login_attempts == 1  # the second run used the token cache


async def test_settings_show(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cp_id = sim.charge_point_ids()[0]
    assert await run(config, "settings", "show", cp_id) == 0
    out = capsys.readouterr().out
    assert "DIMMER" in out and "MODE" in out
    assert await run(config, "settings", "show", cp_id, "2", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [(c["chargePointId"], c["connectorId"]) for c in data["connectors"]] == [(cp_id, 2)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("settings", "set", "CP", "1", "--max-current", "3"), "maxCurrent must be"),
        (("settings", "set", "CP", "1", "--max-current", "40"), "maxCurrent must be"),
        (("settings", "set", "CP", "1", "--max-current", "abc"), "maxCurrent must be"),
        (("settings", "set", "CP", "1", "--mode", "turbo"), "mode must be one of"),
        (("settings", "set", "CP", "1"), "nothing to change"),
        (("settings", "set", "CP", "--mode", "on"), "give the connector id"),
        (("settings", "set", "--mode", "on"), "or --all"),
        (("settings", "set", "CP", "x", "--mode", "on"), "connector must be a number"),
        (("chargepoint", "set", "CP", "--dimmer", "bright"), "dimmer must be one of"),
        (("start", "CP", "1", "--rfid", "nothex"), "must be hex digits"),
    ],
)
async def test_invalid_values_are_one_line_exit_2_nothing_sent(
    sim: Simulator, config: Path, argv: tuple[str, ...], message: str
) -> None:
    with pytest.raises(Fatal) as caught:
        await run(config, *argv)
    assert caught.value.code == 2
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert sim.requests == 0  # not even a login
