"""Migrations on SQLite and MariaDB: new databases, databases made by the original scripts."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url

from charged.storage.engine import MigrationError, create_engine
from charged.storage.migrate import current, head_revision, upgrade
from charged.storage.schema import metadata
from charged.storage.writes import write_rows

# The original scripts' CREATE statements, as given in the API reference (MySQL).
ORIGINAL_MYSQL = (
    "CREATE TABLE charge_point_status (id VARCHAR(128) PRIMARY KEY, status VARCHAR(128))",
    "CREATE TABLE connector_status (id INT PRIMARY KEY AUTO_INCREMENT, "
    "charge_point_id VARCHAR(128), connector_id NUMERIC, total_consumption_kwh NUMERIC, "
    "session_type VARCHAR(128), status VARCHAR(128), start_time VARCHAR(256), "
    "end_time VARCHAR(256), session_id NUMERIC, date_created DATETIME)",
    "CREATE TABLE measurement (id INT PRIMARY KEY AUTO_INCREMENT, phase VARCHAR(128), "
    "current FLOAT, voltage FLOAT, connector_id NUMERIC, charge_point_id VARCHAR(128), "
    "comment VARCHAR(15000), session_id NUMERIC, date_created DATETIME)",
)
# SQLite spells the auto-increment key differently; everything else is the same.
ORIGINAL_SQLITE = tuple(
    s.replace("INT PRIMARY KEY AUTO_INCREMENT", "INTEGER PRIMARY KEY AUTOINCREMENT")
    for s in ORIGINAL_MYSQL
)
START = datetime(2025, 6, 1, 8, 0, 0)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


async def run_sql(url: str, statements: list[str] | tuple[str, ...], rows: Any = None) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
            for statement, params in rows or []:
                await conn.execute(text(statement), params)
    finally:
        await engine.dispose()


def legacy_rows() -> list[tuple[str, list[dict[str, Any]]]]:
    cps = [{"id": f"1903000{n:03d}A", "status": "Online" if n % 3 else "Offline"} for n in range(5)]
    connectors = []
    phases = []
    for k in range(40):
        when = START + timedelta(seconds=30 * k)
        for n in range(5):
            for c in (1, 2):
                charging = c == 1 and n % 2 == 0
                connectors.append(
                    {
                        "cp": f"1903000{n:03d}A",
                        "c": c,
                        # the original scripts stored decimals here (cut to whole kWh on MySQL)
                        "kwh": 4.56 + k * 0.01 if charging else 0,
                        "st": "ThreePhase" if charging else None,
                        "status": "Charging" if charging else "Available",
                        "start": "2025-06-01T07:55:00" if charging else None,
                        "end": None,
                        "sid": 7_123_456_789 + n if charging else None,
                        "at": when,
                    }
                )
                if charging:
                    for phase in ("L1", "L2", "L3"):
                        phases.append(
                            {
                                "phase": phase,
                                "cur": 15.5 if phase == "L1" else 0.001,
                                "volt": 230.5,
                                "c": c,
                                "cp": f"1903000{n:03d}A",
                                "comment": "x" * 300 if k == 0 else None,
                                "sid": 7_123_456_789 + n,
                                "at": when,
                            }
                        )
    return [
        ("INSERT INTO charge_point_status (id, status) VALUES (:id, :status)", cps),
        (
            "INSERT INTO connector_status (charge_point_id, connector_id, total_consumption_kwh, "
            "session_type, status, start_time, end_time, session_id, date_created) "
            "VALUES (:cp, :c, :kwh, :st, :status, :start, :end, :sid, :at)",
            connectors,
        ),
        (
            "INSERT INTO measurement (phase, current, voltage, connector_id, charge_point_id, "
            "comment, session_id, date_created) "
            "VALUES (:phase, :cur, :volt, :c, :cp, :comment, :sid, :at)",
            phases,
        ),
    ]


ORIGINAL_COLUMNS = {
    "charge_point_status": "id, status",
    "connector_status": "id, charge_point_id, connector_id, total_consumption_kwh, session_type, "
    "status, start_time, end_time, session_id, date_created",
    "measurement": "id, phase, current, voltage, connector_id, charge_point_id, comment, "
    "session_id, date_created",
}


async def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the original tables, in the original columns, numbers as plain numbers."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return {
                table: [
                    tuple(_number(v) for v in row)
                    for row in await conn.execute(
                        text(f"SELECT {columns} FROM {table} ORDER BY id")
                    )
                ]
                for table, columns in ORIGINAL_COLUMNS.items()
            }
    finally:
        await engine.dispose()


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def schema_diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def diff_against_metadata(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(schema_diff)
    finally:
        await engine.dispose()


async def test_new_database_is_migrated_to_head_once(db_url: str) -> None:
    assert await current(db_url) is None
    applied = await upgrade(db_url)
    assert applied[:2] == ["0001", "0002"] and applied[-1] == head_revision()
    assert await current(db_url) == head_revision()
    assert await upgrade(db_url) == []


async def test_migrated_schema_matches_the_metadata(db_url: str) -> None:
    await upgrade(db_url)
    assert await diff_against_metadata(db_url) == []


async def test_upgrade_step_by_step_reports_each_revision(db_url: str) -> None:
    assert await upgrade(db_url, "0001") == ["0001"]
    assert await current(db_url) == "0001"
    assert (await upgrade(db_url, "0002")) == ["0002"]
    assert await current(db_url) == "0002"


async def test_original_database_is_upgraded_in_place_with_every_row(db_url: str) -> None:
    creates = ORIGINAL_SQLITE if is_sqlite(db_url) else ORIGINAL_MYSQL
    await run_sql(db_url, creates, legacy_rows())
    before = await snapshot(db_url)
    assert [len(before[t]) for t in ORIGINAL_COLUMNS] == [5, 400, 360]

    # adopted at 0001 (its tables exist), so only 0002 runs
    applied = await upgrade(db_url)
    assert applied[0] == "0002" and "0001" not in applied
    assert await current(db_url) == head_revision()

    assert await snapshot(db_url) == before
    assert await diff_against_metadata(db_url) == []
    if is_sqlite(db_url):
        # SQLite's NUMERIC kept the decimals the scripts wrote; the upgrade keeps them too
        kwh = [row[3] for row in (await snapshot(db_url))["connector_status"]]
        assert any(isinstance(v, float) and abs(v - 4.56) < 1e-9 for v in kwh)

    # the upgraded database takes new rows with decimals and new columns next to the old ones
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await write_rows(
                conn,
                "connector_status",
                [
                    {
                        "charge_point_id": "1903000000A",
                        "connector_id": 1,
                        "total_consumption_kwh": 5.125,
                        "charging_power_kw": 11.0,
                        "status": "Charging",
                        "session_id": 7_123_456_789,
                        "date_created": START + timedelta(days=1),
                    }
                ],
            )
            kwh_new = (
                await conn.execute(
                    text("SELECT total_consumption_kwh FROM connector_status ORDER BY id DESC")
                )
            ).first()
        assert kwh_new is not None and float(kwh_new[0]) == pytest.approx(5.125)
    finally:
        await engine.dispose()
    after = await snapshot(db_url)
    assert after["connector_status"][:400] == before["connector_status"]


async def test_duplicates_of_a_new_key_stop_the_upgrade_and_change_nothing(db_url: str) -> None:
    creates = ORIGINAL_SQLITE if is_sqlite(db_url) else ORIGINAL_MYSQL
    seed = legacy_rows()
    statement, connectors = seed[1]
    # the same reading stored twice and three times (e.g. two scripts running at once)
    repeated = [connectors[0], connectors[0], connectors[7], connectors[7]]
    await run_sql(db_url, creates, [*seed, (statement, repeated)])
    before = await snapshot(db_url)

    with pytest.raises(MigrationError) as info:
        await upgrade(db_url)
    message = str(info.value)
    assert "\n" not in message
    assert "connector_status" in message and "4 row(s)" in message
    assert "charged db upgrade" in message

    assert await current(db_url) is None
    assert await snapshot(db_url) == before
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("connector_status")}
            )
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    finally:
        await engine.dispose()
    assert "charging_power_kw" not in columns
    assert "poll_cycle" not in tables

    # once the user removed the copies, the same command goes through
    await run_sql(
        db_url,
        [
            "DELETE FROM connector_status WHERE id > 400",
        ],
    )
    assert (await upgrade(db_url))[0] == "0002"
    assert await snapshot(db_url) == {
        t: rows[:400] if t == "connector_status" else rows for t, rows in before.items()
    }


@pytest.mark.mysql
def test_db_upgrade_on_mariadb_prints_only_what_it_applied(mysql_url: str) -> None:
    # MariaDB notes that it ignores the name of alembic_version's primary key; asyncmy logged
    # that as a warning line on every new database
    import subprocess
    import sys

    command = [sys.executable, "-m", "charged.cli", "db", "upgrade", "--db-url", mysql_url]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("applied: 0001, 0002")
