"""`charged check` against the simulator and real databases (SQLite, MariaDB).

In-process runs use a FakeClock that only moves when a test advances it, so the per-check
time limits never fire by accident and a hung server is "waited for" without sleeping.
The CLI runs check what an operator sees: the lines, the exit code, and no password.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from charged.check import (
    CheckResult,
    Status,
    check_api_login,
    check_config,
    check_database_ready,
    check_paths,
    exit_code,
    run_checks,
)
from charged.clock import FakeClock
from charged.exits import EXIT_CONFIG, EXIT_ERROR, EXIT_NOPERM, EXIT_UNAVAILABLE
from charged.simulator import Simulator, SimulatorConfig
from charged.storage.migrate import head_revision, upgrade
from tests.integration.mysql_users import execute, temporary_user

DB_PASSWORD = "db-Secret-4711"
WRONG_PASSWORD = "not-the-password-8c1f"


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    """The fleet the shared ``simulator`` fixture serves here."""
    return SimulatorConfig(chargers=2, seed=3)


def write_config(
    tmp_path: Path,
    *,
    base_url: str,
    sim: Simulator | None = None,
    password: str | None = None,
    db_url: str | None = None,
    spool: Path | None = None,
    token_cache: Path | None = None,
    mode: int = 0o600,
) -> Path:
    email = sim.account.email if sim else "owner@example.com"
    key = sim.account.api_key if sim else "key"
    pw = password if password is not None else (sim.account.password if sim else "pw")
    url = db_url or f"sqlite+aiosqlite:///{tmp_path / 'charged.db'}"
    path = tmp_path / "config.yaml"
    path.write_text(
        f"api:\n  base_url: {base_url}\n  email: {email}\n  password: {pw}\n  api_key: {key}\n"
        f"  token_cache: {token_cache or tmp_path / 'state' / 'token.json'}\n"
        f"database:\n  url: {url}\n"
        f"spool:\n  directory: {spool or tmp_path / 'state' / 'spool'}\n"
    )
    path.chmod(mode)
    return path


def by_check(results: list[CheckResult]) -> dict[str, list[CheckResult]]:
    found: dict[str, list[CheckResult]] = {}
    for result in results:
        found.setdefault(result.check, []).append(result)
    return found


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGED_")}
    return subprocess.run(
        [sys.executable, "-m", "charged.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def report_line(proc: subprocess.CompletedProcess[str], status: str, check: str) -> str:
    lines = [
        line
        for line in proc.stdout.splitlines()
        if line.split()[:1] == [status] and line.split()[1:2] == [check]
    ]
    assert len(lines) == 1, proc.stdout + proc.stderr
    return lines[0]


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A TCP port on 127.0.0.1 that accepts connections and never says a word."""
    connected = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        connected.set()
        await reader.read()  # until the client hangs up

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connected
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def mysql_user(mysql_url: str) -> AsyncIterator[str]:
    """``mysql_url`` reached through a user of its own that has a password."""
    async with temporary_user(mysql_url, DB_PASSWORD, "ALL PRIVILEGES") as url:
        yield url


# ---------------------------------------------------------------- all green


async def test_all_green_on_simulator_and_database(
    tmp_path: Path, simulator: Simulator, db_url: str
) -> None:
    await upgrade(db_url)
    path = write_config(tmp_path, base_url=simulator.base_url, sim=simulator, db_url=db_url)
    results = await run_checks(path, environ={}, clock=FakeClock(auto_advance=False), time_limit=5)
    assert [(r.check, r.status) for r in results] == [
        ("config", Status.OK),
        ("database", Status.OK),
        ("api", Status.OK),
        ("spool", Status.OK),
        ("token cache", Status.OK),
    ]
    assert exit_code(results) == 0
    checks = by_check(results)
    assert checks["config"][0].message == f"{path} (log level info, 30 s interval)"
    assert f"schema at revision {head_revision()} (up to date)" in checks["database"][0].message
    assert "login accepted" in checks["api"][0].message
    assert simulator.login_attempts == 1
    # nothing was created: the check leaves the service's directories to the service
    assert not (tmp_path / "state").exists()


async def test_mysql_password_is_masked(
    tmp_path: Path, simulator: Simulator, mysql_user: str
) -> None:
    await upgrade(mysql_user)
    path = write_config(tmp_path, base_url=simulator.base_url, sim=simulator, db_url=mysql_user)
    results = await run_checks(path, environ={}, clock=FakeClock(auto_advance=False), time_limit=5)
    database = by_check(results)["database"][0]
    assert database.status is Status.OK, database
    url = make_url(mysql_user)
    shown = f"mysql+asyncmy://{url.username}:***@{url.host}:{url.port}/{url.database}"
    assert database.message.startswith(f"{shown} — reachable")
    assert all(DB_PASSWORD not in r.message for r in results)


async def test_cli_all_green_text_and_json(tmp_path: Path, simulator: Simulator) -> None:
    await upgrade(f"sqlite+aiosqlite:///{tmp_path / 'charged.db'}")
    path = write_config(tmp_path, base_url=simulator.base_url, sim=simulator)
    proc = await asyncio.to_thread(run_cli, "check", "-c", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report_line(proc, "ok", "config").endswith(f"{path} (log level info, 30 s interval)")
    assert f"revision {head_revision()} (up to date)" in report_line(proc, "ok", "database")
    assert report_line(proc, "ok", "api").startswith(f"ok   api          {simulator.base_url}")
    assert proc.stdout.splitlines()[-1] == "ready: every check passed"
    assert proc.stderr == ""

    proc = await asyncio.to_thread(run_cli, "check", "-c", str(path), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = json.loads(proc.stdout)
    assert document["ok"] is True and document["exit_code"] == 0
    assert [(c["check"], c["status"]) for c in document["checks"]] == [
        ("config", "ok"),
        ("database", "ok"),
        ("api", "ok"),
        ("spool", "ok"),
        ("token cache", "ok"),
    ]
    assert simulator.login_attempts == 2  # one fresh login per run, cached token or not


async def test_cli_json_on_failure(tmp_path: Path, simulator: Simulator) -> None:
    path = write_config(
        tmp_path, base_url=simulator.base_url, sim=simulator, password=WRONG_PASSWORD
    )
    proc = await asyncio.to_thread(run_cli, "check", "-c", str(path), "--json")
    assert proc.returncode == EXIT_NOPERM
    document = json.loads(proc.stdout)
    assert document["ok"] is False and document["exit_code"] == EXIT_NOPERM
    [api] = [c for c in document["checks"] if c["check"] == "api"]
    assert api["status"] == "fail" and api["exit_code"] == EXIT_NOPERM
    assert WRONG_PASSWORD not in proc.stdout


# ---------------------------------------------------------------- failures


async def test_wrong_password_exit_77_one_login(tmp_path: Path, simulator: Simulator) -> None:
    await upgrade(f"sqlite+aiosqlite:///{tmp_path / 'charged.db'}")
    path = write_config(
        tmp_path, base_url=simulator.base_url, sim=simulator, password=WRONG_PASSWORD
    )
    proc = await asyncio.to_thread(run_cli, "check", "-c", str(path))
    assert proc.returncode == EXIT_NOPERM, proc.stdout + proc.stderr
    line = report_line(proc, "FAIL", "api")
    assert "login refused: wrong email, password or apiKey" in line
    assert "api.password" in line  # says what to fix
    report_line(proc, "ok", "database")  # the other checks still ran
    assert WRONG_PASSWORD not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert simulator.login_attempts == 1


async def test_database_port_closed_exit_69(tmp_path: Path, simulator: Simulator) -> None:
    port = closed_port()
    db_url = f"mysql+asyncmy://charged:{DB_PASSWORD}@127.0.0.1:{port}/charged"
    path = write_config(tmp_path, base_url=simulator.base_url, sim=simulator, db_url=db_url)
    proc = await asyncio.to_thread(run_cli, "check", "-c", str(path))
    assert proc.returncode == EXIT_UNAVAILABLE, proc.stdout + proc.stderr
    line = report_line(proc, "FAIL", "database")
    assert f"127.0.0.1:{port}" in line and "check that the server is running" in line
    report_line(proc, "ok", "api")
    assert DB_PASSWORD not in proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("not ready: 1 check failed")


async def test_database_password_refused_exit_77(
    tmp_path: Path, simulator: Simulator, mysql_user: str
) -> None:
    await upgrade(mysql_user)
    db_url = make_url(mysql_user).set(password=WRONG_PASSWORD).render_as_string(False)
    path = write_config(tmp_path, base_url=simulator.base_url, sim=simulator, db_url=db_url)
    proc = await asyncio.to_thread(run_cli, "check", "-c", str(path))
    # not 69: retrying cannot help, and the systemd unit does not restart on 77
    assert proc.returncode == EXIT_NOPERM, proc.stdout + proc.stderr
    line = report_line(proc, "FAIL", "database")
    assert "Access denied for user" in line
    assert "check the user and password in database.url" in line
    report_line(proc, "ok", "api")
    assert WRONG_PASSWORD not in proc.stdout + proc.stderr and DB_PASSWORD not in proc.stdout


async def test_malformed_database_url_exit_78(tmp_path: Path, simulator: Simulator) -> None:
    # the config check itself rejects it (it passed the loader's driver-prefix check): one
    # FAIL line, password masked, and the database and API are not tried with a bad config
    db_url = f"mysql+asyncmy://charged:{DB_PASSWORD}@127.0.0.1:33o6/charged"
    path = write_config(tmp_path, base_url=simulator.base_url, sim=simulator, db_url=db_url)
    proc = await asyncio.to_thread(run_cli, "check", "-c", str(path))
    assert proc.returncode == EXIT_CONFIG, proc.stdout + proc.stderr
    line = report_line(proc, "FAIL", "config")
    assert line.endswith(
        f"{path}: database.url: mysql+asyncmy://charged:***@127.0.0.1:33o6/charged is not a "
        "valid URL (is the port a number?); use mysql+asyncmy://USER:PASSWORD@HOST:3306/DB or "
        "sqlite+aiosqlite:///PATH"
    )
    assert "not checked" in report_line(proc, "skip", "database")
    assert "ok" not in proc.stdout.split()  # no line says ok about this config
    assert DB_PASSWORD not in proc.stdout + proc.stderr
    assert simulator.login_attempts == 0


def test_malformed_database_url_from_the_environment_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, base_url="https://eapi.charge.space")
    env = {"CHARGED_DATABASE_URL": f"mysql+asyncmy://charged:{DB_PASSWORD}@db:port/charged"}
    results, settings = check_config(path, environ=env)
    assert settings is None
    [config] = results
    assert (config.status, config.exit_code) == (Status.FAIL, EXIT_CONFIG)
    assert config.message.startswith(
        "CHARGED_DATABASE_URL: mysql+asyncmy://charged:***@db:port/charged is not a valid URL"
    )
    # a password mask_urls cannot delimit (an unescaped /) is not shown at all
    env = {"CHARGED_DATABASE_URL": "mysql+asyncmy://charged:pa/ss@db:port/charged"}
    [config], _ = check_config(path, environ=env)
    assert "pa/ss" not in config.message and "(not shown: it may hold a password)" in (
        config.message
    )


async def test_api_unreachable_exit_69(tmp_path: Path) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}"
    await upgrade(f"sqlite+aiosqlite:///{tmp_path / 'charged.db'}")
    path = write_config(tmp_path, base_url=base_url)
    results = await run_checks(path, environ={}, clock=FakeClock(auto_advance=False), time_limit=5)
    api = by_check(results)["api"][0]
    assert api.status is Status.FAIL and api.exit_code == EXIT_UNAVAILABLE
    assert api.message.startswith(f"cannot reach {base_url} (v5): POST /auth/login")
    assert "check api.base_url and the network" in api.message
    assert exit_code(results) == EXIT_UNAVAILABLE


async def test_first_failure_decides_the_exit_code(tmp_path: Path, simulator: Simulator) -> None:
    # database (69) is reported before api (77): the exit code is the database's
    db_url = f"mysql+asyncmy://charged@127.0.0.1:{closed_port()}/charged"
    path = write_config(
        tmp_path, base_url=simulator.base_url, sim=simulator, password=WRONG_PASSWORD, db_url=db_url
    )
    results = await run_checks(path, environ={}, clock=FakeClock(auto_advance=False), time_limit=5)
    failed = [(r.check, r.exit_code) for r in results if r.status is Status.FAIL]
    assert failed == [("database", EXIT_UNAVAILABLE), ("api", EXIT_NOPERM)]
    assert exit_code(results) == EXIT_UNAVAILABLE


# ---------------------------------------------------------------- the config itself


def test_missing_config_exit_78_and_rest_skipped(tmp_path: Path) -> None:
    proc = run_cli("check", "-c", str(tmp_path / "absent.yaml"))
    assert proc.returncode == EXIT_CONFIG
    assert "config file not found" in report_line(proc, "FAIL", "config")
    assert "not checked" in report_line(proc, "skip", "database")
    assert "not checked" in report_line(proc, "skip", "api")


async def test_config_that_is_a_directory_exit_78(tmp_path: Path) -> None:
    results = await run_checks(tmp_path, environ={}, time_limit=5)
    assert [(r.check, r.status) for r in results] == [
        ("config", Status.FAIL),
        ("database", Status.SKIP),
        ("api", Status.SKIP),
    ]
    assert "cannot read the config file: Is a directory" in results[0].message
    assert exit_code(results) == EXIT_CONFIG


def test_unreadable_config_exit_78(tmp_path: Path) -> None:
    path = write_config(tmp_path, base_url="https://eapi.charge.space", mode=0o000)
    command = [sys.executable, "-m", "charged.cli", "check", "-c", str(path)]
    if os.geteuid() == 0:
        # root reads a mode-000 file anyway: run without the capabilities that let it
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            if os.environ.get("CI"):
                pytest.fail("setpriv (util-linux) is needed to test an unreadable config as root")
            pytest.skip("running as root without setpriv: a mode-000 file is readable")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGED_")}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == EXIT_CONFIG, proc.stdout + proc.stderr
    line = report_line(proc, "FAIL", "config")
    assert "cannot read the config file: Permission denied" in line
    assert "Traceback" not in proc.stderr


def test_bad_url_in_config_is_masked(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        base_url="https://eapi.charge.space",
        db_url=f"postgresql://charged:{DB_PASSWORD}@db/charged",
    )
    results, settings = check_config(path, environ={})
    assert settings is None and results[0].exit_code == EXIT_CONFIG
    assert "database.url: must start with mysql+asyncmy://" in results[0].message
    assert "postgresql://charged:***@db/charged" in results[0].message
    assert DB_PASSWORD not in results[0].message


def test_config_warnings(tmp_path: Path) -> None:
    # readable by others and the api password written in it: say which key and what to do
    path = write_config(tmp_path, base_url="http://charger-cloud.example", mode=0o644)
    results, settings = check_config(path, environ={})
    assert settings is not None
    assert [r.status for r in results] == [Status.OK, Status.WARN, Status.WARN]
    assert f"readable by other users and holds api.password, api.api_key: run chmod 600 {path}" in (
        results[1].message
    )
    assert "api.password → api.password_file or CHARGED_API_PASSWORD" in results[1].message
    assert "plain http" in results[2].message and "use https://" in results[2].message


def test_readable_config_without_secrets_is_not_warned(tmp_path: Path) -> None:
    # as in docker compose: the file is 0644 (the container's uid reads it through a
    # read-only mount) and every secret comes from the environment
    path = tmp_path / "config.yaml"
    path.write_text(f"spool:\n  directory: {tmp_path / 'spool'}\n")
    path.chmod(0o644)
    env = {
        "CHARGED_API_EMAIL": "owner@example.com",
        "CHARGED_API_PASSWORD": "pw-from-env",
        "CHARGED_API_API_KEY": "key-from-env",
        "CHARGED_DATABASE_URL": f"mysql+asyncmy://charged:{DB_PASSWORD}@127.0.0.1/charged",
    }
    results, settings = check_config(path, environ=env)
    assert settings is not None
    assert [r.status for r in results] == [Status.OK]


# ---------------------------------------------------------------- schema state


async def test_schema_behind_warns_to_upgrade(
    tmp_path: Path, simulator: Simulator, db_url: str
) -> None:
    await upgrade(db_url, "0002")
    path = write_config(tmp_path, base_url=simulator.base_url, sim=simulator, db_url=db_url)
    results = await run_checks(path, environ={}, clock=FakeClock(auto_advance=False), time_limit=5)
    database = by_check(results)["database"][0]
    assert database.status is Status.WARN
    assert f"schema at revision 0002, not up to date (newest {head_revision()})" in (
        database.message
    )
    assert database.message.endswith(
        f"run charged db upgrade -c {path} (or let charged run do it at start: "
        "database.migrate_on_start is on)"
    )
    assert exit_code(results) == 0


async def test_empty_database_warns_to_upgrade(
    tmp_path: Path, simulator: Simulator, mysql_url: str
) -> None:
    path = write_config(tmp_path, base_url=simulator.base_url, sim=simulator, db_url=mysql_url)
    results = await run_checks(path, environ={}, clock=FakeClock(auto_advance=False), time_limit=5)
    database = by_check(results)["database"][0]
    assert database.status is Status.WARN
    assert "reachable" in database.message and "it has no schema: run charged db upgrade" in (
        database.message
    )


async def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    db_file = tmp_path / "data" / "charged.db"
    path = write_config(
        tmp_path, base_url="https://eapi.charge.space", db_url=f"sqlite+aiosqlite:///{db_file}"
    )
    _, settings = check_config(path, environ={})
    assert settings is not None
    [database] = await check_database_ready(
        settings, clock=FakeClock(auto_advance=False), time_limit=5
    )
    assert database.status is Status.WARN
    assert "the SQLite file does not exist yet" in database.message
    assert not db_file.exists() and not db_file.parent.exists()


async def test_unknown_schema_revision_fails(tmp_path: Path, db_url: str) -> None:
    await upgrade(db_url)
    await execute(db_url, "UPDATE alembic_version SET version_num = '9999'")
    path = write_config(tmp_path, base_url="https://eapi.charge.space", db_url=db_url)
    _, settings = check_config(path, environ={})
    assert settings is not None
    [database] = await check_database_ready(
        settings, clock=FakeClock(auto_advance=False), time_limit=5
    )
    assert database.status is Status.FAIL and database.exit_code == EXIT_ERROR
    assert "schema revision 9999 is unknown to this version of charged" in database.message


# ---------------------------------------------------------------- time limits


async def test_silent_database_server_times_out(tmp_path: Path) -> None:
    clock = FakeClock(auto_advance=False)
    async with silent_server() as (port, connected):
        db_url = f"mysql+asyncmy://charged:{DB_PASSWORD}@127.0.0.1:{port}/charged"
        path = write_config(tmp_path, base_url="https://eapi.charge.space", db_url=db_url)
        _, settings = check_config(path, environ={})
        assert settings is not None
        check = asyncio.create_task(check_database_ready(settings, clock=clock, time_limit=7))
        await asyncio.wait_for(connected.wait(), 10)
        await clock.advance(7)
        [database] = await asyncio.wait_for(check, 10)
    assert database.status is Status.FAIL and database.exit_code == EXIT_UNAVAILABLE
    assert database.message == (
        f"mysql+asyncmy://charged:***@127.0.0.1:{port}/charged — no answer within 7 s; "
        "check that the server is running and the host and port in database.url"
    )


async def test_silent_api_times_out(tmp_path: Path) -> None:
    clock = FakeClock(auto_advance=False)
    async with silent_server() as (port, connected):
        path = write_config(tmp_path, base_url=f"http://127.0.0.1:{port}")
        _, settings = check_config(path, environ={})
        assert settings is not None
        check = asyncio.create_task(check_api_login(settings, clock=clock, time_limit=7))
        await asyncio.wait_for(connected.wait(), 10)
        await clock.advance(7)
        [api] = await asyncio.wait_for(check, 10)
    assert api.status is Status.FAIL and api.exit_code == EXIT_UNAVAILABLE
    assert api.message.startswith(f"http://127.0.0.1:{port} (v5) — no answer within 7 s")


# ---------------------------------------------------------------- paths


async def test_unwritable_spool_and_token_cache_warn(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    path = write_config(
        tmp_path,
        base_url="https://eapi.charge.space",
        spool=blocker / "spool",
        token_cache=blocker / "cache" / "token.json",
    )
    _, settings = check_config(path, environ={})
    assert settings is not None
    spool, cache = check_paths(settings)
    assert (spool.check, spool.status) == ("spool", Status.WARN)
    assert spool.message.startswith(f"{blocker / 'spool'}: {blocker} is not a directory;")
    assert spool.message.endswith("or set spool.directory")
    assert (cache.check, cache.status) == ("token cache", Status.WARN)
    assert cache.message.endswith("or set api.token_cache")


def test_writable_and_creatable_directories(tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    path = write_config(
        tmp_path,
        base_url="https://eapi.charge.space",
        spool=tmp_path / "spool",
        token_cache=tmp_path / "new" / "token.json",
    )
    _, settings = check_config(path, environ={})
    assert settings is not None
    spool, cache = check_paths(settings)
    assert (spool.status, spool.message) == (Status.OK, f"{tmp_path / 'spool'} (writable)")
    assert (cache.status, cache.message) == (
        Status.OK,
        f"{tmp_path / 'new' / 'token.json'} (does not exist yet; directory can be created)",
    )


def test_token_cache_line_says_whether_the_file_exists(tmp_path: Path) -> None:
    cache_file = tmp_path / "state" / "token.json"
    cache_file.parent.mkdir()
    path = write_config(tmp_path, base_url="https://eapi.charge.space", token_cache=cache_file)
    _, settings = check_config(path, environ={})
    assert settings is not None
    _, cache = check_paths(settings)
    assert (cache.status, cache.message) == (
        Status.OK,
        f"{cache_file} (does not exist yet; directory writable)",
    )
    cache_file.write_text("{}")
    _, cache = check_paths(settings)
    assert (cache.status, cache.message) == (
        Status.OK,
        f"{cache_file} (exists; directory writable)",
    )
    cache_file.unlink()
    cache_file.mkdir()
    _, cache = check_paths(settings)
    assert cache.status is Status.WARN
    assert cache.message.startswith(f"{cache_file}: {cache_file} is a directory, not a file;")


@pytest.mark.parametrize("organisation", ["demo-organisation", "not-ours"])
async def test_a_configured_organisation_is_checked_and_a_wrong_one_is_a_warning(
    tmp_path: Path, simulator: Simulator, organisation: str
) -> None:
    path = write_config(tmp_path, base_url=simulator.base_url, sim=simulator)
    text = path.read_text().replace(
        "  token_cache:", f"  organisation_id: {organisation}\n  token_cache:"
    )
    path.write_text(text)
    results = await run_checks(path, environ={}, clock=FakeClock(auto_advance=False), time_limit=5)
    (org,) = by_check(results)["organisation"]
    if organisation == "demo-organisation":
        assert org.status is Status.OK
        assert org.message.startswith("demo-organisation: 2 chargers' statuses in one call")
    else:  # the collector falls back to one request per charger: not fatal
        assert org.status is Status.WARN
        assert "HTTP 404" in org.message and "check api.organisation_id" in org.message
    assert exit_code(results) == 0
