"""The analysis commands' database: the one named by ``--db``, ``--db-url`` or the config,
opened and checked to hold the tables a command reads, its sessions brought up to date from
the stored polls, and the offline spans when the database has them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.exits import EXIT_CONFIG, EXIT_USAGE, Fatal, translate_errors


def database_url(args: argparse.Namespace) -> str:
    if args.db_url:
        return str(args.db_url)
    if args.db is not None:
        path: Path = args.db
        if not path.is_file():
            raise Fatal(
                f"no SQLite file at {path}; give an existing file (the demo writes "
                "charged-demo.db) or --db-url",
                EXIT_USAGE,
            )
        return f"sqlite+aiosqlite:///{path.resolve()}"
    from charged.config import ConfigError, load_settings

    try:
        return load_settings(args.config, require_secrets=False).database.url
    except ConfigError as exc:
        raise Fatal(f"{exc} (or give --db FILE / --db-url URL)", EXIT_CONFIG) from None


@asynccontextmanager
async def opened(args: argparse.Namespace, *tables: str) -> AsyncIterator[AsyncEngine]:
    """The engine for the command's database, checked to hold ``tables``."""
    from charged.storage.engine import StorageError, check_database, create_engine

    try:
        engine = create_engine(database_url(args))
    except StorageError as exc:
        raise Fatal(str(exc), EXIT_USAGE) from None
    try:
        try:
            await check_database(engine)
        except StorageError as exc:
            fatal = translate_errors(exc)
            raise (fatal or exc) from None
        async with engine.connect() as conn:
            present = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        missing = [t for t in tables if t not in present]
        if missing:
            raise Fatal(
                f"the database has no {', '.join(missing)} table; run `charged db upgrade` "
                "on it first (same -c, or --db-url)"
            )
        yield engine
    finally:
        await engine.dispose()


async def update_sessions(engine: AsyncEngine, args: argparse.Namespace) -> None:
    if args.no_update:
        return
    from charged.sessions.tracker import SessionTracker

    try:
        await SessionTracker(engine, None).update()
    except Exception as exc:  # e.g. a read-only database user: show what is stored
        print(
            f"charged: sessions not brought up to date ({type(exc).__name__}); showing what is "
            "stored (use --no-update to skip this step)",
            file=sys.stderr,
        )


async def stored_offline_spans(
    conn: Any, charger: str | None, since: datetime | None = None, until: datetime | None = None
) -> list[Any]:
    """The charger's (None: every charger's) offline spans; none when the table is not there
    (a database older than revision 0009, read by a user who may not upgrade it)."""
    from sqlalchemy import inspect

    from charged.analysis.availability import offline_spans

    tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    if "charge_point_availability" not in tables:
        return []
    return await offline_spans(conn, charger=charger, since=since, until=until)
