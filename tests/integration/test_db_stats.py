"""`charged db stats` on SQLite and MariaDB: rows, bytes and growth per day of each table."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, text

from charged.cli import main
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.schema import connector_status
from charged.storage.stats import table_stats

START = datetime(2025, 5, 1)


async def fill(url: str) -> None:
    """Ten days of a connector polled every 15 min (96 rows a day), the newest at 23:45."""
    await upgrade(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            rows = [
                {
                    "charge_point_id": "CP1",
                    "connector_id": 1,
                    "status": "Available",
                    "date_created": START + timedelta(minutes=15 * k),
                }
                for k in range(10 * 96)
            ]
            await conn.execute(insert(connector_status), rows)
            if conn.dialect.name == "mysql":
                await conn.execute(text("ANALYZE TABLE connector_status"))
    finally:
        await engine.dispose()


async def test_stats_count_rows_bytes_and_the_growth_per_day(db_url: str) -> None:
    await fill(db_url)
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            stats = {s.table: s for s in await table_stats(conn)}
    finally:
        await engine.dispose()
    cs = stats["connector_status"]
    assert cs.newest == START + timedelta(days=10, minutes=-15)
    assert cs.rows_per_day == 96  # counted over the 7 days before the newest row
    if cs.rows_estimated:  # MariaDB: InnoDB's estimate
        assert 0.5 * 960 <= cs.rows <= 2 * 960
    else:
        assert cs.rows == 960
    if cs.bytes is not None:
        assert cs.bytes > 0 and cs.bytes_per_day is not None and cs.bytes_per_day > 0
    assert stats["measurement"].rows_per_day is None  # empty: nothing to measure


@pytest.mark.parametrize("as_json", [False, True])
async def test_db_stats_prints_a_line_per_table(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    await fill(sqlite_url)
    argv = ["db", "stats", "--db-url", sqlite_url, *(["--json"] if as_json else [])]
    # main() runs an event loop of its own: in a thread, beside the test's
    code = await asyncio.to_thread(main, argv)
    out = capsys.readouterr().out
    assert code == 0
    if as_json:
        tables = {t["table"]: t for t in json.loads(out)}
        assert tables["connector_status"]["rows"] == 960
        assert tables["connector_status"]["rowsPerDay"] == 96
    else:
        line = next(li for li in out.splitlines() if li.startswith("connector_status"))
        assert line.split()[1:2] == ["960"]
        assert "96" in line.split()
