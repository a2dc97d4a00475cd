"""The MySQL write path of writes.py renders rows itself: values must arrive exactly, in
several pipelined statements, and a refused statement must still be a SQLAlchemy error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.schema import metadata
from charged.storage.writes import MYSQL_ROWS_PER_STATEMENT, write_rows

pytestmark = pytest.mark.mysql
STAMP = datetime(2026, 1, 1, 12, 0, 30)


@pytest.fixture
async def engine(mysql_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade(mysql_url)
    eng = create_engine(mysql_url)
    try:
        yield eng
    finally:
        await eng.dispose()


def gap_rows(count: int) -> list[dict[str, Any]]:
    # Text a renderer could get wrong: quotes, a backslash, %-signs, non-ASCII, NULL.
    reasons = ["100% 'quoted' \\\\ back", '%s "%(x)s" ; DROP', "ÅÄÖ — ✓", None]
    return [
        {"tick_time": STAMP, "charge_point_id": f"cp-{n:05d}", "reason": reasons[n % 4]}
        for n in range(count)
    ]


async def test_rows_arrive_exactly_over_several_statements(engine: AsyncEngine) -> None:
    rows = gap_rows(MYSQL_ROWS_PER_STATEMENT * 2 + 7)
    sent: list[str] = []

    def record(_c: Any, _cur: Any, stmt: str, _p: Any, _ctx: Any, _many: bool) -> None:
        sent.append(stmt)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with engine.begin() as conn:
            await write_rows(conn, "poll_gap", rows)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert len(sent) == 3  # ⌈rows / MYSQL_ROWS_PER_STATEMENT⌉ statements
    table = metadata.tables["poll_gap"]
    async with engine.connect() as conn:
        result = await conn.execute(
            select(table.c.tick_time, table.c.charge_point_id, table.c.reason).order_by(
                table.c.charge_point_id
            )
        )
        back = [dict(r._mapping) for r in result]
    assert back == rows


async def test_floats_and_upserts_keep_their_values(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await write_rows(conn, "charge_point_status", [{"id": "A", "name": "first"}])
        await write_rows(
            conn, "charge_point_status", [{"id": "A", "status": "Online", "last_seen": STAMP}]
        )
        await write_rows(
            conn,
            "measurement",
            [
                {
                    "phase": "L1",
                    "current": 15.123456789,
                    "voltage": 229.6,
                    "connector_id": 1,
                    "charge_point_id": "A",
                    "comment": None,
                    "session_id": 2**40,
                    "date_created": STAMP,
                }
            ],
        )
    async with engine.connect() as conn:
        cp = (await conn.execute(select(metadata.tables["charge_point_status"]))).one()
        m = (await conn.execute(select(metadata.tables["measurement"]))).one()
    assert (cp.name, cp.status, cp.last_seen) == ("first", "Online", STAMP)
    # FLOAT is single precision and MariaDB returns 6 significant digits of it
    assert m.current == pytest.approx(15.123456789, rel=1e-5)
    assert (m.voltage, m.session_id, m.date_created) == (pytest.approx(229.6), 2**40, STAMP)


async def test_a_refused_statement_is_a_sqlalchemy_error_and_rolls_back(
    engine: AsyncEngine,
) -> None:
    rows = gap_rows(MYSQL_ROWS_PER_STATEMENT + 1)
    rows[-1]["reason"] = "x" * 300  # longer than VARCHAR(256): strict mode refuses it
    with pytest.raises(DBAPIError):
        async with engine.begin() as conn:
            await write_rows(conn, "poll_gap", rows)
    async with engine.connect() as conn:
        assert (await conn.execute(select(metadata.tables["poll_gap"]))).all() == []


async def test_a_row_that_cannot_be_rendered_stops_the_write_and_leaves_a_usable_engine(
    engine: AsyncEngine,
) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text for this value")

    rows = gap_rows(MYSQL_ROWS_PER_STATEMENT + 1)
    # rendered while the first statement is in flight: that one is stopped and rolled back
    rows[-1]["reason"] = Unprintable()
    with pytest.raises(RuntimeError, match="no text for this value"):
        async with engine.begin() as conn:
            await write_rows(conn, "poll_gap", rows)
    async with engine.begin() as conn:
        await write_rows(conn, "poll_gap", gap_rows(3))
    async with engine.connect() as conn:
        assert len((await conn.execute(select(metadata.tables["poll_gap"]))).all()) == 3


# Text that breaks a renderer which escapes for the wrong sql_mode: a quote ends a literal
# early under NO_BACKSLASH_ESCAPES if escaped as \', a backslash is stored doubled, NUL and
# text outside the BMP (4-byte UTF-8) must survive as they are.
HOSTILE = [
    "O'Brien's garage",
    "back\\slash \\' \\\\ end\\",
    "nul\x00inside",
    "emoji 🔌⚡ 𝄞 and ÅÄÖ",
    "'; DROP TABLE poll_gap; --",
    "%s %% %(x)s",
    "\\",
    "'",
    "",
]


@pytest.mark.parametrize(
    "mode",
    [
        "NO_BACKSLASH_ESCAPES",
        "ANSI_QUOTES,NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES",
        "STRICT_TRANS_TABLES",  # the default kind: backslashes escape
        "",
    ],
)
async def test_text_is_stored_exactly_under_every_sql_mode(engine: AsyncEngine, mode: str) -> None:
    reasons = [HOSTILE[n % len(HOSTILE)] for n in range(MYSQL_ROWS_PER_STATEMENT + 20)]
    rows = [
        {"tick_time": STAMP, "charge_point_id": f"cp-{n:05d}", "reason": reason}
        for n, reason in enumerate(reasons)
    ]
    names = [{"id": f"cp-{n}", "name": text} for n, text in enumerate(HOSTILE)]
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f"SET SESSION sql_mode = '{mode}'")
        # the session really is in that mode: the server answers in it
        assert (await conn.exec_driver_sql("SELECT @@session.sql_mode")).scalar() == mode
        await write_rows(conn, "poll_gap", rows)  # pipelined over two statements
        await write_rows(conn, "charge_point_status", names)
        await write_rows(conn, "charge_point_status", names)  # the upsert path, again
    gap = metadata.tables["poll_gap"]
    status = metadata.tables["charge_point_status"]
    async with engine.connect() as conn:
        stored = await conn.execute(
            select(gap.c.charge_point_id, gap.c.reason).order_by(gap.c.charge_point_id)
        )
        assert [r.reason for r in stored] == reasons
        named = await conn.execute(select(status.c.id, status.c.name))
        assert {r.id: r.name for r in named} == {n["id"]: n["name"] for n in names}
