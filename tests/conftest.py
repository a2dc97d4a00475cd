"""Shared fixtures: clocks and real databases (SQLite always, MariaDB/MySQL when reachable).

MySQL tests use the server named by ``CHARGED_TEST_MYSQL_URL`` (default
``mysql+asyncmy://root@127.0.0.1:3306/test``).  Each test gets a database of its own, created
and dropped around it.  Outside CI a missing server skips those tests with the reason; under
``CI=true`` a missing server fails them, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from charged.clock import FakeClock

MYSQL_URL = os.environ.get("CHARGED_TEST_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


async def _mysql_admin(sql: str) -> None:
    import asyncmy  # local import: only MySQL tests need it

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
    problem = await _mysql_available()
    if problem is not None:
        message = f"MariaDB/MySQL not reachable at {MYSQL_URL} ({problem})"
        if IN_CI:
            pytest.fail(f"{message}; under CI=true MySQL tests must run")
        pytest.skip(f"{message}; start it or set CHARGED_TEST_MYSQL_URL")
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
