"""The control commands in-process against the simulator on 127.0.0.1 and a SQLite file.

The handlers run on the test's event loop (``charged``'s main() would start its own), with the
same argument parser the `charged` command gets from ``add_control_commands``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from charged.control.cli import add_control_commands
from charged.exits import Fatal
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
    # the vendor's camelCase, as everywhere in --json
    assert set(data["chargers"][0]["connectors"][0]) == {
        "connectorId",
        "status",
        "current",
        "powerKw",
        "energyKwh",
    }
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
    ("argv", "message", "audited"),
    [
        (
            ("settings", "set", "{cp}", "1", "--max-current", "3"),
            "maxCurrent must be",
            [("connector_settings", 1, "maxCurrent", '"3"')],
        ),
        (
            ("settings", "set", "{cp}", "1,2", "--max-current", "40", "--mode", "off"),
            "maxCurrent must be",
            [
                ("connector_settings", 1, "mode", '"off"'),
                ("connector_settings", 1, "maxCurrent", '"40"'),
                ("connector_settings", 2, "mode", '"off"'),
                ("connector_settings", 2, "maxCurrent", '"40"'),
            ],
        ),
        (
            ("settings", "set", "{cp}", "1", "--max-current", "abc"),
            "maxCurrent must be whole amperes (0 to pause, or 6–32 A) or none, got 'abc'",
            [("connector_settings", 1, "maxCurrent", '"abc"')],
        ),
        (
            ("settings", "set", "{cp}", "2", "--mode", "turbo"),
            "mode must be one of",
            [("connector_settings", 2, "mode", '"turbo"')],
        ),
        (
            ("settings", "set", "{cp}", "2", "--rfid-lock", "maybe"),
            "rfidLock must be on or off",
            [("connector_settings", 2, "rfidLock", '"maybe"')],
        ),
        (
            ("chargepoint", "set", "{cp}", "--dimmer", "bright"),
            "dimmer must be one of",
            [("chargepoint_settings", None, "dimmer", '"bright"')],
        ),
        (
            ("start", "{cp}", "1", "--rfid", "nothex"),
            "must be hex digits",
            [("remote_start", 1, "remoteStart", '"nothex"')],
        ),
    ],
)
async def test_invalid_values_are_one_line_exit_2_nothing_sent_and_audited(
    sim: Simulator,
    config: Path,
    argv: tuple[str, ...],
    message: str,
    audited: list[tuple[object, ...]],
) -> None:
    cp_id = sim.charge_point_ids()[0]  # a real charger: nothing is sent to it all the same
    with pytest.raises(Fatal) as caught:
        await run(config, *(a.format(cp=cp_id) for a in argv))
    assert caught.value.code == 2
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert sim.requests == 0  # not even a login
    rows = await audit_rows(config)
    assert [(r["action"], r["connector_id"], r["field"], r["new_value"]) for r in rows] == audited
    assert {(r["charge_point_id"], r["result"], r["error"]) for r in rows} == {
        (cp_id, "rejected", str(caught.value))
    }
    assert all(r["old_value"] is None for r in rows)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("settings", "set", "CP", "1"), "nothing to change"),
        (("settings", "set", "CP", "--mode", "on"), "give the connector id"),
        (("settings", "set", "--mode", "on"), "or --all"),
        (("settings", "set", "CP", "x", "--mode", "on"), "connector must be a number"),
        (("settings", "set", "CP;1", "1", "--mode", "on"), "charger id must be"),
    ],
)
async def test_commands_that_name_no_target_or_change_are_usage_errors_not_audited(
    sim: Simulator, config: Path, argv: tuple[str, ...], message: str
) -> None:
    with pytest.raises(Fatal) as caught:
        await run(config, *argv)
    assert caught.value.code == 2 and message in str(caught.value)
    assert sim.requests == 0
    assert not database_exists(config)  # not even opened


async def test_an_invalid_value_for_all_chargers_is_audited_for_each_connector(
    sim: Simulator, config: Path
) -> None:
    with pytest.raises(Fatal) as caught:
        await run(config, "settings", "set", "--all", "--max-current", "5")
    assert caught.value.code == 2
    assert sim.writes == 0  # the owned list was read to name them; nothing was sent
    rows = await audit_rows(config)
    assert sorted((r["charge_point_id"], r["connector_id"]) for r in rows) == sorted(
        (cp, n) for cp in sim.charge_point_ids() for n in (1, 2)
    )
    assert {r["result"] for r in rows} == {"rejected"}


def database_exists(config: Path) -> bool:
    return Path(database_url(config).removeprefix("sqlite+aiosqlite:///")).exists()


def make_world_readable(path: Path) -> None:
    path.chmod(0o644)


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


async def test_stop_all_reaches_every_connector_and_reports_what_happened(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {
        (c["chargePointId"], c["connectorId"]): c["status"]
        for cp in sim.charge_point_ids()
        for c in (await _status(sim, cp))["connectorStatuses"]
    }
    assert "Charging" in before.values() and "Available" in before.values()
    assert await run(config, "stop", "--all", "--yes", "--json") == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert len(results) == 2 * len(sim.charge_point_ids())
    for r in results:
        was = before[(r["charger"], r["connector"])]
        assert r["changes"] == [{"field": "remoteStop", "old": was, "new": None}]
        if was == "Available":
            assert r["result"] == "unchanged"
            assert r["note"] == "connector was not charging (Available): nothing sent"
        elif was == "Charging":
            assert r["result"] == "ok" and r["note"] == "stopped: connector now Connected"
    stops = [path for method, path in sim.write_log if path.endswith("/remotestop")]
    assert len(stops) == sum(1 for r in results if r["result"] == "ok")
    for cp in sim.charge_point_ids():
        assert all(c["status"] != "Charging" for c in (await _status(sim, cp))["connectorStatuses"])


async def test_stop_on_an_idle_connector_says_so_in_the_table(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cp, n = await _connector_in(sim, "Available")
    assert await run(config, "stop", cp, str(n)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["CHARGER", "CONNECTOR", "FIELD", "OLD", "NEW", "RESULT"]
    assert out[1].split() == [cp, str(n), "remoteStop", "Available", "-", "unchanged"]
    assert (
        out[2]
        == f"{cp} connector {n}: unchanged: connector was not charging (Available): nothing sent"
    )
    assert sim.writes == 0


async def test_unknown_charger_refuses_the_whole_command_in_one_line(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = sim.charge_point_ids()[0]
    with pytest.raises(Fatal) as caught:
        await run(config, "settings", "set", f"{real},NOPE", "1", "--mode", "off")
    assert caught.value.code == 2
    assert str(caught.value) == (
        "charger NOPE is not one of this account's chargers; "
        "`charged chargers` lists the account's chargers"
    )
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # no table, no log line
    assert sim.writes == 0  # not even the real charger was changed
    rows = await audit_rows(config)
    assert [(r["charge_point_id"], r["field"], r["result"]) for r in rows] == [
        (real, "mode", "rejected"),
        ("NOPE", "mode", "rejected"),
    ]
    with pytest.raises(Fatal) as caught:
        await run(config, "reboot", real, "--yes", "--all")
    assert caught.value.code == 2


async def test_unknown_target_through_the_real_command_is_one_line_on_stderr(
    sim: Simulator, config: Path
) -> None:
    script = Path(sys.executable).parent / "charged"  # the installed `charged` command
    proc = await asyncio.create_subprocess_exec(
        str(script),
        "settings",
        "set",
        "NOPE",
        "1",
        "--mode",
        "off",
        "-c",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 2
    assert out == b""
    assert err.decode() == (
        "charged: charger NOPE is not one of this account's chargers; "
        "`charged chargers` lists the account's chargers\n"
    )


@pytest.mark.parametrize(
    "argv",
    [("reboot", "--all"), ("reboot", "{a},{b}"), ("stop", "--all"), ("stop", "{a},{b}", "1")],
)
async def test_several_chargers_at_once_need_yes(
    sim: Simulator, config: Path, argv: tuple[str, ...]
) -> None:
    a, b = sim.charge_point_ids()[:2]
    with pytest.raises(Fatal) as caught:
        await run(config, *(x.format(a=a, b=b) for x in argv))
    assert caught.value.code == 2
    assert "stops every car on them: add --yes (or run it at a terminal to confirm)" in str(
        caught.value
    )
    assert sim.requests == 0


class _Terminal:
    def __init__(self, answer: str) -> None:
        self.answer = answer

    def isatty(self) -> bool:
        return True

    def readline(self) -> str:
        return self.answer


@pytest.mark.parametrize(("answer", "sent"), [("y\n", 3), ("\n", 0), ("no\n", 0)])
async def test_at_a_terminal_a_reboot_of_several_chargers_asks_first(
    sim: Simulator,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    sent: int,
) -> None:
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))
    monkeypatch.setattr("charged.control.cli._interactive", lambda: True)
    if sent:
        assert await run(config, "reboot", "--all") == 0
    else:
        with pytest.raises(Fatal) as caught:
            await run(config, "reboot", "--all")
        assert caught.value.code == 1 and str(caught.value) == "not confirmed: nothing sent"
    err = capsys.readouterr().err
    ids = ", ".join(sim.charge_point_ids())
    assert f"Reboot 3 chargers ({ids})? Every car on them stops charging. [y/N] " in err
    assert sum(1 for _, path in sim.write_log if path.endswith("/reboot")) == sent


async def test_one_reboot_needs_no_confirmation_and_an_offline_charger_is_reported(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cp = sim.charge_point_ids()[2]
    assert await run(config, "reboot", cp) == 0
    out = capsys.readouterr().out
    assert "the vendor accepted the reboot" in out
    # rebooting: Offline for a while; a second reboot or a settings change cannot reach it
    assert await run(config, "reboot", cp) == 1
    assert f"{cp}: failed: charger {cp} is Offline: nothing sent" in capsys.readouterr().out
    # a settings change is kept by the cloud for it (read back: ok) …
    assert await run(config, "settings", "set", cp, "1", "--mode", "off") == 0
    capsys.readouterr()
    # … unless the vendor refuses it (409, as the simulator's option): then the reason
    sim.config.conflicts = True
    assert await run(config, "settings", "set", cp, "1", "--mode", "on") == 1
    assert (
        f"charger {cp} is Offline (restarting or out of reach): the vendor refused the change "
        "(HTTP 409); try again when it is Online" in capsys.readouterr().out
    )
    assert sum(1 for _, path in sim.write_log if path.endswith("/reboot")) == 1


async def test_a_config_readable_by_others_is_warned_about(
    sim: Simulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_world_readable(config)
    assert await run(config, "chargers") == 0
    err = capsys.readouterr().err
    assert err.startswith(f"charged: warning: {config} is readable by other users")
    assert err.count("\n") == 1 and f"chmod 600 {config}" in err


async def _status(sim: Simulator, cp: str) -> dict[str, object]:
    from charged.simulator.payloads import status_json

    point = sim.fleet.get(cp)
    assert point is not None
    return status_json(point, offline=sim.is_offline(point), no_measurements=False)


async def _connector_in(sim: Simulator, state: str) -> tuple[str, int]:
    for cp in sim.charge_point_ids():
        for c in (await _status(sim, cp))["connectorStatuses"]:  # type: ignore[attr-defined]
            if c["status"] == state:
                return cp, int(c["connectorId"])
    pytest.fail(f"no connector is {state}")
