"""The benchmark's own MariaDB database: created empty before a run, dropped after it.

Never the tests' ``test`` database: benchmarks and a running test suite share the server.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncmy
from sqlalchemy.engine import make_url

from charged.storage.migrate import upgrade

BENCH_DATABASE = "charged_bench"
DEFAULT_SERVER = "mysql+asyncmy://root@127.0.0.1:3306/"


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str
    password: str

    @classmethod
    def from_url(cls, url: str) -> Server:
        parsed = make_url(url)
        if parsed.get_backend_name() not in ("mysql", "mariadb"):
            raise ValueError(
                f"--mysql-url must be a mysql+asyncmy:// URL of a MariaDB/MySQL server, got {url!r}"
            )
        host = parsed.host or "127.0.0.1"
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"benchmarks only use a database on this machine, not {host!r}")
        return cls(host, parsed.port or 3306, parsed.username or "root", parsed.password or "")

    def url(self, database: str = BENCH_DATABASE) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"mysql+asyncmy://{auth}@{self.host}:{self.port}/{database}"

    async def connect(self, database: str | None = None) -> asyncmy.Connection:
        return await asyncmy.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            connect_timeout=5,
        )

    async def admin(self, sql: str) -> None:
        conn = await self.connect()
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql)
            await conn.commit()
        finally:
            conn.close()

    async def fresh_database(self) -> str:
        """Drop and create ``charged_bench`` with the current schema; returns its URL."""
        await self.drop_database()
        await self.admin(f"CREATE DATABASE `{BENCH_DATABASE}`")
        url = self.url()
        await upgrade(url)
        return url

    async def drop_database(self) -> None:
        await self.admin(f"DROP DATABASE IF EXISTS `{BENCH_DATABASE}`")
