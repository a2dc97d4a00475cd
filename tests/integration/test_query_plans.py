"""Every query charged runs on the tables that grow with each tick, EXPLAINed on MariaDB.

The queries are not copied here: the real functions (session tracker, sessions, plots,
exports, planning, the balancer's status and recall) run against a migrated database of a
few weeks of polls, every SELECT they send is captured from the engine, and MariaDB's plan
for it must use an index on each growing table: a full table scan (type ALL) or a full index
scan (type index) fails the test.  The Grafana panels' SQL is checked the same way.  For the
queries named in issue 18 the index expected is named too, so a plan that falls back to a
worse index fails as well.

Small tables (charge_point_status, charging_session, control_action: a row per charger, per
session, per control request) may be scanned.  Uses the MariaDB fixture: under CI=true a
missing server fails, never skips.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from charged.analysis import plot_data
from charged.analysis.availability import offline_spans
from charged.analysis.export import export_query, table_named
from charged.balancer.recall import SqlCarRecall
from charged.balancer.status import read_status
from charged.config_service import RetentionSettings
from charged.planning.loads import loads_from_polls
from charged.sessions import store as session_store
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.rollup import storage_pass
from charged.storage.schema import (
    charge_point_availability,
    charge_point_status,
    charging_session,
    connector_status,
    measurement,
    poll_cycle,
)
from tests.integration.test_grafana_dashboard import expand_macros

pytestmark = pytest.mark.mysql

# tables that grow with every tick (or every change): these must never be scanned
GROWING = frozenset(
    {
        "connector_status",
        "measurement",
        "poll_cycle",
        "poll_gap",
        "charge_point_availability",
        "balancer_decision",
        "balancer_fuse",
    }
)
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards/charged.json"

START = datetime(2025, 3, 1)
DAYS = 20
TICK = timedelta(minutes=15)
CHARGERS = [f"CP{n:03d}" for n in range(10)]
SESSION_HOURS = range(8, 16)  # connector 1 charges 08:00-16:00 every day, a session a day


def session_id(cp_index: int, day: int) -> int:
    return 1_000_000 + cp_index * 1000 + day


async def fill(engine: AsyncEngine) -> None:
    """Twenty days of 15-minute polls of ten two-socket chargers (38,400 status rows)."""
    statuses: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []
    ticks: list[dict[str, Any]] = []
    moment = START
    while moment < START + timedelta(days=DAYS):
        day = (moment - START).days
        ticks.append(
            {
                "tick_time": moment,
                "chargers_asked": len(CHARGERS),
                "chargers_ok": len(CHARGERS),
                "chargers_failed": 0,
                "rows": 0,
                "duration_s": 0.1,
            }
        )
        for n, cp in enumerate(CHARGERS):
            for connector in (1, 2):
                charging = connector == 1 and moment.hour in SESSION_HOURS
                sid = session_id(n, day) if charging else None
                statuses.append(
                    {
                        "charge_point_id": cp,
                        "connector_id": connector,
                        "status": "Charging" if charging else "Available",
                        "total_consumption_kwh": 1.0 if charging else 0.0,
                        "session_id": sid,
                        "date_created": moment,
                    }
                )
                if charging:
                    for phase in ("L1", "L2", "L3"):
                        phases.append(
                            {
                                "charge_point_id": cp,
                                "connector_id": connector,
                                "phase": phase,
                                "current": 16.0,
                                "voltage": 230.0,
                                "session_id": sid,
                                "date_created": moment,
                            }
                        )
        moment += TICK
    sessions = [
        {
            "charge_point_id": cp,
            "connector_id": 1,
            "session_id": session_id(n, day),
            "start_time": START + timedelta(days=day, hours=SESSION_HOURS.start),
            "end_time": START + timedelta(days=day, hours=SESSION_HOURS.stop),
            "first_poll": START + timedelta(days=day, hours=SESSION_HOURS.start),
            "last_poll": START + timedelta(days=day, hours=SESSION_HOURS.stop) - TICK,
            "polls": 32,
            "gap_count": 0,
            "gap_s": 0.0,
            "updated": START,
        }
        for n, cp in enumerate(CHARGERS)
        for day in range(DAYS)
    ]
    availability = [
        {"tick_time": START + timedelta(days=d), "charge_point_id": cp, "status": s}
        for cp in CHARGERS
        for d, s in ((0, "Online"), (3, "Offline"), (4, "Online"))
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(charge_point_status), [{"id": cp} for cp in CHARGERS])
        await conn.execute(insert(poll_cycle), ticks)
        await conn.execute(insert(connector_status), statuses)
        await conn.execute(insert(measurement), phases)
        await conn.execute(insert(charging_session), sessions)
        await conn.execute(insert(charge_point_availability), availability)
    async with engine.connect() as conn:
        for table in ("connector_status", "measurement", "poll_cycle", "charging_session"):
            await conn.execute(text(f"ANALYZE TABLE {table}"))


@dataclass
class Captured:
    statements: list[tuple[str, Any]] = field(default_factory=list)


@pytest.fixture
async def engine(mysql_url: str) -> AsyncIterator[tuple[AsyncEngine, Captured]]:
    await upgrade(mysql_url)
    eng = create_engine(mysql_url)
    await fill(eng)
    captured = Captured()

    @event.listens_for(eng.sync_engine, "before_cursor_execute")
    def _capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.statements.append((statement, parameters))

    try:
        yield eng, captured
    finally:
        await eng.dispose()


@dataclass(frozen=True)
class Plan:
    table: str
    type: str
    key: str | None
    rows: int
    extra: str = ""

    @property
    def index_only(self) -> bool:
        """The index alone answered: no table row read (MariaDB: "Using index")."""
        return "Using index" in self.extra.split("; ")


async def explain(conn: AsyncConnection, statement: str, parameters: Any = None) -> list[Plan]:
    result = await conn.exec_driver_sql("EXPLAIN " + statement, parameters or ())
    return [
        Plan(str(r.table), str(r.type), r.key, int(r.rows or 0), str(r.Extra or ""))
        for r in result
        if r.table is not None
    ]


def scans(plans: list[Plan]) -> list[Plan]:
    return [p for p in plans if p.table in GROWING and p.type in ("ALL", "index")]


KEY = (CHARGERS[3], 1, session_id(3, 7))
SINCE = START + timedelta(days=7)
UNTIL = SINCE + timedelta(days=1)

Call = Callable[[AsyncConnection], Awaitable[Any]]


async def _session_row(conn: AsyncConnection) -> dict[str, Any]:
    (row,) = await plot_data.find_sessions(conn, charger=KEY[0], session_id=KEY[2])
    return row


async def _session_series(conn: AsyncConnection) -> Any:
    return await plot_data.session_series(conn, await _session_row(conn))


async def _recall(conn: AsyncConnection) -> Any:
    class Site:
        def connector_keys(self) -> list[tuple[str, int]]:
            return [(KEY[0], KEY[1])]

    return await SqlCarRecall(conn.engine).recall(Site())  # type: ignore[arg-type]


async def _storage_pass(conn: AsyncConnection) -> Any:
    settings = RetentionSettings(
        raw_days=7, decision_days=7, gap_days=7, fuse_days=7, power_days=32
    )
    one_pass = storage_pass(conn.engine, settings, interval=TICK.total_seconds())
    assert one_pass is not None
    for _ in range(2):  # the first notes how far the tables reach, the second folds
        await one_pass(SINCE)


async def _export(conn: AsyncConnection, name: str) -> Any:
    return (await conn.execute(export_query(table_named(name), SINCE, UNTIL))).all()


# (what, the call, {growing table: the index its plan must use}); the named ones are issue 18's
QUERIES: list[tuple[str, Call, dict[str, str]]] = [
    (
        "a session's polls (load_polls without since) and their phases",
        lambda c: session_store.load_polls(c, KEY, None),
        {
            "connector_status": "ix_connector_status_session_id",
            "measurement": "ix_measurement_connector_time",
        },
    ),
    (
        "a session's polls since a time",
        lambda c: session_store.load_polls(c, KEY, SINCE + timedelta(hours=10)),
        {"measurement": "ix_measurement_connector_time"},
    ),
    (
        "the connector's next poll",
        lambda c: session_store.next_poll_after(c, KEY[0], KEY[1], SINCE),
        {},  # MIN over the key's prefix: "select tables optimized away", no table read
    ),
    (
        "the connector's next session",
        lambda c: session_store.next_session_start(c, KEY, SINCE),
        {"connector_status": "uq_connector_status_natural"},
    ),
    ("sessions running into", lambda c: session_store.sessions_running_into(c, KEY, SINCE), {}),
    ("status rows after an id", lambda c: session_store.status_rows_after(c, 30_000, 500), {}),
    ("a session's plot series", _session_series, {}),
    ("the garage series of a day", lambda c: plot_data.garage_series(c, SINCE, UNTIL), {}),
    ("offline spans of a charger", lambda c: offline_spans(c, charger=KEY[0]), {}),
    ("polled loads of a day", lambda c: loads_from_polls(c, SINCE, UNTIL), {}),
    ("the balancer's recall", _recall, {}),
    ("the balancer's status", lambda c: read_status(c.engine), {}),
    *(
        (f"export {name} of a day", (lambda c, n=name: _export(c, n)), {})
        for name in ("connector_status", "measurement", "poll_cycle", "poll_gap")
    ),
    # last: it folds into the rollups (deleting nothing: every row is younger than 7 days
    # before SINCE), which the queries above do not read
    ("the rollups' and retention's pass", _storage_pass, {}),
]


# issue 18's two queries that must stay fast on cold pages: read from the index alone (0013),
# a session's rows lying on a few adjacent index pages instead of hundreds of table pages
INDEX_ONLY = frozenset(
    {
        "a session's polls (load_polls without since) and their phases",
        "a session's polls since a time",
    }
)


async def test_the_code_s_queries_use_an_index(engine: tuple[AsyncEngine, Captured]) -> None:
    eng, captured = engine
    problems: list[str] = []
    async with eng.connect() as conn:
        for what, call, expected in QUERIES:
            captured.statements.clear()
            await call(conn)
            if not captured.statements:
                problems.append(f"{what}: no SELECT captured")
            used: dict[str, set[str | None]] = {}
            for statement, parameters in list(captured.statements):
                plans = await explain(conn, statement, parameters)
                if scans(plans):
                    problems.append(f"{what}: a full scan in\n{statement}\n{plans}")
                for p in plans:
                    used.setdefault(p.table, set()).add(p.key)
                    if what in INDEX_ONLY and p.table in GROWING and not p.index_only:
                        problems.append(f"{what}: {p.table} rows read from the table: {p}")
            for table, key in expected.items():
                if key not in used.get(table, set()):
                    problems.append(f"{what}: {table} read by {used.get(table)}, not {key}")
    assert not problems, "\n".join(problems)


async def test_research_queries_of_issue_18_use_an_index(
    engine: tuple[AsyncEngine, Captured],
) -> None:
    eng, _ = engine
    sid = KEY[2]
    day = (f"'{SINCE:%Y-%m-%d %H:%M:%S}'", f"'{UNTIL:%Y-%m-%d %H:%M:%S}'")
    expected = {
        "phase currents by session id": (
            f"SELECT date_created, phase, `current` FROM measurement WHERE session_id = {sid} "
            "ORDER BY date_created",
            "ix_measurement_session_id",
        ),
        "one session's phases by charger, connector, time": (
            "SELECT date_created, phase, `current` FROM measurement "
            f"WHERE charge_point_id = '{KEY[0]}' AND connector_id = {KEY[1]} "
            f"AND date_created >= {day[0]} AND date_created < {day[1]}",
            "ix_measurement_connector_time",
        ),
        "a day's energy per connector": (
            "SELECT charge_point_id, connector_id, SUM(`current` * voltage) FROM measurement "
            f"WHERE date_created >= {day[0]} AND date_created < {day[1]} "
            "GROUP BY charge_point_id, connector_id",
            "ix_measurement_date_created",
        ),
    }
    async with eng.connect() as conn:
        for what, (sql, key) in expected.items():
            plans = await explain(conn, sql)
            assert not scans(plans), f"{what}: {plans}"
            assert key in {p.key for p in plans}, f"{what}: {plans}"


def grafana_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        (panel["title"], target["rawSql"])
        for panel in dashboard["panels"]
        if panel.get("datasource", {}).get("type") == "mysql"
        for target in panel["targets"]
    ]


async def test_grafana_panels_use_an_index(engine: tuple[AsyncEngine, Captured]) -> None:
    eng, _ = engine
    start = int((SINCE - datetime(1970, 1, 1)).total_seconds())
    async with eng.connect() as conn:
        await conn.execute(text("SET time_zone = '+00:00'"))
        for title, sql in grafana_queries():
            plans = await explain(conn, expand_macros(sql, start, start + 6 * 3600))
            assert not scans(plans), f"panel {title!r}: {plans}"
