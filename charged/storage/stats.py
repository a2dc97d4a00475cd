"""`charged db stats`: rows and bytes per table, and how much each grows per day.

Rows: on MySQL/MariaDB the server's estimate (information_schema, what InnoDB keeps; an
exact COUNT(*) of a year's table reads all of it), on SQLite an exact count.  Bytes: data
plus indexes (MySQL: information_schema; SQLite: the dbstat table, where compiled in).
Growth per day: the rows of the last ``days`` days before the table's newest row, counted
through the index on its time column, divided by ``days``; bytes per day are those rows at
the table's average bytes per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from charged.storage.schema import metadata

# each table's time column: when its row was polled or made
TIME_COLUMNS: dict[str, str] = {
    "connector_status": "date_created",
    "measurement": "date_created",
    "poll_cycle": "tick_time",
    "poll_gap": "tick_time",
    "charge_point_availability": "tick_time",
    "balancer_decision": "tick_time",
    "balancer_fuse": "tick_time",
    "control_action": "created",
    "charging_session": "start_time",
    "charge_point_status": "last_seen",
    "meter_reading": "read_at",
    "power_window": "tick_time",
    "measurement_rollup": "bucket_start",
    "connector_status_rollup": "bucket_start",
}
GROWTH_DAYS = 7


@dataclass(frozen=True)
class TableStats:
    table: str
    rows: int
    rows_estimated: bool  # the server's estimate, not a count
    bytes: int | None  # data + indexes; None where the database does not say
    newest: datetime | None
    rows_per_day: float | None

    @property
    def bytes_per_day(self) -> float | None:
        if self.bytes is None or self.rows_per_day is None or self.rows <= 0:
            return None
        return self.bytes / self.rows * self.rows_per_day


async def table_stats(conn: AsyncConnection, days: int = GROWTH_DAYS) -> list[TableStats]:
    """One line per table of the schema that exists in the database, in schema order."""
    existing = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    mysql = conn.dialect.name in ("mysql", "mariadb")
    sizes = await (_mysql_sizes(conn) if mysql else _sqlite_sizes(conn))
    out = []
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue
        if mysql and table.name in sizes:
            rows, size = sizes[table.name]
            estimated = True
        else:
            rows = int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            size, estimated = (sizes.get(table.name, (0, None))[1], False)
        newest, per_day = None, None
        column_name = TIME_COLUMNS.get(table.name)
        if column_name is not None:
            column = table.c[column_name]
            newest = (await conn.execute(select(func.max(column)))).scalar()
            if newest is not None:
                since = newest - timedelta(days=days)
                recent = await conn.execute(
                    select(func.count()).select_from(table).where(column > since)
                )
                per_day = int(recent.scalar_one()) / days
        out.append(TableStats(table.name, rows, estimated, size, newest, per_day))
    return out


async def _mysql_sizes(conn: AsyncConnection) -> dict[str, tuple[int, int | None]]:
    result = await conn.execute(
        text(
            "SELECT table_name, table_rows, data_length + index_length FROM "
            "information_schema.tables WHERE table_schema = DATABASE()"
        )
    )
    return {str(name): (int(rows or 0), int(size or 0)) for name, rows, size in result}


async def _sqlite_sizes(conn: AsyncConnection) -> dict[str, tuple[int, int | None]]:
    """Bytes per table with its indexes, from dbstat; empty where SQLite lacks it."""
    try:
        result = await conn.execute(
            text(
                "SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat AS s "
                "JOIN sqlite_master AS m ON m.name = s.name GROUP BY m.tbl_name"
            )
        )
    except Exception:  # dbstat is a compile-time option of SQLite
        return {}
    return {str(name): (0, int(size or 0)) for name, size in result}


def _size(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def format_stats(stats: list[TableStats], days: int = GROWTH_DAYS) -> list[str]:
    headers = ["TABLE", "ROWS", "SIZE", "ROWS/DAY", "SIZE/DAY", "NEWEST"]
    cells: list[list[str]] = []
    for s in stats:
        cells.append(
            [
                s.table,
                ("≈" if s.rows_estimated else "") + f"{s.rows:,}",
                _size(s.bytes),
                "-" if s.rows_per_day is None else f"{s.rows_per_day:,.0f}",
                _size(s.bytes_per_day),
                "-" if s.newest is None else f"{s.newest:%Y-%m-%d %H:%M}",
            ]
        )
    total = sum(s.bytes or 0 for s in stats)
    daily = sum(s.bytes_per_day or 0 for s in stats)
    cells.append(["total", "", _size(total), "", _size(daily), ""])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def line(row: list[str]) -> str:
        parts = [
            c.ljust(w) if i == 0 or i == len(row) - 1 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    notes = [
        f"per day: the rows of the {days} days before each table's newest row, / {days}; "
        "size per day at the table's average bytes per row (indexes included)"
    ]
    if any(s.rows_estimated for s in stats):
        notes.append("≈: the server's estimate of the rows (InnoDB), not a count")
    if any(s.bytes is None for s in stats):
        notes.append("-: this SQLite has no dbstat table, so sizes are not known")
    return [line(headers), *(line(c) for c in cells), *(f"note: {n}" for n in notes)]


def stats_json(stats: list[TableStats]) -> list[dict[str, Any]]:
    return [
        {
            "table": s.table,
            "rows": s.rows,
            "rowsEstimated": s.rows_estimated,
            "bytes": s.bytes,
            "rowsPerDay": s.rows_per_day,
            "bytesPerDay": s.bytes_per_day,
            "newest": None if s.newest is None else s.newest.isoformat() + "Z",
        }
        for s in stats
    ]
