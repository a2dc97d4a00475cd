"""15-minute rollups of the raw polls, kept forever, and the retention of the raw rows.

``measurement_rollup`` holds per connector, phase and quarter hour the samples, the sum and
the maximum of the current and the energy (∑ current × voltage × the poll interval);
``connector_status_rollup`` per connector, status and quarter hour the polls and the time
in that status.  Both are *additive*: a pass folds the raw rows stored since the previous
pass (by id, as the session tracker does), so every raw row is counted once, including rows
a spool replays long after their time.

Raw rows are folded up to the highest id seen at the *previous* pass, never up to the newest:
a transaction still open at a pass (ids are taken at insert, rows appear at commit) has
committed by the next one (passes are minutes apart; a write has ``writer.write_timeout``).

Retention deletes raw rows older than ``raw_days`` that are folded already, so a deleted raw
row is always in its rollup.  Folding and deleting go in transactions of ``batch_rows`` rows,
oldest first through the time index, with a pause between them: the writer's inserts (new
rows, at the other end of every index) never wait for more than one small transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    Table,
    cast,
    func,
    literal,
    select,
    text,
    true,
)
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from charged.clock import Clock
from charged.config_service import RetentionSettings
from charged.storage.engine import StorageError
from charged.storage.retention import PAUSE_S, Retention, delete_before, run_passes
from charged.storage.schema import (
    connector_status,
    connector_status_rollup,
    measurement,
    measurement_rollup,
    rollup_state,
)

BUCKET = timedelta(minutes=15)
_EPOCH = datetime(2000, 1, 1)


def bucket_of(moment: datetime) -> datetime:
    """The start of the quarter hour ``moment`` is in (naive UTC, as stored)."""
    return moment - (moment - _EPOCH) % BUCKET


@dataclass(frozen=True)
class PassResult:
    folded: dict[str, int]  # raw table -> rows folded into its rollup
    deleted: dict[str, int]  # raw table -> rows deleted by the retention


class Rollups:
    """Folds raw polls into the rollups and, with ``raw_days``, deletes old raw rows."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        interval: float,
        raw_days: int | None = None,
        batch_rows: int = 5000,
        pause: float = PAUSE_S,
    ) -> None:
        self._engine = engine
        self._interval = interval  # the poll interval: the time one sample stands for
        self._raw_days = raw_days
        self._batch = batch_rows
        self._pause = pause

    async def run(self, stop: asyncio.Event, clock: Clock, every: float, log: Any) -> None:
        """A pass every ``every`` seconds until ``stop`` (see ``retention.run_passes``)."""

        async def one_pass(now: datetime) -> dict[str, int]:
            return (await self.run_pass(now)).deleted

        await run_passes(stop, clock, every, log, one_pass)

    async def run_pass(self, now: datetime) -> PassResult:
        folded = {
            "measurement": await self._fold(measurement, _fold_measurement, now),
            "connector_status": await self._fold(connector_status, _fold_status, now),
        }
        deleted: dict[str, int] = {}
        if self._raw_days is not None:
            cutoff = now - timedelta(days=self._raw_days)
            for table in (measurement, connector_status):
                deleted[table.name] = await self._delete_before(table, cutoff)
        return PassResult(folded, deleted)

    # ------------------------------------------------------------------ folding

    async def _fold(self, raw: Table, fold: Any, now: datetime) -> int:
        """Fold the ids after the state's up to those the previous pass saw, a range of
        ``batch_rows`` ids per transaction (the database adds them up: INSERT … SELECT)."""
        async with self._engine.connect() as conn:
            folded_to, seen = await _state(conn, raw.name)
        total = 0
        while seen is not None and folded_to < seen:
            reached = min(seen, folded_to + self._batch)
            async with self._engine.begin() as conn:
                within = (raw.c.id > folded_to, raw.c.id <= reached)
                count = select(func.count()).select_from(raw).where(*within)
                total += int((await conn.execute(count)).scalar_one())
                await conn.execute(fold(conn.dialect.name, within, self._interval))
                await _set_state(conn, raw.name, now, folded_to=reached)
            folded_to = reached
            await asyncio.sleep(self._pause)
        async with self._engine.begin() as conn:
            newest = (await conn.execute(select(func.max(raw.c.id)))).scalar()
            await _set_state(conn, raw.name, now, seen=int(newest or 0))
        return total

    # ------------------------------------------------------------------ retention

    async def _delete_before(self, raw: Table, cutoff: datetime) -> int:
        async with self._engine.connect() as conn:
            folded_to, _ = await _state(conn, raw.name)
            newest = (await conn.execute(select(func.max(raw.c.id)))).scalar()
        # The newest row stays, whatever its age: deleting it could let the database hand its
        # id (SQLite's rowid, an old MySQL's AUTO_INCREMENT after a restart) to a new row,
        # which would then pass for one already folded.
        folded_to = min(folded_to, int(newest or 0) - 1)
        return await delete_before(
            self._engine,
            raw,
            "date_created",
            cutoff,
            batch_rows=self._batch,
            pause=self._pause,
            max_id=folded_to,
        )


def storage_pass(
    engine: AsyncEngine, settings: RetentionSettings, *, interval: float
) -> Callable[[datetime], Awaitable[dict[str, int]]] | None:
    """What ``charged run`` does every ``retention.interval``: fold the polls into the
    rollups and delete the raw rows older than ``raw_days`` (with ``rollups``), then the
    ``balancer_decision``, ``poll_gap``, ``balancer_fuse`` and ``power_window`` rows older than
    theirs; None if nothing is to be done.  The pass returns the rows deleted per table."""
    retained = {
        table: days
        for table, days in (
            ("balancer_decision", settings.decision_days),
            ("poll_gap", settings.gap_days),
            ("balancer_fuse", settings.fuse_days),
            ("power_window", settings.power_days),
        )
        if days is not None
    }
    if not settings.rollups and not retained:
        return None
    rollups = (
        Rollups(
            engine, interval=interval, raw_days=settings.raw_days, batch_rows=settings.batch_rows
        )
        if settings.rollups
        else None
    )
    others = Retention(engine, retained, batch_rows=settings.batch_rows)

    async def one_pass(now: datetime) -> dict[str, int]:
        deleted = (await rollups.run_pass(now)).deleted if rollups is not None else {}
        return deleted | await others.run_pass(now)

    return one_pass


async def _state(conn: AsyncConnection, name: str) -> tuple[int, int | None]:
    """(folded up to this id, the highest id seen at the previous pass or None)."""
    row = (
        await conn.execute(
            select(rollup_state.c.folded_to, rollup_state.c.seen).where(rollup_state.c.name == name)
        )
    ).first()
    if row is None:
        return 0, None
    return int(row.folded_to), None if row.seen is None else int(row.seen)


async def _set_state(
    conn: AsyncConnection,
    name: str,
    now: datetime,
    *,
    folded_to: int | None = None,
    seen: int | None = None,
) -> None:
    values: dict[str, Any] = {
        k: v for k, v in (("folded_to", folded_to), ("seen", seen)) if v is not None
    }
    values["updated"] = now.replace(microsecond=0)
    row = {"name": name, "folded_to": 0, **values}
    await conn.execute(_upsert(conn.dialect.name, rollup_state, ("name",), values, add=()), row)


def _upsert(
    dialect: str,
    table: Table,
    key: Sequence[str],
    columns: Any,
    *,
    add: Sequence[str],
    greatest: Sequence[str] = (),
    rows: Any = None,
) -> Any:
    """INSERT … (of ``rows``, a SELECT, if given) that on a repeated key sets ``columns``,
    adds ``add`` and keeps the greater of ``greatest``."""
    columns = list(columns)
    if dialect in ("mysql", "mariadb"):
        my = mysql.insert(table)
        if rows is not None:
            my = my.from_select(columns, rows)
        kept = (*key, *add, *greatest)
        set_: dict[str, Any] = {c: my.inserted[c] for c in columns if c not in kept}
        set_ |= {c: table.c[c] + my.inserted[c] for c in add}
        set_ |= {c: func.greatest(table.c[c], my.inserted[c]) for c in greatest}
        return my.on_duplicate_key_update(set_)
    if dialect == "sqlite":
        lite = sqlite.insert(table)
        if rows is not None:
            # SQLite reads "ON CONFLICT" after a bare SELECT … GROUP BY as part of it
            lite = lite.from_select(columns, select(rows.subquery()).where(true()))
        set_ = {c: lite.excluded[c] for c in columns if c not in (*key, *add, *greatest)}
        set_ |= {c: table.c[c] + lite.excluded[c] for c in add}
        set_ |= {c: func.max(table.c[c], lite.excluded[c]) for c in greatest}
        return lite.on_conflict_do_update(index_elements=list(key), set_=set_)
    raise StorageError(f"unsupported database dialect {dialect!r}; use MySQL/MariaDB or SQLite")


MEASUREMENT_KEY = ("charge_point_id", "connector_id", "bucket_start", "phase")
STATUS_KEY = ("charge_point_id", "connector_id", "bucket_start", "status")


def _bucket(dialect: str, column: Any) -> Any:
    """The quarter hour's start of a stored time, in SQL, as the database stores a DATETIME
    (so that it matches the rollups' key whether bound from Python or computed here)."""
    if dialect in ("mysql", "mariadb"):
        minutes = func.timestampdiff(text("MINUTE"), literal(_EPOCH), column)
        return func.timestampadd(text("MINUTE"), func.floor(minutes / 15) * 15, literal(_EPOCH))
    # SQLite keeps SQLAlchemy's text form, YYYY-MM-DD HH:MM:SS.ffffff
    quarter = (cast(func.strftime("%M", column), Integer) // 15) * 15
    return func.printf("%s%02d:00.000000", func.strftime("%Y-%m-%d %H:", column), quarter)


def _fold_measurement(dialect: str, within: Any, interval: float) -> Any:
    m = measurement.c
    bucket = _bucket(dialect, m.date_created).label("bucket_start")
    power = m.current * func.coalesce(m.voltage, 0.0)
    rows = (
        select(
            m.charge_point_id,
            m.connector_id,
            bucket,
            m.phase,
            func.count().label("samples"),
            func.sum(m.current).label("current_sum"),
            func.max(m.current).label("current_max"),
            (func.sum(power) * (interval / 3600.0)).label("energy_wh"),
        )
        .where(
            *within,
            m.charge_point_id.is_not(None),
            m.connector_id.is_not(None),
            m.phase.is_not(None),
            m.date_created.is_not(None),
            m.current.is_not(None),
        )
        .group_by(m.charge_point_id, m.connector_id, bucket, m.phase)
    )
    columns = [*MEASUREMENT_KEY, "samples", "current_sum", "current_max", "energy_wh"]
    return _upsert(
        dialect,
        measurement_rollup,
        MEASUREMENT_KEY,
        columns,
        add=("samples", "current_sum", "energy_wh"),
        greatest=("current_max",),
        rows=rows,
    )


def _fold_status(dialect: str, within: Any, interval: float) -> Any:
    c = connector_status.c
    bucket = _bucket(dialect, c.date_created).label("bucket_start")
    status = func.coalesce(c.status, "").label("status")
    rows = (
        select(
            c.charge_point_id,
            c.connector_id,
            bucket,
            status,
            func.count().label("polls"),
            (func.count() * interval).label("seconds"),
        )
        .where(
            *within,
            c.charge_point_id.is_not(None),
            c.connector_id.is_not(None),
            c.date_created.is_not(None),
        )
        .group_by(c.charge_point_id, c.connector_id, bucket, status)
    )
    columns = [*STATUS_KEY, "polls", "seconds"]
    return _upsert(
        dialect,
        connector_status_rollup,
        STATUS_KEY,
        columns,
        add=("polls", "seconds"),
        rows=rows,
    )


# ---------------------------------------------------------------------- reading


async def energy_per_connector(
    conn: AsyncConnection, since: datetime, until: datetime
) -> dict[tuple[str, int], float]:
    """kWh per (charger, connector) over the quarter hours in [since, until), from the
    rollups: the polls folded so far (up to two passes behind the newest)."""
    r = measurement_rollup.c
    result = await conn.execute(
        select(r.charge_point_id, r.connector_id, func.sum(r.energy_wh))
        .where(r.bucket_start >= since, r.bucket_start < until)
        .group_by(r.charge_point_id, r.connector_id)
    )
    return {(cp, int(connector)): float(wh or 0.0) / 1000.0 for cp, connector, wh in result}
