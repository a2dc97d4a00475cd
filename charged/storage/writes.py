"""Idempotent bulk writes: one INSERT statement per table per call, executed as executemany.

Rows are plain dicts keyed by column name (never ``id``).  A row whose natural key is already
stored is skipped without a warning: MySQL gets ``INSERT … ON DUPLICATE KEY UPDATE k = k`` (a
no-op that, unlike ``INSERT IGNORE``, raises no per-row duplicate-key warning), SQLite gets
``ON CONFLICT DO NOTHING``.  ``charge_point_status`` is upserted on ``id``, updating only the
columns the rows carry, so a status row does not null the name an owned-list row stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from charged.storage.engine import StorageError
from charged.storage.schema import NATURAL_KEYS, UPSERT_KEYS, WRITE_ORDER, metadata

# The queue item: table name -> rows.  One item is typically one charger's rows of one tick.
RowBatch = Mapping[str, Sequence[Mapping[str, Any]]]

WRITABLE_TABLES: frozenset[str] = frozenset(NATURAL_KEYS) | frozenset(UPSERT_KEYS)


async def write_rows(
    conn: AsyncConnection, table_name: str, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert ``rows`` into ``table_name`` idempotently, in the caller's transaction.

    Rows with different column sets are sent as one statement per column set (a statement's
    columns are fixed); in the collector's flow that is still one statement per table.
    """
    if not rows:
        return
    dialect = conn.dialect.name
    first = rows[0].keys()
    if all(row.keys() == first for row in rows):
        await conn.execute(statement(dialect, table_name, tuple(sorted(first))), list(rows))
        return
    by_keys: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        by_keys.setdefault(tuple(sorted(row)), []).append(row)
    for keys, group in by_keys.items():
        await conn.execute(statement(dialect, table_name, keys), group)


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
