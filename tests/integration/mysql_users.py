"""MySQL/MariaDB users of their own for a test: a password and only the rights it grants."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.engine import make_url

from charged.storage.engine import create_engine


async def execute(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def temporary_user(mysql_url: str, password: str, rights: str) -> AsyncIterator[str]:
    """``mysql_url`` reached as a new user with ``password`` and ``rights`` (e.g. ``SELECT``)
    on its database; the user is dropped afterwards."""
    user = f"charged_u_{uuid.uuid4().hex[:8]}"
    database = make_url(mysql_url).database
    await execute(
        mysql_url,
        f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'",
        f"GRANT {rights} ON `{database}`.* TO '{user}'@'%'",
    )
    try:
        url = make_url(mysql_url).set(username=user, password=password)
        yield url.render_as_string(hide_password=False)
    finally:
        await execute(mysql_url, f"DROP USER IF EXISTS '{user}'@'%'")
