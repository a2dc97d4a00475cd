"""The queries of issue 18 on a synthetic garage history, before and after migrations 0011
and 0013.

``python -m bench.queries [--chargers 30] [--days 92] [--repeats 5]``

Builds a garage history in MariaDB (database ``charged_bench_queries``, created and dropped)
at revision 0010 with INSERT … SELECT, a day per statement, in time order as the collector
writes it: every charger has two connectors polled every 30 s; each connector has one
session a day (connected 10 h, charging the first 8 h at 16 A on three phases, staggered by
charger), so measurement holds about as many rows as connector_status; one charging_session
row per session with one of 40 RFID tags.  Then it times each query ``--repeats`` times
(**cold**: each repeat of each query of each pass on a session or day no earlier query read,
drawn from a fixed shuffle, so its pages are not in the buffer pool unless the query itself
brought them in; **warm**: the same query again at once), applies migration 0011 (the
indexes) while a writer inserts a tick of rows every second (the longest insert during the
migration is reported: the lock it waited for), times the queries again, then 0012 and 0013
(the covering indexes, again with the writer) and times them a third time, with each index's
size.  Then it folds the history into the 15-minute rollups, times a day's energy per
connector from them, and runs the retention over the first week (raw rows deleted in
batches) with the writer inserting again.  Everything in one run, on one database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bench.database import DEFAULT_SERVER, Server
from bench.machine import describe, mariadb_version
from charged.analysis import plot_data
from charged.analysis.energy_report import energy_by
from charged.sessions import store as session_store
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.rollup import Rollups, energy_per_connector

DATABASE = "charged_bench_queries"
BEFORE = "0010"  # the revision before the indexes
INDEXES = "0011"  # the indexes that fit the queries
ROLLUPS = "0012"  # the rollup tables
COVERING = "0013"  # the covering indexes for a session's phases and polls
START = datetime(2025, 1, 1)
POLL_S = 30
TICKS_PER_DAY = 86400 // POLL_S
CONNECTED_H, CHARGING_H = 10, 8
TAGS = 40


def session_id(slot: int, day: int) -> int:
    """slot: charger number × 2 + connector - 1."""
    return 1_000_000_000 + slot * 10_000 + day


def first_hour(slot: int) -> int:
    return 5 + slot % 8  # sessions begin between 05:00 and 12:00


# ------------------------------------------------------------------------------ building


async def build(engine: AsyncEngine, chargers: int, days: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE bench_tick (i INT PRIMARY KEY)"))
        await conn.execute(text("INSERT INTO bench_tick VALUES (0)"))
        size = 1
        while size < TICKS_PER_DAY:
            await conn.execute(
                text("INSERT INTO bench_tick SELECT i + :n FROM bench_tick WHERE i + :n < :top"),
                {"n": size, "top": TICKS_PER_DAY},
            )
            size *= 2
        await conn.execute(
            text("CREATE TABLE bench_slot (slot INT PRIMARY KEY, cp VARCHAR(32), connector INT)")
        )
        await conn.execute(
            text("INSERT INTO bench_slot VALUES (:slot, :cp, :connector)"),
            [
                {"slot": 2 * n + c - 1, "cp": f"2301{n:06d}A", "connector": c}
                for n in range(chargers)
                for c in (1, 2)
            ],
        )
        await conn.execute(
            text(
                "INSERT INTO charge_point_status (id, status) "
                "SELECT DISTINCT cp, 'Online' FROM bench_slot"
            )
        )
    began = time.perf_counter()
    for day in range(days):
        async with engine.begin() as conn:
            await _one_day(conn, day)
        if day % 10 == 9 or day == days - 1:
            spent = time.perf_counter() - began
            print(f"  built {day + 1} of {days} days ({spent:.0f} s)", flush=True)
    async with engine.begin() as conn:
        await _sessions(conn, days)
        await conn.execute(text("DROP TABLE bench_tick"))
        await conn.execute(text("DROP TABLE bench_slot"))


async def _one_day(conn: AsyncConnection, day: int) -> None:
    # h: the hour since the slot's session began (negative before it)
    params = {"day": day, "start": START + timedelta(days=day), "poll": POLL_S}
    moment = "TIMESTAMPADD(SECOND, t.i * :poll, :start)"
    h = "(t.i * :poll / 3600.0 - (5 + s.slot % 8))"
    await conn.execute(
        text(
            "INSERT INTO connector_status (charge_point_id, connector_id, total_consumption_kwh, "
            "session_type, status, start_time, end_time, session_id, date_created, "
            "charging_power_kw) "
            f"SELECT s.cp, s.connector, "
            f"CASE WHEN {h} >= 0 AND {h} < {CONNECTED_H} "
            f"  THEN ROUND(LEAST({h}, {CHARGING_H}) * 11.0, 3) ELSE 0 END, "
            f"CASE WHEN {h} >= 0 AND {h} < {CONNECTED_H} THEN 'RFID' END, "
            f"CASE WHEN {h} >= 0 AND {h} < {CHARGING_H} THEN 'Charging' "
            f"  WHEN {h} >= 0 AND {h} < {CONNECTED_H} THEN 'SuspendedEV' "
            "  ELSE 'Available' END, "
            f"CASE WHEN {h} >= 0 AND {h} < {CONNECTED_H} THEN "
            "  DATE_FORMAT(TIMESTAMPADD(HOUR, 5 + s.slot % 8, :start), '%Y-%m-%dT%H:%i:%sZ') END, "
            "NULL, "
            f"CASE WHEN {h} >= 0 AND {h} < {CONNECTED_H} "
            "  THEN 1000000000 + s.slot * 10000 + :day END, "
            f"{moment}, "
            f"CASE WHEN {h} >= 0 AND {h} < {CHARGING_H} THEN 11.04 ELSE 0 END "
            "FROM bench_tick AS t CROSS JOIN bench_slot AS s ORDER BY t.i, s.slot"
        ),
        params,
    )
    await conn.execute(
        text(
            "INSERT INTO measurement (phase, `current`, voltage, connector_id, charge_point_id, "
            "session_id, date_created) "
            "SELECT p.phase, 16.0, 230.0, c.connector_id, c.charge_point_id, c.session_id, "
            "c.date_created FROM connector_status AS c "
            "CROSS JOIN (SELECT 'L1' AS phase UNION ALL SELECT 'L2' UNION ALL SELECT 'L3') AS p "
            "WHERE c.date_created >= :start AND c.date_created < TIMESTAMPADD(DAY, 1, :start) "
            "AND c.status = 'Charging' ORDER BY c.id, p.phase"
        ),
        params,
    )
    await conn.execute(
        text(
            "INSERT INTO poll_cycle (tick_time, chargers_asked, chargers_ok, chargers_failed, "
            "`rows`, duration_s) SELECT "
            f"{moment}, (SELECT COUNT(*) / 2 FROM bench_slot), "
            "(SELECT COUNT(*) / 2 FROM bench_slot), 0, 0, 0.2 FROM bench_tick AS t"
        ),
        params,
    )


async def _sessions(conn: AsyncConnection, days: int) -> None:
    for day in range(days):
        start = START + timedelta(days=day)
        await conn.execute(
            text(
                "INSERT INTO charging_session (charge_point_id, connector_id, session_id, "
                "session_type, start_time, end_time, energy_kwh, polls, gap_count, gap_s, "
                "first_poll, last_poll, rfid, user_id, reconciled_at, updated, connected_s, "
                "charging_s) SELECT s.cp, s.connector, 1000000000 + s.slot * 10000 + :day, "
                "'RFID', TIMESTAMPADD(HOUR, 5 + s.slot % 8, :start), "
                f"TIMESTAMPADD(HOUR, 5 + s.slot % 8 + {CONNECTED_H}, :start), "
                f"{CHARGING_H * 11.0}, {CONNECTED_H * 3600 // POLL_S}, 0, 0, "
                "TIMESTAMPADD(HOUR, 5 + s.slot % 8, :start), "
                f"TIMESTAMPADD(SECOND, -{POLL_S}, "
                f"TIMESTAMPADD(HOUR, 5 + s.slot % 8 + {CONNECTED_H}, :start)), "
                f"CONCAT('TAG', LPAD((s.slot + :day) % {TAGS}, 2, '0')), NULL, :start, :start, "
                f"{CONNECTED_H * 3600}, {CHARGING_H * 3600} FROM bench_slot AS s"
            ),
            {"day": day, "start": start},
        )


# ------------------------------------------------------------------------------ the queries


@dataclass
class Workload:
    chargers: int
    days: int
    repeats: int
    _sessions: list[tuple[int, int]] = field(default_factory=list, repr=False)
    _days: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        # Every (slot, day) of the last third of the history and every day after the first
        # week, each in a fixed shuffled order: the i-th is never an earlier one's (until the
        # list wraps), so no query finds a page an earlier query of the run brought in.
        order = random.Random(18)
        recent = range(self.days - max(1, self.days // 3), self.days)
        self._sessions = [(slot, day) for slot in range(2 * self.chargers) for day in recent]
        order.shuffle(self._sessions)
        self._days = list(range(min(7, self.days - 1), self.days))
        order.shuffle(self._days)

    def session(self, i: int) -> tuple[str, int, int, datetime, datetime]:
        """The i-th sampled session."""
        slot, day = self._sessions[i % len(self._sessions)]
        first = START + timedelta(days=day, hours=first_hour(slot))
        last = first + timedelta(hours=CONNECTED_H) - timedelta(seconds=POLL_S)
        return f"2301{slot // 2:06d}A", 1 + slot % 2, session_id(slot, day), first, last

    def day(self, i: int) -> datetime:
        return START + timedelta(days=self._days[i % len(self._days)])


async def q_phases(conn: AsyncConnection, w: Workload, i: int) -> int:
    cp, connector, _, first, last = w.session(i)
    return len(await session_store._phases(conn, cp, connector, first, last))


async def q_phases_by_session(conn: AsyncConnection, w: Workload, i: int) -> int:
    sid = w.session(i)[2]
    result = await conn.execute(
        text(
            "SELECT date_created, phase, `current` FROM measurement WHERE session_id = :sid "
            "ORDER BY date_created"
        ),
        {"sid": sid},
    )
    return len(result.all())


async def q_polls(conn: AsyncConnection, w: Workload, i: int) -> int:
    cp, connector, sid, _, _ = w.session(i)
    return len(await session_store.load_polls(conn, (cp, connector, sid), None))


async def q_day_energy(conn: AsyncConnection, w: Workload, i: int) -> int:
    day = w.day(i)
    result = await conn.execute(
        text(
            "SELECT charge_point_id, connector_id, SUM(`current` * voltage) * :poll / 3.6e6 "
            "FROM measurement WHERE date_created >= :day AND date_created < :next "
            "GROUP BY charge_point_id, connector_id"
        ),
        {"poll": POLL_S, "day": day, "next": day + timedelta(days=1)},
    )
    return len(result.all())


async def q_garage_day(conn: AsyncConnection, w: Workload, i: int) -> int:
    day = w.day(i)
    return len((await plot_data.garage_series(conn, day, day + timedelta(days=1))).times)


async def q_month_tags(conn: AsyncConnection, w: Workload, i: int) -> int:
    month = START + timedelta(days=30 * ((w.days // 30 - 1 - i) % max(1, w.days // 30)))
    until = month + timedelta(days=30)
    rows = await plot_data.find_sessions(conn, since=month, until=until)
    return len(energy_by(rows, "tag", month, until).lines)


Query = Callable[[AsyncConnection, Workload, int], Awaitable[int]]
QUERIES: list[tuple[str, Query, float | None]] = [
    ("one session's phases by (charger, connector, time), as the tracker reads them", q_phases, 50),
    ("phase currents by session id", q_phases_by_session, None),
    ("the polls of one session (`load_polls` without `since`, phases included)", q_polls, 50),
    ("a day's energy per connector (from measurement)", q_day_energy, 200),
    ("the garage series of one day (`garage_series`)", q_garage_day, None),
    ("a month's per-tag energy report (`find_sessions` + `energy_by`)", q_month_tags, 1000),
]


@dataclass
class Timing:
    cold: dict[str, float]  # median ms, each repeat on a session or day not read before
    warm: dict[str, float]  # median ms of the same query again right after (pages cached)


async def time_queries(engine: AsyncEngine, w: Workload, p: int, *, warm: bool) -> Timing:
    """Median ms per query in pass ``p``: every query of every pass has sessions and days of
    its own (cold), and with ``warm`` each is asked again at once (the pages in memory)."""
    cold: dict[str, float] = {}
    again: dict[str, float] = {}
    async with engine.connect() as conn:
        for q, (name, query, _) in enumerate(QUERIES):
            times: list[float] = []
            warm_times: list[float] = []
            for r in range(w.repeats):
                i = (p * len(QUERIES) + q) * w.repeats + r
                for into in (times, warm_times) if warm else (times,):
                    began = time.perf_counter()
                    found = await query(conn, w, i)
                    into.append((time.perf_counter() - began) * 1000)
                    assert found, f"{name}: nothing found (the synthetic data is wrong)"
            cold[name] = statistics.median(times)
            line = f"  {name}: cold {cold[name]:.1f} ms"
            if warm:
                again[name] = statistics.median(warm_times)
                line += f", warm {again[name]:.1f} ms"
            print(f"{line} ({found} rows last)", flush=True)
    return Timing(cold, again)


# ------------------------------------------------------------------------------ migrating


@dataclass
class WriterAlongside:
    """Inserts a tick's rows every second beside a migration or a retention pass; the longest
    insert is the longest it waited for a lock."""

    engine: AsyncEngine
    chargers: int
    days_ahead: int  # its ticks: this many days after the history (never a stored time)
    latencies: list[float] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        tick = START + timedelta(days=self.days_ahead)
        while not stop.is_set():
            rows = [
                {"cp": f"2301{n:06d}A", "c": c, "t": tick}
                for n in range(self.chargers)
                for c in (1, 2)
            ]
            began = time.perf_counter()
            async with self.engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO connector_status (charge_point_id, connector_id, status, "
                        "date_created) VALUES (:cp, :c, 'Available', :t)"
                    ),
                    rows,
                )
                await conn.execute(
                    text(
                        "INSERT INTO measurement (charge_point_id, connector_id, phase, "
                        "`current`, voltage, date_created) VALUES (:cp, :c, 'L1', 0, 230, :t)"
                    ),
                    rows,
                )
            self.latencies.append(time.perf_counter() - began)
            tick += timedelta(seconds=POLL_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def under_load(
    engine: AsyncEngine, chargers: int, work: Awaitable[Any], days_ahead: int
) -> tuple[float, Any]:
    """Run ``work`` while a writer inserts a tick every second → (seconds, the writer)."""
    writer = WriterAlongside(engine, chargers, days_ahead)
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    await asyncio.sleep(2.0)
    began = time.perf_counter()
    await work
    spent = time.perf_counter() - began
    stop.set()
    await task
    return spent, writer


def writer_line(spent: float, writer: WriterAlongside) -> str:
    worst = max(writer.latencies) if writer.latencies else 0.0
    return (
        f"{spent:.1f} s; writer: {len(writer.latencies)} ticks inserted, "
        f"median {statistics.median(writer.latencies) * 1000:.0f} ms, "
        f"longest {worst * 1000:.0f} ms"
    )


async def time_rollup_energy(engine: AsyncEngine, w: Workload) -> float:
    times = []
    async with engine.connect() as conn:
        for r in range(w.repeats):
            day = w.day(r)  # the rollups' pages: none of these was read before
            began = time.perf_counter()
            found = await energy_per_connector(conn, day, day + timedelta(days=1))
            times.append((time.perf_counter() - began) * 1000)
            assert len(found) == 2 * w.chargers, found
    return statistics.median(times)


RAW_TABLES = ("connector_status", "measurement", "charging_session")
ROLLUP_TABLES = ("measurement_rollup", "connector_status_rollup")


async def table_rows(
    engine: AsyncEngine, tables: tuple[str, ...] = RAW_TABLES
) -> dict[str, tuple[int, float]]:
    out = {}
    async with engine.connect() as conn:
        for table in tables:
            count = int((await conn.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar_one())
            size = (
                await conn.execute(
                    text(
                        "SELECT data_length + index_length FROM information_schema.tables "
                        "WHERE table_schema = DATABASE() AND table_name = :t"
                    ),
                    {"t": table},
                )
            ).scalar_one()
            out[table] = (count, float(size or 0) / 2**30)
    return out


async def index_sizes(engine: AsyncEngine, tables: tuple[str, ...]) -> list[tuple[str, str, float]]:
    """(table, index, GiB) from InnoDB's persistent statistics (after ANALYZE TABLE)."""
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT table_name, index_name, stat_value * @@innodb_page_size "
                "FROM mysql.innodb_index_stats WHERE database_name = DATABASE() "
                "AND stat_name = 'size' ORDER BY table_name, index_name"
            )
        )
        return [(t, i, float(b) / 2**30) for t, i, b in result if t in tables]


async def analyze(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        for table in (*RAW_TABLES, "poll_cycle", *ROLLUP_TABLES):
            if await conn.run_sync(lambda c, t=table: inspect(c).has_table(t)):
                await conn.execute(text(f"ANALYZE TABLE {table}"))


async def main(args: argparse.Namespace) -> None:
    server = Server.from_url(args.mysql_url)
    version = await mariadb_version(server.host, server.port, server.user, server.password)
    for line in describe(version):
        print(line)
    await server.admin(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    await server.admin(f"CREATE DATABASE `{DATABASE}`")
    url = server.url(DATABASE)
    engine = create_engine(url)
    try:
        await upgrade(url, BEFORE)
        print(f"building {args.chargers} chargers × {args.days} days at revision {BEFORE} …")
        began = time.perf_counter()
        await build(engine, args.chargers, args.days)
        print(f"  built in {time.perf_counter() - began:.0f} s")
        await analyze(engine)
        sizes = await table_rows(engine)
        for table, (count, gib) in sizes.items():
            print(f"  {table}: {count:,} rows, {gib:.2f} GiB")
        w = Workload(args.chargers, args.days, args.repeats)
        print(f"before (revision {BEFORE}):")
        before = await time_queries(engine, w, 0, warm=False)
        print(f"migrating to {INDEXES} with a writer inserting a tick every second …")
        spent, writer = await under_load(engine, args.chargers, upgrade(url, INDEXES), 4000)
        print(f"  migration {writer_line(spent, writer)}")
        await analyze(engine)
        print(f"after (revision {INDEXES}):")
        after = await time_queries(engine, w, 1, warm=True)
        for table, (count, gib) in (await table_rows(engine)).items():
            print(f"  {table}: {count:,} rows, {gib:.2f} GiB")
        await upgrade(url, ROLLUPS)
        print(f"migrating to {COVERING} with a writer inserting a tick every second …")
        spent, writer = await under_load(engine, args.chargers, upgrade(url, COVERING), 4500)
        print(f"  migration {writer_line(spent, writer)}")
        await analyze(engine)
        print(f"after (revision {COVERING}):")
        covered = await time_queries(engine, w, 2, warm=True)
        for table, (count, gib) in (await table_rows(engine)).items():
            print(f"  {table}: {count:,} rows, {gib:.2f} GiB")
        for table, index, gib in await index_sizes(engine, ("connector_status", "measurement")):
            print(f"    {table} {index}: {gib:.2f} GiB")
        await upgrade(url)
        print(f"folding the history into the rollups, {args.fold_batch:,} ids a transaction …")
        rollups = Rollups(engine, interval=POLL_S, batch_rows=args.fold_batch)
        end = START + timedelta(days=args.days)
        await rollups.run_pass(end)  # notes how far the tables reach
        began = time.perf_counter()
        folded = (await rollups.run_pass(end)).folded
        spent = time.perf_counter() - began
        rows = sum(folded.values())
        print(f"  {rows:,} rows folded in {spent:.0f} s ({rows / spent:,.0f} rows/s)")
        await analyze(engine)
        rollup_ms = await time_rollup_energy(engine, w)
        print(f"  a day's energy per connector from the rollups: {rollup_ms:.1f} ms")
        for table, (count, gib) in (await table_rows(engine, ROLLUP_TABLES)).items():
            print(f"  {table}: {count:,} rows, {gib:.3f} GiB")
        keep = args.days - 7
        print(f"retention: raw_days {keep} (the first 7 days go), a writer inserting meanwhile …")
        retention = Rollups(engine, interval=POLL_S, raw_days=keep)
        passed: list[Any] = []

        async def retain() -> None:
            passed.append(await retention.run_pass(end))

        spent, writer = await under_load(engine, args.chargers, retain(), 5000)
        deleted = sum(passed[0].deleted.values())
        print(f"  {deleted:,} raw rows deleted in {spent:.1f} s ({deleted / spent:,.0f} rows/s)")
        print(f"  retention pass {writer_line(spent, writer)}")
        print()
        print(
            f"| query | {BEFORE} cold | {INDEXES} cold | {INDEXES} warm | {COVERING} cold "
            f"| {COVERING} warm | target |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, _, target in QUERIES:
            goal = f"≤ {target:,.0f} ms" if target else "—"
            figures = (
                before.cold[name],
                after.cold[name],
                after.warm[name],
                covered.cold[name],
                covered.warm[name],
            )
            print(f"| {name} | " + " | ".join(f"{f:,.1f} ms" for f in figures) + f" | {goal} |")
        print(
            f"| a day's energy per connector, from measurement_rollup | — | — | — "
            f"| {rollup_ms:,.1f} ms | — | ≤ 200 ms |"
        )
    finally:
        await engine.dispose()
        if not args.keep:
            await server.admin(f"DROP DATABASE IF EXISTS `{DATABASE}`")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.queries", description=__doc__)
    parser.add_argument("--mysql-url", default=DEFAULT_SERVER)
    parser.add_argument("--chargers", type=int, default=30)
    parser.add_argument("--days", type=int, default=92)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--fold-batch", type=int, default=50_000, help="ids per transaction folding the history"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return parser


if __name__ == "__main__":
    asyncio.run(main(_parser().parse_args()))
