"""One collector per database: a lock that dies with the process holding it.

Two ``charged run`` beside each other on one database double the vendor's load, take two of
the account's ten tokens, and the rows of their ticks that land in the same second are
skipped as duplicates.  So the collector takes a lock before it touches the database and
holds it for its life; a second one is refused with one line.  Nothing has to be cleaned up
after a crash: the lock goes with its holder.

- MySQL/MariaDB: ``GET_LOCK`` on a connection of its own, held open (the server releases a
  named lock when the session ends, however it ends).  The connection is pinged now and then
  so the server's ``wait_timeout`` does not end it; if it is lost anyway (a server restart),
  the lock is taken again, and if another collector took it meanwhile this one is told to stop.
- SQLite: an exclusive ``flock`` on ``<database file>.lock`` (the kernel drops it when the
  process ends).  The file stays; only the lock on it matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from charged.clock import Clock, SystemClock
from charged.storage.engine import StorageError, describe, unavailable

# seconds between two checks of the MySQL lock's connection: far below any wait_timeout
MYSQL_CHECK_INTERVAL = 60.0
# MySQL caps a lock name at 64 characters; the name carries the database's (it is server-wide)
LOCK_NAME_PREFIX = "charged.collector."
MAX_LOCK_NAME = 64


class CollectorAlreadyRunning(StorageError):
    """Another collector holds this database's lock."""


class CollectorLock:
    """Held from :meth:`acquire` to :meth:`release` (both safe to call again)."""

    async def acquire(self) -> None:
        raise NotImplementedError

    async def release(self) -> None:
        raise NotImplementedError


class _NoLock(CollectorLock):
    """An in-memory SQLite database: no other process can open it."""

    async def acquire(self) -> None:
        return None

    async def release(self) -> None:
        return None


def collector_lock(
    engine: AsyncEngine,
    *,
    clock: Clock | None = None,
    on_lost: Callable[[CollectorAlreadyRunning], None] | None = None,
    logger: Any = None,
) -> CollectorLock:
    """The lock for ``engine``'s database.  ``on_lost`` hears of a MySQL lock another
    collector took after this one's connection to it was lost."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return _NoLock()
        return FileCollectorLock(Path(database).expanduser(), describe(url))
    return MysqlCollectorLock(engine, clock=clock, on_lost=on_lost, logger=logger)


def _refusal(where: str, holder: str) -> CollectorAlreadyRunning:
    return CollectorAlreadyRunning(
        f"another collector is running on this database ({where}; {holder}); "
        "stop it first, or give this one a database of its own"
    )


class FileCollectorLock(CollectorLock):
    def __init__(self, database: Path, where: str) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._where = where
        self._fd: int | None = None

    async def acquire(self) -> None:
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(
                f"cannot open the collector lock file {self.path}: {exc.strerror}; "
                "the directory of the SQLite file must be writable"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise _refusal(self._where, f"{self.path} is locked{holder}") from None
        except BaseException:
            os.close(fd)
            raise
        # the holder's pid, for the refusal of the next one (the lock is what counts)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode().strip())
        return f" by process {pid}"
    return ""


def mysql_lock_name(database: str) -> str:
    """The lock's name: server-wide, so it names the database (hashed when too long)."""
    name = LOCK_NAME_PREFIX + database
    if len(name) <= MAX_LOCK_NAME:
        return name
    return LOCK_NAME_PREFIX + hashlib.sha256(database.encode()).hexdigest()[:40]


class MysqlCollectorLock(CollectorLock):
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock | None = None,
        on_lost: Callable[[CollectorAlreadyRunning], None] | None = None,
        logger: Any = None,
        check_interval: float = MYSQL_CHECK_INTERVAL,
    ) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()
        self._on_lost = on_lost
        self._log = logger or structlog.get_logger("charged.storage")
        self._check_interval = check_interval
        self.name = mysql_lock_name(engine.url.database or "")
        self._conn: AsyncConnection | None = None
        self._keeper: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    async def acquire(self) -> None:
        if self._conn is not None:
            return
        await self._take()
        self._keeper = asyncio.create_task(self._keep(), name="charged-collector-lock")

    async def _take(self) -> None:
        """GET_LOCK on a new connection (without waiting); raise if another session has it."""
        try:
            conn = await self._engine.connect()
        except Exception as exc:
            raise unavailable(self._engine.url, exc) from None
        try:
            got = await self._scalar(conn, "SELECT GET_LOCK(:name, 0)")
            if got != 1:
                holder = await self._holder(conn)
                raise _refusal(describe(self._engine.url), holder)
        except CollectorAlreadyRunning:
            await _close(conn)
            raise
        except Exception as exc:
            await _close(conn)
            raise unavailable(self._engine.url, exc) from None
        self._conn = conn

    async def _scalar(self, conn: AsyncConnection, sql: str) -> Any:
        value = (await conn.execute(text(sql), {"name": self.name})).scalar()
        # end the transaction SQLAlchemy began: a named lock is not transactional and stays
        await conn.commit()
        return value

    async def _holder(self, conn: AsyncConnection) -> str:
        """Who holds the lock, as far as the server says (best effort)."""
        try:
            holder = await self._scalar(conn, "SELECT IS_USED_LOCK(:name)")
            if holder is None:
                return f"lock {self.name} taken and given up meanwhile; try again"
            host = (
                await conn.execute(
                    text("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = :id"),
                    {"id": holder},
                )
            ).scalar()
            await conn.commit()
        except Exception:
            return f"it holds the lock {self.name}"
        where = f" from {host}" if host else ""
        return f"it holds the lock {self.name}, connection {holder}{where}"

    async def _keep(self) -> None:
        """Keep the lock's connection alive; take the lock again if the connection is lost."""
        while True:
            await self._clock.sleep(self._check_interval)
            conn = self._conn
            if conn is not None:
                try:
                    mine = await self._scalar(conn, "SELECT IS_USED_LOCK(:name) = CONNECTION_ID()")
                except Exception as exc:
                    self._log.warning(
                        "lost the database connection holding the collector lock; taking it again",
                        error=type(exc).__name__,
                    )
                    mine = 0
                if mine == 1:
                    continue
                self._conn = None
                await _close(conn)
            try:
                await self._take()
            except CollectorAlreadyRunning as exc:
                self._log.error(str(exc))
                if self._on_lost is not None:
                    self._on_lost(exc)
                return
            except StorageError:
                continue  # the server is away: so is any other collector's way to write
            self._log.info("collector lock taken again", lock=self.name)

    async def release(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            await asyncio.wait({keeper})
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await self._scalar(conn, "SELECT RELEASE_LOCK(:name)")
            await _close(conn)


async def _close(conn: AsyncConnection) -> None:
    with contextlib.suppress(Exception):
        await conn.close()
