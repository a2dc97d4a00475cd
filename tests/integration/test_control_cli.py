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


def database_url(config: Path) -> str:
    return str(json.loads(config.read_text())["database"]["url"])


async def audit_rows(config: Path) -> list[dict[str, object]]:
    from sqlalchemy import select

    from charged.storage.engine import create_engine
    from charged.storage.schema import control_action

    engine = create_engine(database_url(config))
    try:
        async with engine.connect() as conn:
            result = await conn.execute(select(control_action).order_by(control_action.c.id))
            return [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()


async def test_settings_set_on_several_connectors_is_verified_and_audited_in_the_database(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cp_id = sim.charge_point_ids()[0]
    code = await run(
        config,
        "settings",
        "set",
        cp_id,
        "1,2",
        "--max-current",
        "10",
        "--rfid-lock",
        "on",
        "--json",
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True
    assert [(r["connector"], r["result"]) for r in out["results"]] == [(1, "ok"), (2, "ok")]
    rows = await audit_rows(config)
    assert sorted((r["connector_id"], r["field"], r["new_value"], r["result"]) for r in rows) == [
        (1, "maxCurrent", "10", "ok"),
        (1, "rfidLock", "true", "ok"),
        (2, "maxCurrent", "10", "ok"),
        (2, "rfidLock", "true", "ok"),
    ]
    assert {r["actor"] for r in rows} == {rows[0]["actor"]}
    assert str(rows[0]["actor"]).startswith("cli:")


async def test_a_change_that_does_not_stick_exits_1_and_is_audited_failed(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ignored, fine = sim.charge_point_ids()[:2]
    sim.faults.ignore_writes.add(ignored)
    code = await run(config, "chargepoint", "set", f"{ignored},{fine}", "--dimmer", "low")
    assert code == 1
    out = capsys.readouterr().out
    assert f'{ignored}: failed: did not stick: dimmer reads back "Medium" (asked "Low")' in out
    rows = {r["charge_point_id"]: r for r in await audit_rows(config)}
    assert rows[ignored]["result"] == "failed" and rows[fine]["result"] == "ok"
    assert rows[ignored]["old_value"] == '"Medium"' and rows[ignored]["new_value"] == '"Low"'


async def test_stop_all_reaches_every_connector_and_unknown_charger_is_exit_2(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(config, "stop", "--all", "--json") == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert len(results) == 2 * len(sim.charge_point_ids())
    assert await run(config, "reboot", "0000000000Z") == 2
    assert "not one of this account's chargers" in capsys.readouterr().out
