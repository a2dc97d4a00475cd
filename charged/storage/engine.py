"""Engines for MySQL/MariaDB (asyncmy) and SQLite (aiosqlite), and the reachability check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# SQLite: wait this long for a lock held by another connection before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# MySQL: recycle connections before the server's wait_timeout (8 h by default) closes them.
MYSQL_POOL_RECYCLE_S = 1800
MYSQL_CONNECT_TIMEOUT_S = 10


class StorageError(Exception):
    """A storage problem a person has to act on; the message is one line saying what to do."""


class DatabaseUrlError(StorageError):
    """database.url cannot be used as written: a configuration error."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached or refuses the connection."""


class DatabaseAccessDenied(DatabaseUnavailable):
    """The server answers but refuses the user, the password or the database."""


class MigrationError(StorageError):
    """The schema cannot be upgraded (nothing was changed)."""


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise DatabaseUrlError(
            "the database URL is not valid; use mysql+asyncmy://USER:PASSWORD@HOST:3306/DB "
            "or sqlite+aiosqlite:///PATH"
        ) from None


def describe(url: URL) -> str:
    """Where the database is, for messages: never includes the password."""
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database or ':memory:'}"
    host = url.host or "localhost"
    port = url.port or 3306
    return f"{url.get_backend_name()} at {host}:{port}, database {url.database or '(none)'}"


def create_engine(url: str) -> AsyncEngine:
    """An engine for ``url``: SQLite in WAL mode with a busy timeout, MySQL with pre-ping."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend in ("mysql", "mariadb"):
        connect_args: dict[str, Any] = {
            "connect_timeout": MYSQL_CONNECT_TIMEOUT_S,
            # SQLAlchemy asks for CLIENT_FOUND_ROWS, under which a duplicate that
            # ``ON DUPLICATE KEY UPDATE k = k`` leaves alone counts as affected like a new
            # row; without it the count is the rows inserted, so the writer can count the
            # duplicates the database skipped.  Nothing here reads an UPDATE's rowcount.
            "client_flag": 0,
        }
        return create_async_engine(
            parsed,
            pool_pre_ping=True,
            pool_recycle=MYSQL_POOL_RECYCLE_S,
            connect_args=connect_args,
        )
    raise DatabaseUrlError(
        f"unsupported database {backend!r}; use mysql+asyncmy://… or sqlite+aiosqlite:///…"
    )


def _sqlite_engine(url: URL) -> AsyncEngine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        directory = Path(database).expanduser().parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailable(
                f"cannot create the directory {directory} for the SQLite database: "
                f"{exc.strerror}; choose a writable path in database.url"
            ) from None
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers (exports, Grafana) run while the writer commits.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


# MySQL/MariaDB error codes of a login the server refuses: wrong user or password (1045), no
# right to the database (1044), a user that must use another way in (1698).
ACCESS_DENIED_CODES = frozenset({1044, 1045, 1698})


def unavailable(url: URL, exc: BaseException) -> DatabaseUnavailable:
    """One line naming where we tried and why it failed, without the password."""
    reason = _reason(exc, url.password)
    where = f"cannot use the database ({describe(url)}): {reason}"
    if url.get_backend_name() == "sqlite":
        return DatabaseUnavailable(f"{where}; check that the directory exists and is writable")
    if _mysql_code(exc) in ACCESS_DENIED_CODES:
        # Retrying cannot help: a person has to fix the credentials or the grants.
        return DatabaseAccessDenied(
            f"{where}; check the user and password in database.url (or CHARGED_DATABASE_URL) "
            "and that the user has rights on the database"
        )
    return DatabaseUnavailable(
        f"{where}; check that the server is running and database.url (host, port, user) is right"
    )


def _mysql_code(exc: BaseException) -> int | None:
    inner: BaseException = getattr(exc, "orig", None) or exc
    code = inner.args[0] if inner.args else None
    return code if isinstance(code, int) else None


def _reason(exc: BaseException, password: str | None) -> str:
    # DBAPI errors arrive wrapped; the innermost one says what actually happened.
    inner: BaseException = getattr(exc, "orig", None) or exc
    while inner.__cause__ is not None and not str(inner):
        inner = inner.__cause__
    lines = str(inner).strip().splitlines()
    message = lines[0] if lines else ""
    if password:
        message = message.replace(str(password), "***")
    return f"{type(inner).__name__}: {message}" if message else type(inner).__name__


async def check_database(engine: AsyncEngine) -> None:
    """Raise :class:`DatabaseUnavailable` unless a connection and a query succeed."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (Exception, OSError) as exc:
        raise unavailable(engine.url, exc) from None
