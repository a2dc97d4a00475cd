"""Streaming export of a table (or the sessions) for a time range: CSV, JSON Lines, Parquet.

Rows are read with a server-side cursor (``stream`` + ``yield_per``) and written chunk by
chunk, so exporting a year of measurements holds one chunk in memory, not the year.  Times
are stored as naive UTC; they are written with their offset, as ISO 8601
(``2026-01-05T07:00:00+00:00``) in CSV and JSON Lines and as timestamps with time zone UTC in
Parquet, so no reader takes them for local time.  NULL is an empty CSV field, ``null`` in
JSON and a null in Parquet.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import BigInteger, DateTime, Float, Integer, Select, Table, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.storage.schema import charging_session, metadata

FORMATS = ("csv", "jsonl", "parquet")
CHUNK_ROWS = 10_000
PYARROW_MISSING = (
    "Parquet export needs pyarrow: pip install pyarrow (in a checkout of charged: "
    "pip install '.[parquet]'), or choose --format csv/jsonl"
)

# The column a time range filters on, per table.
TIME_COLUMNS = {
    "charge_point_status": "last_seen",
    "connector_status": "date_created",
    "measurement": "date_created",
    "poll_cycle": "tick_time",
    "poll_gap": "tick_time",
    "charge_point_availability": "tick_time",
    "control_action": "created",
    "charging_session": "start_time",
    "balancer_decision": "tick_time",
    "balancer_fuse": "tick_time",
    "meter_reading": "read_at",
    "power_window": "tick_time",
    "measurement_rollup": "bucket_start",
    "connector_status_rollup": "bucket_start",
    "rollup_state": "updated",
}
ALIASES = {"sessions": "charging_session"}


class ExportError(Exception):
    """A bad export request: one line saying what to do."""


def table_named(name: str) -> Table:
    real = ALIASES.get(name, name)
    if real not in metadata.tables:
        known = ", ".join(sorted([*ALIASES, *metadata.tables]))
        raise ExportError(f"no table named {name!r}; choose one of: {known}")
    return metadata.tables[real]


def export_query(table: Table, since: datetime | None, until: datetime | None) -> Select[Any]:
    """The table's rows in [since, until) of its time column, oldest first.

    Sessions are taken when they overlap the range (started before ``until`` and not ended
    before ``since``), so a session running at midnight belongs to both days.
    """
    query = select(table)
    if table is charging_session:
        if until is not None:
            query = query.where(table.c.start_time < until)
        if since is not None:
            query = query.where((table.c.end_time.is_(None)) | (table.c.end_time >= since))
        return query.order_by(table.c.start_time, table.c.id)
    column = table.c[TIME_COLUMNS[table.name]]
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    order = [column, *([table.c.id] if "id" in table.c and column.name != "id" else [])]
    return query.order_by(*order)


# raw table -> its 15-minute rollup, kept once retention.raw_days deleted the raw rows
ROLLUP_OF = {"measurement": "measurement_rollup", "connector_status": "connector_status_rollup"}


async def rollup_instead(
    engine: AsyncEngine, table: Table, since: datetime | None, until: datetime | None
) -> Table | None:
    """The rollup table to export when ``table`` holds no raw row in [since, until) but its
    rollup does (the retention deleted them), else None.  Needs a range: without one the
    raw rows that are left are what was asked for."""
    if table.name not in ROLLUP_OF or (since is None and until is None):
        return None
    rollup = metadata.tables[ROLLUP_OF[table.name]]
    async with engine.connect() as conn:
        present = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        if rollup.name not in present:
            return None
        raw = export_query(table, since, until).with_only_columns(table.c.id).limit(1)
        if await conn.scalar(raw) is not None:
            return None
        rolled = export_query(rollup, since, until).with_only_columns(rollup.c.id).limit(1)
        return rollup if await conn.scalar(rolled) is not None else None


class Sink(Protocol):
    def write(self, rows: Sequence[Sequence[Any]]) -> None: ...

    def close(self) -> None: ...


def _utc(moment: datetime) -> datetime:
    """A stored (naive UTC) time as an aware one; an aware one converted to UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value).isoformat(timespec="seconds")  # 2026-01-05T07:00:00+00:00
    return value


# A spreadsheet runs a cell that begins with one of these as a formula (a charger named
# "=HYPERLINK(…)" in the vendor app would run in the researcher's spreadsheet).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: Any) -> Any:
    """A text cell a spreadsheet would run, prefixed with ``'`` so it shows as text.

    Only text is touched: numbers (``-3.5`` in a numeric column) arrive as int/float and
    stay numbers; times are written without a sign.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class CsvSink:
    def __init__(
        self, out: IO[str], columns: Sequence[str], *, neutralise_formulas: bool = True
    ) -> None:
        self._writer = csv.writer(out, lineterminator="\n")
        self._writer.writerow(columns)
        self._neutralise = neutralise_formulas

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        # csv writes None as an empty field and floats in their shortest exact form
        if self._neutralise:
            cells = [[neutralise_formula(_text(v)) for v in row] for row in rows]
        else:
            cells = [[_text(v) for v in row] for row in rows]
        self._writer.writerows(cells)

    def close(self) -> None:
        pass


class JsonLinesSink:
    def __init__(self, out: IO[str], columns: Sequence[str]) -> None:
        self._out = out
        self._columns = list(columns)

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        self._out.writelines(
            json.dumps(dict(zip(self._columns, map(_text, row), strict=True))) + "\n"
            for row in rows
        )

    def close(self) -> None:
        pass


class ParquetSink:
    """One row group per chunk, with a schema taken from the table's column types."""

    def __init__(self, path: Path, table: Table) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ExportError(PYARROW_MISSING) from None
        self._pa = pa
        self._columns = [c.name for c in table.columns]
        self._schema = pa.schema([(c.name, _arrow_type(pa, c.type)) for c in table.columns])
        self._writer = pq.ParquetWriter(str(path), self._schema)

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        arrays = [
            self._pa.array(
                [_utc(v) if isinstance(v, datetime) else v for v in column], type=field.type
            )
            for column, field in zip(zip(*rows, strict=True), self._schema, strict=True)
        ]
        self._writer.write_table(self._pa.Table.from_arrays(arrays, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


def _arrow_type(pa: Any, column_type: Any) -> Any:
    if isinstance(column_type, DateTime):
        return pa.timestamp("s", tz="UTC")  # stored naive, always UTC: say so in the file
    if isinstance(column_type, Integer | BigInteger):
        return pa.int64()
    if isinstance(column_type, Float):  # Double is a Float
        return pa.float64()
    return pa.string()


def guess_format(path: str | None, explicit: str | None) -> str:
    if explicit:
        return explicit
    suffix = Path(path).suffix.lower() if path and path != "-" else ""
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}.get(suffix, "csv")


async def export_table(
    engine: AsyncEngine,
    table: Table,
    *,
    fmt: str,
    out: IO[str] | None,
    path: Path | None,
    since: datetime | None = None,
    until: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
    neutralise_formulas: bool = True,
) -> int:
    """Write the table's rows in the range to ``out`` (CSV/JSON Lines) or ``path``; → rows.

    In CSV, text cells a spreadsheet would run as a formula are neutralised unless
    ``neutralise_formulas`` is false (:func:`neutralise_formula`); JSONL and Parquet are exact.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    columns = [c.name for c in table.columns]
    sink: Sink
    if fmt == "parquet":
        if path is None:
            raise ExportError("Parquet is binary: give a file with -o FILE.parquet")
        sink = ParquetSink(path, table)
    else:
        assert out is not None
        if fmt == "csv":
            sink = CsvSink(out, columns, neutralise_formulas=neutralise_formulas)
        else:
            sink = JsonLinesSink(out, columns)
    rows = 0
    try:
        query = export_query(table, since, until).execution_options(yield_per=chunk_rows)
        async with engine.connect() as conn:
            result = await conn.stream(query)
            async for chunk in result.partitions(chunk_rows):
                sink.write([tuple(r) for r in chunk])
                rows += len(chunk)
    finally:
        sink.close()
    return rows
