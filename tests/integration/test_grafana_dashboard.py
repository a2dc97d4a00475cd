"""The Grafana dashboard's MySQL panels (deploy/grafana/dashboards/charged.json), run for real.

Each panel's SQL has Grafana's macros expanded as Grafana's MySQL data source expands them
($__timeFilter → BETWEEN FROM_UNIXTIME(…), $__timeGroup → cast(cast(UNIX_TIMESTAMP(…)/(300)
as signed)*300 as signed), …) and runs on MariaDB against a database migrated to this
version's schema, as a SELECT-only user (what Grafana logs in as) with MySQL 8.4's default
sql_mode (ONLY_FULL_GROUP_BY) and a UTC session, as in the compose set-up.  A table or column
renamed in a migration therefore breaks this test, and the panels' averages are checked on
hand-made rows.  Uses the MariaDB fixture: under CI=true a missing server fails, never skips.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError

from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.schema import charge_point_status, connector_status, measurement
from tests.integration.mysql_users import execute, temporary_user

pytestmark = pytest.mark.mysql

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "charged.json"
# MySQL 8.4's default sql_mode: MariaDB's default lacks ONLY_FULL_GROUP_BY, which 8.4 enforces
MYSQL_84_SQL_MODE = (
    "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
)
RO_PASSWORD = "ro-Secret-1234"

# one 5-minute bucket (2025-01-15 10:00:00 UTC is a multiple of 300 s), three ticks in it
BUCKET = datetime(2025, 1, 15, 10, 0, 0)
BUCKET_EPOCH = 1736935200
TICKS = [BUCKET + timedelta(seconds=s) for s in (0, 30, 60)]
OUTSIDE = BUCKET - timedelta(days=1)  # outside the dashboard's time range
RANGE = (BUCKET_EPOCH - 6 * 3600, BUCKET_EPOCH + 3600)


@dataclass(frozen=True)
class Query:
    panel: str
    sql: str
    format: str


def mysql_queries() -> list[Query]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [
        Query(panel["title"], target["rawSql"], target["format"])
        for panel in dashboard["panels"]
        if panel.get("datasource", {}).get("type") == "mysql"
        for target in panel["targets"]
    ]
    assert queries, "the dashboard has no MySQL panel"
    return queries


def query(title_start: str) -> Query:
    (found,) = [q for q in mysql_queries() if q.panel.startswith(title_start)]
    return found


_MACRO = re.compile(r"\$__(\w+)\(([^()]*)\)")
_INTERVAL = re.compile(r"'(\d+)([smhd])'")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def expand_macros(sql: str, start: int, end: int) -> str:
    """``sql`` with the Grafana MySQL macros it uses expanded for the range [start, end]."""

    def group(column: str, interval: str) -> str:
        m = _INTERVAL.fullmatch(interval.strip())
        assert m, f"interval {interval!r} not understood"
        seconds = int(m.group(1)) * _UNIT[m.group(2)]
        return f"cast(cast(UNIX_TIMESTAMP({column})/({seconds}) as signed)*{seconds} as signed)"

    def one(m: re.Match[str]) -> str:
        name, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
        if name == "timeFilter":
            return f"{args[0]} BETWEEN FROM_UNIXTIME({start}) AND FROM_UNIXTIME({end})"
        if name == "timeGroup" and len(args) == 2:
            return group(args[0], args[1])
        if name == "timeGroupAlias" and len(args) == 2:
            return group(args[0], args[1]) + ' AS "time"'
        if name == "timeFrom" and args == [""]:
            return f"FROM_UNIXTIME({start})"
        if name == "timeTo" and args == [""]:
            return f"FROM_UNIXTIME({end})"
        raise AssertionError(f"macro $__{name}({m.group(2)}) is not expanded by this test")

    expanded = _MACRO.sub(one, sql)
    assert "$" not in expanded, f"an unexpanded variable is left: {expanded}"
    return expanded


def test_macro_expansion_matches_grafana() -> None:
    sql = "SELECT $__timeGroupAlias(c.date_created, '5m') WHERE $__timeFilter(date_created)"
    assert expand_macros(sql, 10, 20) == (
        "SELECT cast(cast(UNIX_TIMESTAMP(c.date_created)/(300) as signed)*300 as signed) "
        'AS "time" WHERE date_created BETWEEN FROM_UNIXTIME(10) AND FROM_UNIXTIME(20)'
    )
    with pytest.raises(AssertionError, match="not expanded"):
        expand_macros("SELECT $__unixEpochFilter(x)", 0, 1)


# ---------------------------------------------------------------- the database


def connector(
    cp: str, conn_id: int, tick: datetime, status: str, kw: float | None
) -> dict[str, Any]:
    return {
        "charge_point_id": cp,
        "connector_id": conn_id,
        "status": status,
        "charging_power_kw": kw,
        "total_consumption_kwh": 1.0,
        "session_id": 7 if status == "Charging" else None,
        "date_created": tick,
    }


def phases(cp: str, conn_id: int, tick: datetime, amps: float) -> list[dict[str, Any]]:
    return [
        {
            "charge_point_id": cp,
            "connector_id": conn_id,
            "phase": phase,
            "current": amps,
            "voltage": 230.0,
            "session_id": 7,
            "date_created": tick,
        }
        for phase in ("L1", "L2", "L3")
    ]


# Two chargers, one connector each, three ticks in the bucket:
#   tick 0: cp-1 charging, 16 A on 3 phases (11 040 W measured); cp-2 available
#   tick 1: cp-1 charging, no phase measured, the vendor says 7.2 kW; cp-2 available
#   tick 2: both available (no measurements, 0 kW)
# and one tick a day earlier (outside the range) where cp-2 charged at 32 A.
CONNECTOR_ROWS = [
    connector("cp-1", 1, TICKS[0], "Charging", 11.0),
    connector("cp-2", 1, TICKS[0], "Available", 0.0),
    connector("cp-1", 1, TICKS[1], "Charging", 7.2),
    connector("cp-2", 1, TICKS[1], "Available", 0.0),
    connector("cp-1", 1, TICKS[2], "Available", 0.0),
    connector("cp-2", 1, TICKS[2], "Available", None),
    connector("cp-2", 1, OUTSIDE, "Charging", 22.0),
]
MEASUREMENT_ROWS = [*phases("cp-1", 1, TICKS[0], 16.0), *phases("cp-2", 1, OUTSIDE, 32.0)]
# the power panel: (11 040 W + 7 200 W + 0 W) over 3 ticks; charging in 2 of 3 ticks
EXPECTED_KW = (11040.0 + 7200.0 + 0.0) / 3 / 1000
EXPECTED_CONNECTORS = {"Charging": 2 / 3, "Available": 4 / 3}


@pytest.fixture
async def readonly_url(mysql_url: str) -> AsyncIterator[str]:
    """The project's schema with the rows above, reached as a SELECT-only user."""
    await upgrade(mysql_url)
    engine = create_engine(mysql_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(charge_point_status),
                [
                    {"id": "cp-1", "name": "Garage 1", "status": "Online", "last_seen": TICKS[2]},
                    {"id": "cp-2", "name": "Garage 2", "status": "Online", "last_seen": TICKS[2]},
                ],
            )
            await conn.execute(insert(connector_status), CONNECTOR_ROWS)
            await conn.execute(insert(measurement), MEASUREMENT_ROWS)
    finally:
        await engine.dispose()
    async with temporary_user(mysql_url, RO_PASSWORD, "SELECT") as url:
        yield url


async def run_panel(url: str, q: Query) -> list[dict[str, Any]]:
    sql = expand_macros(q.sql, *RANGE)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SET time_zone = '+00:00'")
            await conn.exec_driver_sql(f"SET sql_mode = '{MYSQL_84_SQL_MODE}'")
            result = await conn.exec_driver_sql(sql)
            return [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()


async def test_every_mysql_panel_runs_on_the_schema_as_the_read_only_user(
    readonly_url: str, mysql_url: str
) -> None:
    for q in mysql_queries():
        rows = await run_panel(readonly_url, q)
        assert rows, f"{q.panel}: no rows"
        if q.format == "time_series":
            # Grafana's time series need a "time" column, sorted, and numeric values
            times = [row["time"] for row in rows]
            assert times == sorted(times), q.panel
            assert set(times) == {BUCKET_EPOCH}, f"{q.panel}: {rows}"
            for row in rows:
                values = [v for k, v in row.items() if k not in ("time", "metric")]
                assert values and all(isinstance(float(v), float) for v in values), q.panel
    # the test is not blind: a renamed column breaks the panel that reads it
    await execute(mysql_url, "ALTER TABLE measurement RENAME COLUMN voltage TO volts")
    with pytest.raises(DBAPIError, match="voltage"):
        await run_panel(readonly_url, query("Charging power"))


async def test_charging_power_is_the_mean_over_every_tick(readonly_url: str) -> None:
    rows = await run_panel(readonly_url, query("Charging power"))
    assert [row["time"] for row in rows] == [BUCKET_EPOCH]
    # not 11.04 kW (the measured tick alone) nor 9.12 (the two charging ticks): the idle
    # tick counts, and a poll with no phase measured uses the vendor's chargingPowerKw
    assert float(rows[0]["kW"]) == pytest.approx(EXPECTED_KW)


async def test_connectors_by_status_divides_by_every_tick(readonly_url: str) -> None:
    rows = await run_panel(readonly_url, query("Connectors by status"))
    assert {row["time"] for row in rows} == {BUCKET_EPOCH}
    got = {row["metric"]: float(row["connectors"]) for row in rows}
    assert got == pytest.approx(EXPECTED_CONNECTORS, abs=1e-3)  # DECIMAL division: 4 places
    # the fleet's connectors add up: two connectors polled in every tick
    assert sum(got.values()) == pytest.approx(2.0, abs=1e-3)


async def test_chargers_table(readonly_url: str) -> None:
    rows = await run_panel(readonly_url, query("Chargers"))
    assert [(r["id"], r["name"], r["status"]) for r in rows] == [
        ("cp-1", "Garage 1", "Online"),
        ("cp-2", "Garage 2", "Online"),
    ]
    assert rows[0]["last_seen"] == TICKS[2]
