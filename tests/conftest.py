"""Shared fixtures: clocks and real databases (SQLite always, MariaDB/MySQL when asked for).

MySQL tests are opt-in: they create and drop databases and ``'%'`` users on the server, so
they run only against one named for it, by ``CHARGED_TEST_MYSQL_URL`` (e.g.
``mysql+asyncmy://root@127.0.0.1:3306/test``), or under ``CI=true`` (``.ci/run`` sets the
URL; unset, the local server above).  Each test gets a database of its own, created and
dropped around it.  Otherwise they are skipped with the reason; under ``CI=true`` a server
that does not answer fails them, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from charged.clock import FakeClock

CI_MYSQL_URL = "mysql+asyncmy://root@127.0.0.1:3306/test"


def in_ci(env: Mapping[str, str]) -> bool:
    return env.get("CI", "").lower() in ("1", "true", "yes")


def mysql_test_url(env: Mapping[str, str]) -> str | None:
    """The server the MySQL tests may use, or None: they are skipped."""
    named = env.get("CHARGED_TEST_MYSQL_URL", "").strip()
    if named:
        return named
    return CI_MYSQL_URL if in_ci(env) else None


MYSQL_URL = mysql_test_url(os.environ)
IN_CI = in_ci(os.environ)
NOT_ASKED = (
    "MySQL tests are opt-in (they create and drop databases and users): set "
    f"CHARGED_TEST_MYSQL_URL, e.g. {CI_MYSQL_URL}, to a server they may use"
)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


async def _mysql_admin(sql: str) -> None:
    import asyncmy  # local import: only MySQL tests need it

    assert MYSQL_URL is not None
    url = make_url(MYSQL_URL)
    conn = await asyncmy.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        connect_timeout=3,
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql)
        await conn.commit()
    finally:
        conn.close()


async def _mysql_available() -> str | None:
    try:
        await _mysql_admin("SELECT 1")
    except Exception as exc:  # any failure means "not usable here"
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture
async def mysql_url() -> AsyncIterator[str]:
    """URL of a fresh, empty MySQL database for this test (dropped afterwards)."""
    if MYSQL_URL is None:
        pytest.skip(NOT_ASKED)
    problem = await _mysql_available()
    if problem is not None:
        message = f"MariaDB/MySQL not reachable at {MYSQL_URL} ({problem})"
        if IN_CI:
            pytest.fail(f"{message}; under CI=true MySQL tests must run")
        pytest.skip(f"{message}; start it or point CHARGED_TEST_MYSQL_URL at one that runs")
    name = f"charged_t_{uuid.uuid4().hex[:12]}"
    await _mysql_admin(f"CREATE DATABASE `{name}`")
    try:
        yield make_url(MYSQL_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await _mysql_admin(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'charged.db'}"


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on SQLite and on MariaDB/MySQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("mysql_url"))
