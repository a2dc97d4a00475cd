"""`charged` as a user runs it: bad input gives one line and the documented exit code."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from charged.exits import EXIT_CONFIG, EXIT_NOPERM, EXIT_UNAVAILABLE
from charged.simulator import Simulator, SimulatorConfig


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGED_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "charged.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("charged: ")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    """The fleet the shared ``simulator`` fixture serves here."""
    return SimulatorConfig(chargers=2, seed=3)


def config_file(
    tmp_path: Path,
    sim: Simulator | None,
    *,
    password: str | None = None,
    db_url: str | None = None,
    extra: str = "",
) -> Path:
    base = sim.base_url if sim else "http://127.0.0.1:9"
    pw = password if password is not None else (sim.account.password if sim else "pw")
    email = sim.account.email if sim else "e@x"
    key = sim.account.api_key if sim else "k"
    url = db_url or f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    path = tmp_path / "config.yaml"
    path.write_text(
        f"api:\n  base_url: {base}\n  email: {email}\n  password: {pw}\n  api_key: {key}\n"
        f"database:\n  url: {url}\n"
        f"spool:\n  directory: {tmp_path / 'spool'}\nops:\n  port: 0\n{extra}"
    )
    path.chmod(0o600)
    return path


def test_missing_config_file(tmp_path: Path) -> None:
    proc = run_cli("run", "-c", str(tmp_path / "absent.yaml"))
    assert proc.returncode == EXIT_CONFIG
    assert "config file not found" in one_line_error(proc)


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("api:\n  email: [oops\n")
    proc = run_cli("run", "-c", str(path))
    assert proc.returncode == EXIT_CONFIG
    assert "YAML syntax error at line" in one_line_error(proc)


def test_unknown_key(tmp_path: Path) -> None:
    path = config_file(tmp_path, None, extra="collector:\n  intervall: 30\n")
    proc = run_cli("run", "-c", str(path))
    assert proc.returncode == EXIT_CONFIG
    assert "unknown key 'collector.intervall'" in one_line_error(proc)


def test_missing_password(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("api:\n  email: e@x\n  api_key: k\n")
    proc = run_cli("run", "-c", str(path))
    assert proc.returncode == EXIT_CONFIG
    assert "api.password is missing" in one_line_error(proc)


async def test_wrong_password_is_one_line_and_one_login(
    tmp_path: Path, simulator: Simulator
) -> None:
    path = config_file(tmp_path, simulator, password="not-the-password")
    proc = await asyncio.to_thread(run_cli, "run", "-c", str(path))
    assert proc.returncode == EXIT_NOPERM
    line = one_line_error(proc)
    assert "login refused" in line and "not-the-password" not in proc.stderr
    assert simulator.login_attempts == 1  # no retry storm


async def test_mysql_unreachable_at_start_collects_into_the_spool(
    tmp_path: Path, simulator: Simulator
) -> None:
    # e.g. the machine booted before the database server: the service collects meanwhile
    path = config_file(
        tmp_path,
        simulator,
        db_url="mysql+asyncmy://charged:s3cret@127.0.0.1:1/charged",
        extra="collector:\n  interval: 1\nwriter:\n  flush_interval: 0.2\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGED_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "charged.cli",
        "run",
        "-c",
        str(path),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not any(".spool" in p.name for p in (tmp_path / "spool").glob("*")):
                line = (await proc.stdout.readline()).decode()
                assert line, "charged run exited:\n" + "".join(seen)
                seen.append(line)
        proc.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = "".join(seen) + rest.decode()
    assert proc.returncode == 0, output
    assert "database unreachable at start; collecting into the spool" in output
    assert "127.0.0.1:1" in output and "s3cret" not in output
    assert "Traceback" not in output


def test_a_database_url_that_does_not_parse_is_a_config_error(tmp_path: Path) -> None:
    path = config_file(tmp_path, None, db_url="mysql+asyncmy://charged:s3cret@db:33o6/charged")
    proc = run_cli("run", "-c", str(path))
    assert proc.returncode == EXIT_CONFIG  # 78: not restarted by systemd, unlike 69
    assert "the database URL is not valid" in one_line_error(proc)
    assert "s3cret" not in proc.stderr


def test_sqlite_unusable_at_start_is_one_line(tmp_path: Path) -> None:
    # a local file that cannot be created does not come back by itself: fatal
    path = config_file(tmp_path, None, db_url="sqlite+aiosqlite:////proc/charged/c.db")
    proc = run_cli("run", "-c", str(path))
    assert proc.returncode == EXIT_UNAVAILABLE
    assert "choose a writable path in database.url" in one_line_error(proc)


@pytest.mark.mysql
async def test_database_password_refused_at_start(
    tmp_path: Path, simulator: Simulator, mysql_url: str
) -> None:
    # the server answers but refuses the login: exit 77 (no restart loop), not 69
    db_url = make_url(mysql_url).set(password="wrong-db-pw-3141").render_as_string(False)
    path = config_file(tmp_path, simulator, db_url=db_url)
    proc = await asyncio.to_thread(run_cli, "run", "-c", str(path))
    assert proc.returncode == EXIT_NOPERM
    line = one_line_error(proc)
    assert "Access denied" in line and "check the user and password" in line
    assert "wrong-db-pw-3141" not in proc.stderr + proc.stdout


def test_demo_interval_below_a_second_is_a_usage_error() -> None:
    proc = run_cli("demo", "--interval", "0.5", "--duration", "1")
    assert proc.returncode == 2
    assert "--interval: must be at least 1 second, got 0.5" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_sub_command_failure_is_one_line_under_python_m(tmp_path: Path) -> None:
    # `python -m charged.cli` runs the module as __main__: the sub-commands' Fatal must still
    # be caught (it was a traceback), and the API's transition warning is not a second line
    path = config_file(tmp_path, None)
    proc = run_cli("settings", "set", "CP1", "1", "--mode", "off", "-c", str(path))
    assert proc.returncode == EXIT_UNAVAILABLE, proc.stderr
    assert proc.stderr.splitlines() == [one_line_error(proc)]
    assert "POST /auth/login" in proc.stderr


async def test_an_api_address_that_finds_no_login_is_a_config_error(
    tmp_path: Path, simulator: Simulator
) -> None:
    path = config_file(tmp_path, simulator)
    path.write_text(path.read_text().replace(simulator.base_url, f"{simulator.base_url}/api/v5"))
    proc = await asyncio.to_thread(run_cli, "run", "-c", str(path))
    assert proc.returncode == EXIT_CONFIG  # not restarted in a loop by systemd
    assert "check api.base_url" in one_line_error(proc)


# ---------------------------------------------------------------- consistency


def _commands(parser: Any, name: str = "charged") -> list[tuple[str, Any]]:
    import argparse

    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found.append((f"{name} {sub_name}", sub))
                found += _commands(sub, f"{name} {sub_name}")
    return found


def test_every_command_has_help_and_a_description() -> None:
    from charged.cli import build_parser

    commands = _commands(build_parser())
    assert len(commands) > 20
    for name, parser in commands:
        assert parser.description, f"`{name} --help` says nothing about what it does"
        assert parser.description.strip()[-1] in ".)", name


def test_the_database_option_is_db_url_everywhere() -> None:
    from charged.cli import build_parser

    for name, parser in _commands(build_parser()):
        options = {o for a in parser._actions for o in a.option_strings}
        shown = {o for a in parser._actions if a.help != "==SUPPRESS==" for o in a.option_strings}
        assert "--database-url" not in options, name
        if "--url" in options:  # the old spelling of db upgrade/current: accepted, not shown
            assert "--url" not in shown and "--db-url" in shown, name


def test_db_upgrade_takes_db_url_and_still_the_old_url(tmp_path: Path) -> None:
    for option, name in (("--db-url", "new.db"), ("--url", "old.db")):
        url = f"sqlite+aiosqlite:///{tmp_path / name}"
        proc = run_cli("db", "upgrade", option, url, "-c", str(tmp_path / "none.yaml"))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("applied: 0001")
        proc = run_cli("db", "current", option, url, "-c", str(tmp_path / "none.yaml"))
        assert proc.returncode == 0 and proc.stdout.strip()
    assert "--url" not in run_cli("db", "upgrade", "--help").stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_simulate_stops_on_a_signal_even_with_sigint_ignored_by_its_parent(sig: int) -> None:
    # what a shell script's `charged simulate &` does to it: SIGINT arrives set to SIG_IGN
    proc = subprocess.Popen(
        [sys.executable, "-m", "charged.cli", "simulate", "--port", "0", "--chargers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the handlers are in place once it serves
        assert first.startswith("charged simulate: 1 Aura chargers at http://127.0.0.1:")
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
