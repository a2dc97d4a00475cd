"""Schema migrations: Alembic configured in code, run on the service's own async engine.

No alembic.ini is needed: the script location is the ``migrations`` directory inside this
package, so an installed wheel migrates the same way as a checkout.  A database made by the
original scripts (their tables, no ``alembic_version``) is stamped at revision 0001 first, so
it is upgraded in place by the same migrations as a new one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from charged.storage.engine import create_engine, unavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ORIGINAL_REVISION = "0001"
ORIGINAL_TABLES = frozenset({"charge_point_status", "connector_status", "measurement"})

_log = structlog.get_logger("charged.storage")


def alembic_config() -> Config:
    """Alembic's configuration for this package (no file on disk)."""
    config = Config()
    # ConfigParser interpolates '%'; a path containing one must not be read as a reference.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations directory has no revisions"
    return head


class _PrimaryKeyNameNote(logging.Filter):
    """Drops MariaDB's note that it ignores the name of a primary key.

    Alembic names its version table's key ``alembic_version_pkc``; MySQL and MariaDB never
    name a primary key (it is always ``PRIMARY``), MariaDB says so (note 1280) and asyncmy logs
    every server note as a warning: one line on stderr that looked like a problem on every
    new database.  Every other note still gets through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "ignored for PRIMARY key" not in record.getMessage()


@contextlib.contextmanager
def _quiet_primary_key_note() -> Iterator[None]:
    driver_log = logging.getLogger("asyncmy")
    note = _PrimaryKeyNameNote()
    driver_log.addFilter(note)
    try:
        yield
    finally:
        driver_log.removeFilter(note)


async def upgrade(url: str, revision: str = "head") -> list[str]:
    """Apply migrations up to ``revision``; return the revision ids applied, in order."""
    engine = create_engine(url)
    try:
        conn = await _connect(engine)
        try:
            with _quiet_primary_key_note():
                applied: list[str] = await conn.run_sync(_upgrade_sync, revision)
            await conn.commit()
        finally:
            await conn.close()
        return applied
    finally:
        await engine.dispose()


async def current(url: str) -> str | None:
    """The revision the database is at, or None when no migration was ever applied."""
    engine = create_engine(url)
    try:
        conn = await _connect(engine)
        try:
            rev: str | None = await conn.run_sync(_current_sync)
        finally:
            await conn.close()
        return rev
    finally:
        await engine.dispose()


async def _connect(engine: AsyncEngine) -> AsyncConnection:
    try:
        return await engine.connect().start()
    except (Exception, OSError) as exc:
        raise unavailable(engine.url, exc) from None


def _current_sync(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade_sync(connection: Connection, revision: str) -> list[str]:
    config = alembic_config()
    applied: list[str] = []

    def record(*, step: Any, **_: Any) -> None:
        if step.is_upgrade:
            applied.append(step.up_revision_id)

    config.attributes["connection"] = connection
    config.attributes["on_version_apply"] = [record]
    if _is_original_database(connection):
        _log.info("database made by the original scripts; adopting it at revision 0001")
        command.stamp(config, ORIGINAL_REVISION)
        applied.clear()  # adopting is not applying: 0001 never ran here
    command.upgrade(config, revision)
    return applied


def _is_original_database(connection: Connection) -> bool:
    """The original scripts' tables exist but no migration was ever recorded."""
    if _current_sync(connection) is not None:
        return False
    return set(inspect(connection).get_table_names()) >= ORIGINAL_TABLES
