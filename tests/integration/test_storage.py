"""Idempotent bulk writes against real databases (each test runs on SQLite and on MariaDB)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.storage.engine import DatabaseUnavailable, StorageError, check_database, create_engine
from charged.storage.migrate import upgrade
from charged.storage.schema import metadata
from charged.storage.writes import write_rows

TICK = datetime(2026, 1, 1, 12, 0, 30)
PHASES = ("L1", "L2", "L3")
Row = dict[str, Any]


def tick_rows(tick: datetime, chargers: int = 30) -> dict[str, list[Row]]:
    """The rows the collector makes for one tick: every even charger charges on connector 1."""
    cps: list[Row] = []
    connectors: list[Row] = []
    phases: list[Row] = []
    for n in range(chargers):
        cp = f"2301{n:06d}A"
        cps.append({"id": cp, "status": "Online", "last_seen": tick})
        for connector in (1, 2):
            charging = connector == 1 and n % 2 == 0
            session = 7_000_000_000 + n * 10 + connector if charging else None
            connectors.append(
                {
                    "charge_point_id": cp,
                    "connector_id": connector,
                    "total_consumption_kwh": round(1.234 + n * 0.1, 3) if charging else 0.0,
                    "charging_power_kw": 10.35 if charging else 0.0,
                    "session_type": "ThreePhase" if charging else None,
                    "status": "Charging" if charging else "Available",
                    "start_time": "2026-01-01T11:00:00Z" if charging else None,
                    "end_time": None,
                    "session_id": session,
                    "date_created": tick,
                }
            )
            if charging:
                for phase in PHASES:
                    phases.append(
                        {
                            "phase": phase,
                            "current": 15.5,
                            "voltage": 230.25,
                            "connector_id": connector,
                            "charge_point_id": cp,
                            "comment": None,
                            "session_id": session,
                            "date_created": tick,
                        }
                    )
    return {"charge_point_status": cps, "connector_status": connectors, "measurement": phases}


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade(db_url)
    eng = create_engine(db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


async def write_tick(engine: AsyncEngine, batch: dict[str, list[Row]]) -> None:
    async with engine.begin() as conn:
        for table, rows in batch.items():
            await write_rows(conn, table, rows)


async def stored(engine: AsyncEngine, table: str) -> list[Row]:
    async with engine.connect() as conn:
        result = await conn.execute(select(metadata.tables[table]))
        # the surrogate id is the database's; charge_point_status.id is the charger's own
        keep_id = table == "charge_point_status"
        return [{k: v for k, v in r._mapping.items() if keep_id or k != "id"} for r in result]


def as_set(rows: list[Row], columns: list[str]) -> set[tuple[Any, ...]]:
    return {tuple(_plain(row[c]) for c in columns) for row in rows}


def _plain(value: Any) -> Any:
    # FLOAT columns come back single-precision on MySQL; compare at the precision stored
    return round(value, 3) if isinstance(value, float) else value


async def test_tick_of_30_chargers_lands_as_exactly_the_expected_rows(engine: AsyncEngine) -> None:
    batch = tick_rows(TICK)
    await write_tick(engine, batch)

    for table in ("connector_status", "measurement"):
        rows = await stored(engine, table)
        columns = list(batch[table][0])
        assert len(rows) == len(batch[table])
        assert as_set(rows, columns) == as_set(batch[table], columns)
    assert len(batch["connector_status"]) == 60 and len(batch["measurement"]) == 45

    cps = await stored(engine, "charge_point_status")
    assert {(r["id"], r["status"], r["last_seen"]) for r in cps} == {
        (r["id"], "Online", TICK) for r in batch["charge_point_status"]
    }


async def test_same_tick_twice_adds_nothing(engine: AsyncEngine) -> None:
    batch = tick_rows(TICK)
    await write_tick(engine, batch)
    first = {t: await stored(engine, t) for t in batch}
    await write_tick(engine, batch)
    for table in batch:
        assert await stored(engine, table) == first[table], table

    # the next tick is new data
    await write_tick(engine, tick_rows(TICK + timedelta(seconds=30)))
    assert len(await stored(engine, "connector_status")) == 120
    assert len(await stored(engine, "charge_point_status")) == 30


async def test_charge_point_upsert_updates_only_the_columns_a_row_carries(
    engine: AsyncEngine,
) -> None:
    owned = {
        "id": "2301000000A",
        "name": "Garage 1",
        "type": "AURA",
        "firmware_version": "1.2.3",
        "hardware_version": "C",
    }
    async with engine.begin() as conn:
        await write_rows(conn, "charge_point_status", [owned])
        await write_rows(
            conn,
            "charge_point_status",
            [{"id": "2301000000A", "status": "Offline", "last_seen": TICK}],
        )
    async with engine.begin() as conn:
        later = TICK + timedelta(seconds=30)
        # mixed key sets in one call: grouped into one statement per key set
        await write_rows(
            conn,
            "charge_point_status",
            [
                {"id": "2301000000A", "status": "Online", "last_seen": later},
                {**owned, "name": "Garage 1 (renamed)"},
            ],
        )
    (row,) = await stored(engine, "charge_point_status")
    assert row == {
        "id": "2301000000A",
        "status": "Online",
        "name": "Garage 1 (renamed)",
        "type": "AURA",
        "firmware_version": "1.2.3",
        "hardware_version": "C",
        "last_seen": TICK + timedelta(seconds=30),
    }


async def test_a_batch_keeps_a_chargers_newest_status_across_column_sets(
    engine: AsyncEngine,
) -> None:
    """Online, Offline (no last_seen), Online again in one batch: the newest one wins.  The
    row sets differ, so they go out as separate statements; the order of the rows must
    survive that (a charger back online stayed Offline in the table before)."""
    cp = "2301000000A"
    later = TICK + timedelta(seconds=60)
    async with engine.begin() as conn:
        await write_rows(
            conn,
            "charge_point_status",
            [
                {"id": cp, "status": "Online", "last_seen": TICK},
                {"id": "2301000000B", "status": "Online", "last_seen": TICK},
                {"id": cp, "status": "Offline"},
                {"id": cp, "status": "Online", "last_seen": later},
                {"id": "2301000000B", "status": "Offline"},
            ],
        )
    rows = {r["id"]: r for r in await stored(engine, "charge_point_status")}
    assert (rows[cp]["status"], rows[cp]["last_seen"]) == ("Online", later)
    # Offline keeps the last tick it was seen online
    assert (rows["2301000000B"]["status"], rows["2301000000B"]["last_seen"]) == ("Offline", TICK)


async def test_poll_cycle_and_gap_rows_are_idempotent(engine: AsyncEngine) -> None:
    cycle = {
        "tick_time": TICK,
        "chargers_asked": 30,
        "chargers_ok": 29,
        "chargers_failed": 1,
        "rows": 148,
        "duration_s": 1.25,
        "skipped_ticks": 0,
        "chargers_offline": 0,
    }
    gap = {"tick_time": TICK, "charge_point_id": "2301000003A", "reason": "ApiTimeout"}
    for _ in range(2):
        async with engine.begin() as conn:
            await write_rows(conn, "poll_cycle", [cycle])
            await write_rows(conn, "poll_gap", [gap])
    assert await stored(engine, "poll_cycle") == [cycle]
    assert await stored(engine, "poll_gap") == [gap]


async def test_availability_changes_are_idempotent(engine: AsyncEngine) -> None:
    went = {
        "tick_time": TICK,
        "charge_point_id": "2301000003A",
        "status": "Offline",
        "previous_status": "Online",
    }
    first = {**went, "tick_time": TICK - timedelta(seconds=30), "status": "Online"}
    first["previous_status"] = None
    for _ in range(2):  # a spool replayed after a crash between commit and ack
        async with engine.begin() as conn:
            await write_rows(conn, "charge_point_availability", [first, went])
    assert await stored(engine, "charge_point_availability") == [first, went]


async def test_energy_keeps_its_decimals(engine: AsyncEngine) -> None:
    row = tick_rows(TICK, chargers=1)["connector_status"][0]
    async with engine.begin() as conn:
        await write_rows(conn, "connector_status", [{**row, "total_consumption_kwh": 12345.678}])
    (stored_row,) = await stored(engine, "connector_status")
    assert stored_row["total_consumption_kwh"] == pytest.approx(12345.678, abs=1e-9)


async def test_bad_rows_are_one_clear_line(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        with pytest.raises(StorageError, match="no writable table named 'measurements'"):
            await write_rows(conn, "measurements", [{"phase": "L1"}])
        with pytest.raises(StorageError, match=r"has no column.*amps"):
            await write_rows(conn, "measurement", [{"phase": "L1", "amps": 3}])
        with pytest.raises(StorageError, match="must carry id"):
            await write_rows(conn, "charge_point_status", [{"status": "Online"}])


@pytest.mark.mysql
async def test_replaying_duplicates_logs_prints_and_warns_nothing(
    mysql_url: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    await upgrade(mysql_url)
    eng = create_engine(mysql_url)
    try:
        batches = [tick_rows(TICK + timedelta(seconds=30 * k)) for k in range(20)]
        rows = [r for b in batches for r in b["measurement"]]  # 900 rows
        await write_tick(eng, {"measurement": rows})
        capfd.readouterr()

        # The trap we avoid: INSERT IGNORE makes the driver log a line per duplicate.
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            async with eng.begin() as conn:
                table = metadata.tables["measurement"]
                await conn.execute(mysql.insert(table).prefix_with("IGNORE"), rows[:5])
        assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) >= 5

        capfd.readouterr()  # whatever a logging handler printed for the trap above
        caplog.clear()
        with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                async with eng.begin() as conn:
                    await write_rows(conn, "measurement", rows)
                    warning_count = (await conn.execute(text("SHOW COUNT(*) WARNINGS"))).scalar()
                    assert warning_count == 0
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert caught == []
        out, err = capfd.readouterr()
        assert out == "" and err == ""
        async with eng.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
        assert count == len(rows)
    finally:
        await eng.dispose()


async def test_one_executemany_per_table(engine: AsyncEngine) -> None:
    from sqlalchemy import event

    statements: list[tuple[str, bool]] = []

    def record(_conn: Any, _cursor: Any, stmt: str, _params: Any, _ctx: Any, many: bool) -> None:
        statements.append((stmt.split("(")[0].strip(), many))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await write_tick(engine, tick_rows(TICK))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    # SQLite: one executemany per table.  MySQL: writes.py renders the rows itself, so a
    # table's rows are one multi-row INSERT (per MYSQL_ROWS_PER_STATEMENT rows).
    many = engine.dialect.name == "sqlite"
    assert [m for _, m in statements] == [many, many, many]
    assert [s.split()[-1].strip("`") for s, _ in statements] == [
        "charge_point_status",
        "connector_status",
        "measurement",
    ]


async def test_unreachable_mysql_is_one_line_naming_where(fake_clock: Any) -> None:
    eng = create_engine("mysql+asyncmy://charged:s3cret-pw@127.0.0.1:1/charged")
    try:
        with pytest.raises(DatabaseUnavailable) as info:
            await check_database(eng)
    finally:
        await eng.dispose()
    message = str(info.value)
    assert "\n" not in message
    assert "127.0.0.1:1" in message and "database charged" in message
    assert "s3cret-pw" not in message
    assert "check that the server is running" in message


async def test_upgrade_of_unreachable_database_is_the_same_clear_error() -> None:
    with pytest.raises(DatabaseUnavailable, match=r"127\.0\.0\.1:1.*check that"):
        await upgrade("mysql+asyncmy://charged:s3cret-pw@127.0.0.1:1/charged")


async def test_sqlite_engine_creates_its_directory_and_uses_wal(tmp_path: Any) -> None:
    path = tmp_path / "deep" / "er" / "charged.db"
    eng = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await check_database(eng)
        async with eng.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
        assert mode == "wal"
        assert path.exists()
    finally:
        await eng.dispose()


async def test_raw_insert_bypassing_write_rows_still_hits_the_natural_key(
    engine: AsyncEngine,
) -> None:
    # the unique key lives in the database, not only in write_rows
    row = tick_rows(TICK, chargers=1)["connector_status"][0]
    table = metadata.tables["connector_status"]
    async with engine.begin() as conn:
        await conn.execute(insert(table), [row])
    with pytest.raises(IntegrityError, match=r"(?i)unique|duplicate"):
        async with engine.begin() as conn:
            await conn.execute(insert(table), [row])
