"""Covering indexes for a session's phases and polls: the index alone answers them.

With 0011 a session's phases (measurement by charger, connector and time) and its polls
(connector_status by session id) found their rows through an index, but then read every row
from the table: the collector writes a tick of every charger after the other, so one
session's 2,880 measurement rows lie on about 550 table pages and its 1,200 polls on about
440.  Cold, that is a page read per row group: 111 and 146 ms on the benchmark's quarter of a
garage (bench/README.md).  The indexes below hold the columns those queries read, in the
order they read them, so a session's rows are a few adjacent index pages.

- measurement: new ix_measurement_connector_time (charge_point_id, connector_id,
  date_created, phase, current, voltage).  The unique key stays what it is (the same columns
  up to phase); this one adds the values.
- connector_status: ix_connector_status_session_id (session_id, charge_point_id,
  connector_id, date_created) becomes (…, date_created, status, total_consumption_kwh,
  charging_power_kw, session_type, start_time): same name, same prefix, so everything the
  old one served it serves.  end_time does not fit in the same key (InnoDB's 3,072 bytes, at
  4 bytes a character: the strings are declared 128 and 256 long), so it has an index of its
  own, ix_connector_status_session_end (session_id, charge_point_id, connector_id, end_time):
  ``load_polls`` reads the (mostly NULL) end times through it, only those that are set.

On MySQL/MariaDB each table is changed by one ALTER TABLE … ALGORITHM=INPLACE, LOCK=NONE (as
0011): the collector goes on inserting while InnoDB builds them.  The cost is space and a
little more work per insert: bench/README.md has the sizes.  SQLite: plain CREATE INDEX.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None

MEASUREMENT_COVER = [
    "charge_point_id",
    "connector_id",
    "date_created",
    "phase",
    "current",
    "voltage",
]
OLD_STATUS_SESSION = ["session_id", "charge_point_id", "connector_id", "date_created"]
STATUS_SESSION = [
    *OLD_STATUS_SESSION,
    "status",
    "total_consumption_kwh",
    "charging_power_kw",
    "session_type",
    "start_time",
]
STATUS_SESSION_END = ["session_id", "charge_point_id", "connector_id", "end_time"]
ONLINE = "ALGORITHM=INPLACE, LOCK=NONE"


def _cols(columns: list[str]) -> str:
    return ", ".join(f"`{c}`" for c in columns)


def _is_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    if _is_mysql():
        op.execute(
            "ALTER TABLE measurement "
            f"ADD INDEX ix_measurement_connector_time ({_cols(MEASUREMENT_COVER)}), {ONLINE}"
        )
        op.execute(
            "ALTER TABLE connector_status DROP INDEX ix_connector_status_session_id, "
            f"ADD INDEX ix_connector_status_session_id ({_cols(STATUS_SESSION)}), "
            f"ADD INDEX ix_connector_status_session_end ({_cols(STATUS_SESSION_END)}), {ONLINE}"
        )
        return
    op.create_index("ix_measurement_connector_time", "measurement", MEASUREMENT_COVER)
    op.drop_index("ix_connector_status_session_id", "connector_status")
    op.create_index("ix_connector_status_session_id", "connector_status", STATUS_SESSION)
    op.create_index("ix_connector_status_session_end", "connector_status", STATUS_SESSION_END)


def downgrade() -> None:
    if _is_mysql():
        op.execute(
            "ALTER TABLE connector_status DROP INDEX ix_connector_status_session_end, "
            "DROP INDEX ix_connector_status_session_id, "
            f"ADD INDEX ix_connector_status_session_id ({_cols(OLD_STATUS_SESSION)}), {ONLINE}"
        )
        op.execute(f"ALTER TABLE measurement DROP INDEX ix_measurement_connector_time, {ONLINE}")
        return
    op.drop_index("ix_connector_status_session_end", "connector_status")
    op.drop_index("ix_connector_status_session_id", "connector_status")
    op.create_index("ix_connector_status_session_id", "connector_status", OLD_STATUS_SESSION)
    op.drop_index("ix_measurement_connector_time", "measurement")
