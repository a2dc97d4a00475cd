"""Idempotent bulk writes: one INSERT statement per table per call, executed as executemany.

Rows are plain dicts keyed by column name (never ``id``).  A row whose natural key is already
stored is skipped without a warning: MySQL gets ``INSERT … ON DUPLICATE KEY UPDATE k = k`` (a
no-op that, unlike ``INSERT IGNORE``, raises no per-row duplicate-key warning), SQLite gets
``ON CONFLICT DO NOTHING``.  ``charge_point_status`` is upserted on ``id``, updating only the
columns the rows carry, so a status row does not null the name an owned-list row stored.

Skipped is not silent, though: :func:`write_rows` returns how many rows the database left
out as duplicates (from the affected-row counts; MySQL connections are opened without
``CLIENT_FOUND_ROWS`` for that, see :mod:`charged.storage.engine`), so a replay, a second
collector or a wall clock stepped back shows in ``charged_rows_duplicate_total``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from asyncmy.converters import escape_datetime, escape_string
from sqlalchemy import DateTime, Table
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from charged.storage.engine import StorageError
from charged.storage.schema import NATURAL_KEYS, UPSERT_KEYS, WRITE_ORDER, metadata

# The queue item: table name -> rows.  One item is typically one charger's rows of one tick.
RowBatch = Mapping[str, Sequence[Mapping[str, Any]]]

WRITABLE_TABLES: frozenset[str] = frozenset(NATURAL_KEYS) | frozenset(UPSERT_KEYS)


async def write_rows(
    conn: AsyncConnection, table_name: str, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Insert ``rows`` into ``table_name`` idempotently, in the caller's transaction; → how
    many the database skipped because a row with their key is stored (0 for the upserted
    table: a row there updates what is stored).

    Rows with different column sets are sent as one statement per column set (a statement's
    columns are fixed); in the collector's flow that is still one statement per table.
    """
    if not rows:
        return 0
    if table_name in UPSERT_KEYS:
        rows = _coalesced(rows, UPSERT_KEYS[table_name])
    first = rows[0].keys()
    if all(row.keys() == first for row in rows):
        inserted = await _write_group(conn, table_name, tuple(sorted(first)), rows)
    else:
        by_keys: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
        for row in rows:
            by_keys.setdefault(tuple(sorted(row)), []).append(row)
        inserted = 0
        for keys, group in by_keys.items():
            inserted += await _write_group(conn, table_name, keys, group)
    if table_name in UPSERT_KEYS:
        return 0
    # a driver that cannot say (rowcount -1) must not make duplicates up
    return max(0, len(rows) - inserted) if inserted >= 0 else 0


def _coalesced(rows: Sequence[Mapping[str, Any]], key: tuple[str, ...]) -> list[Mapping[str, Any]]:
    """One row per key of an upserted table: its rows merged in order, a later row's columns
    over an earlier one's.  Rows with different column sets go out as separate statements,
    and statement order is not row order, so without this an Offline row (no ``last_seen``)
    written after the Online rows of the same batch could outlive the newer Online one."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        k = tuple(row.get(c) for c in key)  # a row without its key fails in statement()
        if k in merged:
            merged[k].update(row)
        else:
            merged[k] = dict(row)
    return list(merged.values())


async def _write_group(
    conn: AsyncConnection,
    table_name: str,
    columns: tuple[str, ...],
    rows: Sequence[Mapping[str, Any]],
) -> int:
    """→ the rows the database reports affected (new rows, for the insert-only tables)."""
    stmt = statement(conn.dialect.name, table_name, columns)
    plan = _mysql_plan(conn.dialect, table_name, columns)
    if plan is None:
        result = await conn.execute(stmt, list(rows))
        return int(result.rowcount)
    return await _write_pipelined(conn, plan, rows)


# -- MySQL: the same statement, rendered and sent without per-row SQLAlchemy work ---------
#
# Profiling the writer (bench/README.md) showed half its CPU in SQLAlchemy's executemany
# path (per-row parameter processing) and the rest in the driver's escaping, with the
# database idle meanwhile.  For MySQL the rows are rendered here with the driver's own
# escaping into multi-row INSERTs of at most MYSQL_ROWS_PER_STATEMENT rows, and the next
# statement is rendered while the server executes the previous one.  Statements still go
# through SQLAlchemy (exec_driver_sql) so errors are wrapped and disconnects handled as usual.

MYSQL_ROWS_PER_STATEMENT = 500
# The status flag a MySQL/MariaDB server sets while the session's sql_mode has
# NO_BACKSLASH_ESCAPES (the protocol's SERVER_STATUS_NO_BACKSLASH_ESCAPES).
SERVER_STATUS_NO_BACKSLASH_ESCAPES = 0x0200


@dataclass(frozen=True, slots=True)
class _MysqlPlan:
    prefix: str  # INSERT INTO t (a, b) VALUES
    suffix: str  # ON DUPLICATE KEY UPDATE …
    values: Callable[[Mapping[str, Any]], tuple[Any, ...]]  # row → values in column order


_PLANS: dict[tuple[Any, ...], _MysqlPlan | None] = {}


def _mysql_plan(dialect: Dialect, table_name: str, columns: tuple[str, ...]) -> _MysqlPlan | None:
    """How to render rows for ``columns`` of ``table_name``; None: use the Core executemany."""
    if dialect.name not in ("mysql", "mariadb"):
        return None
    key = (dialect.name, dialect.server_version_info, table_name, columns)
    if key not in _PLANS:
        _PLANS[key] = _make_plan(dialect, table_name, columns)
    return _PLANS[key]


def _make_plan(dialect: Dialect, table_name: str, columns: tuple[str, ...]) -> _MysqlPlan | None:
    compiled = statement(dialect.name, table_name, columns).compile(
        dialect=dialect, column_keys=list(columns)
    )
    order = compiled.positiontup
    if dialect.paramstyle != "format" or order is None or len(order) != len(columns):
        return None
    # A column whose type converts values before the driver sees them keeps the Core path.
    if any(name in compiled._bind_processors for name in order):
        return None
    sql = str(compiled)
    if "%%" in sql:  # the text goes to the driver unformatted, so an escaped % would stay %%
        return None
    placeholders = "(" + ", ".join(["%s"] * len(order)) + ")"
    if sql.count(placeholders) != 1:
        return None
    prefix, suffix = sql.split(placeholders)
    names = tuple(order)
    table = metadata.tables[table_name]
    times = tuple(i for i, n in enumerate(names) if isinstance(table.c[n].type, DateTime))
    if not times:
        return _MysqlPlan(prefix, suffix, lambda row: tuple([row[n] for n in names]))

    def values(row: Mapping[str, Any]) -> tuple[Any, ...]:
        found = [row[n] for n in names]
        for i in times:
            value = found[i]
            if type(value) is datetime and value.tzinfo is None:
                found[i] = _datetime_text(value)
        return tuple(found)

    return _MysqlPlan(prefix, suffix, values)


# A naive datetime's text as the driver writes it, by value.  The driver formats every
# datetime anew (~1.6 us, half the escaping of a status row, and a tick's rows share one
# poll time); the same text as a str renders the very same SQL (checked once per value:
# escaping it leaves it unchanged, in either escaping mode, as for any date and time).
_DATETIME_TEXT: dict[datetime, str | datetime] = {}
_DATETIME_TEXT_MAX = 4096


def _datetime_text(value: datetime) -> str | datetime:
    text = _DATETIME_TEXT.get(value)
    if text is None:
        inner = escape_datetime(value)[1:-1]  # the driver's own "'YYYY-MM-DD hh:mm:ss'"
        plain = escape_string(inner) == inner and "'" not in inner
        if len(_DATETIME_TEXT) >= _DATETIME_TEXT_MAX:
            _DATETIME_TEXT.clear()
        text = _DATETIME_TEXT[value] = inner if plain else value
    return text


async def _write_pipelined(
    conn: AsyncConnection, plan: _MysqlPlan, rows: Sequence[Mapping[str, Any]]
) -> int:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    sending: asyncio.Future[Any] | None = None
    affected = 0
    try:
        for start in range(0, len(rows), MYSQL_ROWS_PER_STATEMENT):
            chunk = rows[start : start + MYSQL_ROWS_PER_STATEMENT]
            escape = _row_escaper(driver)
            # Rendered while the server still executes the previous statement.
            sql = plan.prefix + ",".join([escape(plan.values(r)) for r in chunk]) + plan.suffix
            if sending is not None:
                previous, sending = sending, None
                affected += (await previous).rowcount
            # no_parameters: the driver gets no parameter tuple, so it does no %-formatting
            # of the text (a % in a value stays a %).
            sending = asyncio.ensure_future(
                conn.exec_driver_sql(sql, execution_options={"no_parameters": True})
            )
            await asyncio.sleep(0)  # let it send the statement before rendering the next
        if sending is not None:
            previous, sending = sending, None
            affected += (await previous).rowcount
        return affected
    finally:
        if sending is not None:  # leaving with an error: do not leave the statement running
            sending.cancel()
            # wait() neither raises its outcome nor swallows a cancellation of this task
            await asyncio.wait({sending})
            if not sending.cancelled():
                sending.exception()  # retrieved: the error we are leaving with tells the story


def _row_escaper(driver: Any) -> Callable[[tuple[Any, ...]], str]:
    """Renders one row's values as ``(v1, v2, …)`` for the mode the connection is in now.

    The driver's ``escape`` of a whole tuple always escapes text with backslashes; under
    ``NO_BACKSLASH_ESCAPES`` a backslash is an ordinary character and only a doubled quote
    escapes, so ``O'Brien`` would end the literal early (a syntax error for the whole batch)
    and a backslash would be stored doubled.  The server reports the mode in every answer's
    status flags (which is how MySQL's own C client escapes too); the driver's per-value
    ``literal`` follows them, so under that mode each value goes through it.  The tuple path
    stays for the default mode: it is the faster one (bench/writer_bench.py).
    """
    if driver.server_status & SERVER_STATUS_NO_BACKSLASH_ESCAPES:
        literal = driver.literal
        return lambda values: "(" + ",".join([literal(v) for v in values]) + ")"
    escape: Callable[[tuple[Any, ...]], str] = driver.escape
    return escape


def ordered_tables(table_names: Sequence[str] | set[str]) -> list[str]:
    """``table_names`` in write order: charge points first, unknown names last (sorted)."""
    known = [t for t in WRITE_ORDER if t in table_names]
    return known + sorted(set(table_names) - set(WRITE_ORDER))


# Statements are immutable and depend only on these arguments, so build each one once (the
# compiled form is then cached by SQLAlchemy too); a later benchmark measures rows/s here.
@lru_cache(maxsize=256)
def statement(dialect: str, table_name: str, columns: tuple[str, ...]) -> Insert:
    """The idempotent INSERT for ``columns`` of ``table_name`` on ``dialect``."""
    table = _table(table_name, columns)
    if table_name in UPSERT_KEYS:
        return _upsert(dialect, table, UPSERT_KEYS[table_name], columns)
    return _insert_new_only(dialect, table, NATURAL_KEYS[table_name])


def _table(table_name: str, columns: tuple[str, ...]) -> Table:
    if table_name not in WRITABLE_TABLES:
        raise StorageError(
            f"no writable table named {table_name!r}; rows must go to one of "
            f"{', '.join(sorted(WRITABLE_TABLES))}"
        )
    table = metadata.tables[table_name]
    unknown = sorted(set(columns) - set(table.c.keys()))
    if unknown:
        raise StorageError(
            f"table {table_name} has no column(s) {', '.join(unknown)}; fix the row builder"
        )
    if "id" in columns and table_name not in UPSERT_KEYS:
        raise StorageError(f"rows for {table_name} must not carry 'id' (the database assigns it)")
    return table


def _insert_new_only(dialect: str, table: Table, key: tuple[str, ...]) -> Insert:
    if dialect in ("mysql", "mariadb"):
        # Assigning a key column to itself changes nothing and, unlike INSERT IGNORE, makes
        # the driver report no warning per duplicate row.
        mysql_stmt = mysql.insert(table)
        return mysql_stmt.on_duplicate_key_update({key[0]: table.c[key[0]]})
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(key))
    raise StorageError(f"unsupported database dialect {dialect!r}; use MySQL/MariaDB or SQLite")


def _upsert(dialect: str, table: Table, key: tuple[str, ...], columns: tuple[str, ...]) -> Insert:
    missing = [k for k in key if k not in columns]
    if missing:
        raise StorageError(
            f"rows for {table.name} must carry {', '.join(missing)} (the key they update by)"
        )
    updated = [c for c in columns if c not in key]
    if dialect in ("mysql", "mariadb"):
        mysql_stmt = mysql.insert(table)
        if not updated:
            return mysql_stmt.on_duplicate_key_update({key[0]: table.c[key[0]]})
        return mysql_stmt.on_duplicate_key_update({c: mysql_stmt.inserted[c] for c in updated})
    if dialect == "sqlite":
        sqlite_stmt = sqlite.insert(table)
        if not updated:
            return sqlite_stmt.on_conflict_do_nothing(index_elements=list(key))
        return sqlite_stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: sqlite_stmt.excluded[c] for c in updated}
        )
    raise StorageError(f"unsupported database dialect {dialect!r}; use MySQL/MariaDB or SQLite")
