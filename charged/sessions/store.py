"""Reads a session's polls from connector_status/measurement; writes charging_session rows.

Writes are upserts on the natural key (charge_point_id, connector_id, session_id), so folding
the same polls in twice, or two processes doing it, leaves one row with the same figures.
The derived columns and the vendor's columns are written by separate statements: a
re-derivation never overwrites what the vendor said, and a reconciliation never overwrites
what the polls showed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from charged.sessions.derive import Poll, SessionFacts, VendorSession
from charged.storage.engine import StorageError
from charged.storage.schema import charging_session, connector_status, measurement

SessionKey = tuple[str, int, int]  # charge_point_id, connector_id, session_id
KEY_COLUMNS = ("charge_point_id", "connector_id", "session_id")
VENDOR_COLUMNS = (
    "vendor_start",
    "vendor_end",
    "vendor_energy_kwh",
    "rfid",
    "user_id",
    "reconciled_at",
)


@dataclass(frozen=True, slots=True)
class StatusRef:
    """Just enough of a connector_status row to know which session it touches."""

    id: int
    charge_point_id: str
    connector_id: int
    session_id: int | None
    time: datetime


@dataclass(frozen=True, slots=True)
class StoredSession:
    first_poll: datetime | None
    end_time: datetime | None
    vendor: VendorSession | None


def naive_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0)


@lru_cache(maxsize=4096)
def parse_stored_time(text: str | None) -> datetime | None:
    """connector_status keeps the vendor's times as ISO text; unreadable text is no time.
    Cached: a session's polls repeat the same start time (and datetimes are immutable)."""
    if not text:
        return None
    try:
        return naive_utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        return None


async def resume_after(conn: AsyncConnection) -> int:
    """The connector_status id up to which every row has been folded into sessions."""
    value = await conn.scalar(select(func.max(charging_session.c.last_status_id)))
    return int(value or 0)


@dataclass(frozen=True, slots=True)
class StatusBatch:
    """Up to ``limit`` connector_status rows after an id, and how far they reached.

    ``refs`` leaves out rows naming no charger or connector (a hand-made or damaged row): they
    belong to no session.  ``read`` and ``last_id`` count every row read, those too, so a
    caller pages on the ids themselves and never stops at (or sticks on) a batch of them.
    """

    refs: list[StatusRef]
    read: int
    last_id: int | None


async def status_rows_after(conn: AsyncConnection, after_id: int, limit: int) -> StatusBatch:
    cs = connector_status
    result = await conn.execute(
        select(cs.c.id, cs.c.charge_point_id, cs.c.connector_id, cs.c.session_id, cs.c.date_created)
        .where(cs.c.id > after_id)
        .order_by(cs.c.id)
        .limit(limit)
    )
    rows = result.all()
    refs = [
        StatusRef(
            int(r.id), r.charge_point_id, int(r.connector_id), _int(r.session_id), r.date_created
        )
        for r in rows
        if r.charge_point_id is not None and r.connector_id is not None
    ]
    return StatusBatch(refs, len(rows), int(rows[-1].id) if rows else None)


async def open_sessions(conn: AsyncConnection) -> list[SessionKey]:
    cs = charging_session
    result = await conn.execute(
        select(cs.c.charge_point_id, cs.c.connector_id, cs.c.session_id).where(
            cs.c.end_time.is_(None)
        )
    )
    return [(r.charge_point_id, int(r.connector_id), int(r.session_id)) for r in result]


async def stored_sessions(
    conn: AsyncConnection, keys: Iterable[SessionKey]
) -> dict[SessionKey, StoredSession]:
    cs = charging_session
    found: dict[SessionKey, StoredSession] = {}
    wanted = sorted(set(keys))
    for i in range(0, len(wanted), 200):  # bounded IN lists
        chunk = wanted[i : i + 200]
        result = await conn.execute(
            select(
                cs.c.charge_point_id,
                cs.c.connector_id,
                cs.c.session_id,
                cs.c.first_poll,
                cs.c.end_time,
                cs.c.session_type,
                *(cs.c[c] for c in VENDOR_COLUMNS),
            ).where(
                or_(
                    *(
                        and_(
                            cs.c.charge_point_id == cp,
                            cs.c.connector_id == connector,
                            cs.c.session_id == sid,
                        )
                        for cp, connector, sid in chunk
                    )
                )
            )
        )
        for r in result:
            vendor = None
            if r.reconciled_at is not None:
                vendor = VendorSession(
                    start=r.vendor_start,
                    end=r.vendor_end,
                    energy_kwh=r.vendor_energy_kwh,
                    session_type=r.session_type,
                    rfid=r.rfid,
                    user_id=r.user_id,
                )
            key = (r.charge_point_id, int(r.connector_id), int(r.session_id))
            found[key] = StoredSession(r.first_poll, r.end_time, vendor)
    return found


async def load_polls(conn: AsyncConnection, key: SessionKey, since: datetime | None) -> list[Poll]:
    """The session's polls from ``since`` on (every one if None), oldest first."""
    cp, connector, sid = key
    cs = connector_status
    the_session = (
        cs.c.charge_point_id == cp,
        cs.c.connector_id == connector,
        cs.c.session_id == sid,
    )
    # Two reads, each answered by an index alone (migration 0013): end_time does not fit in
    # the key that holds the rest, and is set on few polls if any.
    query = select(
        cs.c.id,
        cs.c.date_created,
        cs.c.status,
        cs.c.total_consumption_kwh,
        cs.c.charging_power_kw,
        cs.c.session_type,
        cs.c.start_time,
    ).where(*the_session)
    if since is not None:
        query = query.where(cs.c.date_created >= since)
    # plain tuples, unpacked: a session has a poll every 30 s, and attribute access on
    # SQLAlchemy's rows cost more than the rest of the loop (bench/README.md, queries)
    result = await conn.execute(query.order_by(cs.c.date_created))
    rows = [r for r in result if r[1] is not None]
    if not rows:
        return []
    ended = select(cs.c.id, cs.c.end_time).where(*the_session, cs.c.end_time.is_not(None))
    ends = {int(i): e for i, e in await conn.execute(ended)}
    phases = await _phases(conn, cp, connector, rows[0][1], rows[-1][1])
    empty: dict[str, tuple[float, float]] = {}
    return [
        Poll(
            time,
            status or "",
            None if energy is None else float(energy),
            None if power is None else float(power),
            phases.get(time, empty),
            int(row_id),
            session_type,
            parse_stored_time(start),
            parse_stored_time(ends[row_id]) if row_id in ends else None,
        )
        for row_id, time, status, energy, power, session_type, start in rows
    ]


async def _phases(
    conn: AsyncConnection, cp: str, connector: int, first: datetime, last: datetime
) -> dict[datetime, dict[str, tuple[float, float]]]:
    m = measurement
    result = await conn.execute(
        select(m.c.date_created, m.c.phase, m.c.current, m.c.voltage).where(
            m.c.charge_point_id == cp,
            m.c.connector_id == connector,
            m.c.date_created >= first,
            m.c.date_created <= last,
        )
    )
    by_time: dict[datetime, dict[str, tuple[float, float]]] = {}
    for time, phase, current, voltage in result:
        if phase is None or current is None or voltage is None:
            continue
        at = by_time.get(time)
        if at is None:
            at = by_time[time] = {}
        at[phase] = (float(current), float(voltage))
    return by_time


async def next_poll_after(
    conn: AsyncConnection, cp: str, connector: int, moment: datetime
) -> datetime | None:
    """The connector's first poll after ``moment`` (the session's last), if any."""
    cs = connector_status
    value: datetime | None = await conn.scalar(
        select(func.min(cs.c.date_created)).where(
            cs.c.charge_point_id == cp, cs.c.connector_id == connector, cs.c.date_created > moment
        )
    )
    return value


async def next_session_start(
    conn: AsyncConnection, key: SessionKey, last_poll: datetime
) -> datetime | None:
    """When the connector's next session began, as far as is stored, if after ``last_poll``.

    The first poll after the session's last may already show the next session: its start is
    the status's ``startTime`` (the poll's own time without one).  A session only the vendor
    reported (begun and ended between two polls, or during a gap) is in charging_session.
    The earlier of the two; what caps the session's end so that sessions never overlap.
    """
    cp, connector, sid = key
    cs = connector_status
    following = (
        await conn.execute(
            select(cs.c.session_id, cs.c.start_time, cs.c.date_created)
            .where(
                cs.c.charge_point_id == cp,
                cs.c.connector_id == connector,
                cs.c.date_created > last_poll,
            )
            .order_by(cs.c.date_created)
            .limit(1)
        )
    ).first()
    starts: list[datetime] = []
    if following is not None and _int(following.session_id) not in (None, sid):
        starts.append(parse_stored_time(following.start_time) or following.date_created)
    stored = charging_session
    began = func.coalesce(stored.c.start_time, stored.c.vendor_start)
    known: datetime | None = await conn.scalar(
        select(func.min(began)).where(
            stored.c.charge_point_id == cp,
            stored.c.connector_id == connector,
            stored.c.session_id != sid,
            began > last_poll,
        )
    )
    if known is not None:
        starts.append(known)
    return min(starts) if starts else None


async def sessions_running_into(
    conn: AsyncConnection, key: SessionKey, start: datetime
) -> list[SessionKey]:
    """Sessions of the connector that began before ``start`` and end after it (or run on):
    to be derived again when the vendor reports a session beginning at ``start``."""
    cp, connector, sid = key
    cs = charging_session
    result = await conn.execute(
        select(cs.c.session_id).where(
            cs.c.charge_point_id == cp,
            cs.c.connector_id == connector,
            cs.c.session_id != sid,
            cs.c.start_time < start,
            cs.c.vendor_end.is_(None),
            cs.c.end_time.is_(None) | (cs.c.end_time > start),
        )
    )
    return [(cp, connector, int(r.session_id)) for r in result]


async def upsert_facts(
    conn: AsyncConnection, key: SessionKey, facts: SessionFacts, updated: datetime
) -> None:
    row = {**dict(zip(KEY_COLUMNS, key, strict=True)), **facts.columns(), "updated": updated}
    await _upsert(conn, row, [c for c in row if c not in KEY_COLUMNS])


async def upsert_vendor(
    conn: AsyncConnection, key: SessionKey, vendor: VendorSession, reconciled_at: datetime
) -> None:
    """Store the vendor's start, end and energy; a session the polls never saw gets a row."""
    row: dict[str, Any] = {
        **dict(zip(KEY_COLUMNS, key, strict=True)),
        "vendor_start": naive_utc(vendor.start),
        "vendor_end": naive_utc(vendor.end),
        "vendor_energy_kwh": vendor.energy_kwh,
        "rfid": vendor.rfid,
        "user_id": vendor.user_id,
        "reconciled_at": reconciled_at,
        "session_type": vendor.session_type,
        "polls": 0,
        "gap_count": 0,
        "gap_s": 0.0,
        "updated": reconciled_at,
    }
    await _upsert(conn, row, [*VENDOR_COLUMNS, "updated"])


async def _upsert(conn: AsyncConnection, row: Mapping[str, Any], update: list[str]) -> None:
    statement = _upsert_statement(conn.dialect.name, tuple(row), tuple(update))
    await conn.execute(statement, dict(row))


# One statement per (dialect, columns, updated columns), values bound at execution: building
# the INSERT … ON DUPLICATE KEY UPDATE anew for every session was a sixth of a pass's time.
@lru_cache(maxsize=64)
def _upsert_statement(dialect: str, columns: tuple[str, ...], update: tuple[str, ...]) -> Insert:
    if dialect in ("mysql", "mariadb"):
        my = mysql.insert(charging_session)
        return my.on_duplicate_key_update({c: my.inserted[c] for c in update})
    if dialect == "sqlite":
        lite = sqlite.insert(charging_session)
        return lite.on_conflict_do_update(
            index_elements=list(KEY_COLUMNS), set_={c: lite.excluded[c] for c in update}
        )
    raise StorageError(f"unsupported database dialect {dialect!r}; use MySQL/MariaDB or SQLite")


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
