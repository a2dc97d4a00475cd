"""Indexes that fit the queries: a connector's history by time, and sessions by their id.

- measurement: the unique key (charge_point_id, connector_id, phase, date_created) becomes
  (charge_point_id, connector_id, date_created, phase).  Same rows are unique, but the old
  order put phase before the time, so "a connector's phases between two polls" (the session
  tracker, plots) read the connector's whole history.  New ix_measurement_session_id
  (session_id, date_created): phase currents by session id.
- connector_status: new ix_connector_status_session_id (session_id, charge_point_id,
  connector_id, date_created): a session's polls (load_polls without ``since``, the
  balancer's recall) without reading the connector's whole history.

On MySQL/MariaDB each table is changed by one ALTER TABLE … ALGORITHM=INPLACE, LOCK=NONE:
InnoDB builds the indexes while the writer goes on inserting (no table copy, no lock beyond
a moment at the start and the end), and the unique key is swapped in the same statement, so
it is enforced throughout.  A server that cannot do it that way refuses the statement rather
than locking the table: nothing is changed, and the error says so.  Building the indexes
reads the whole table: about a minute per 10 million rows on a small server (bench/README.md).

SQLite cannot reorder a table's unique constraint in place: measurement is copied into a new
table with the new key (Alembic's batch mode), which holds the database's write lock while it
runs; the collector's writes wait (and are spooled if the wait is long).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

OLD_MEASUREMENT_KEY = ["charge_point_id", "connector_id", "phase", "date_created"]
NEW_MEASUREMENT_KEY = ["charge_point_id", "connector_id", "date_created", "phase"]
MEASUREMENT_SESSION = ["session_id", "date_created"]
STATUS_SESSION = ["session_id", "charge_point_id", "connector_id", "date_created"]
ONLINE = "ALGORITHM=INPLACE, LOCK=NONE"


def _cols(columns: list[str]) -> str:
    return ", ".join(f"`{c}`" for c in columns)


def _is_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    if _is_mysql():
        op.execute(
            "ALTER TABLE measurement DROP INDEX uq_measurement_natural, "
            f"ADD UNIQUE INDEX uq_measurement_natural ({_cols(NEW_MEASUREMENT_KEY)}), "
            f"ADD INDEX ix_measurement_session_id ({_cols(MEASUREMENT_SESSION)}), {ONLINE}"
        )
        op.execute(
            "ALTER TABLE connector_status "
            f"ADD INDEX ix_connector_status_session_id ({_cols(STATUS_SESSION)}), {ONLINE}"
        )
        return
    with op.batch_alter_table("measurement", recreate="always") as batch:
        batch.drop_constraint("uq_measurement_natural", type_="unique")
        batch.create_unique_constraint("uq_measurement_natural", NEW_MEASUREMENT_KEY)
    op.create_index("ix_measurement_session_id", "measurement", MEASUREMENT_SESSION)
    op.create_index("ix_connector_status_session_id", "connector_status", STATUS_SESSION)


def downgrade() -> None:
    if _is_mysql():
        op.execute(
            "ALTER TABLE connector_status DROP INDEX ix_connector_status_session_id, " + ONLINE
        )
        op.execute(
            "ALTER TABLE measurement DROP INDEX ix_measurement_session_id, "
            "DROP INDEX uq_measurement_natural, "
            f"ADD UNIQUE INDEX uq_measurement_natural ({_cols(OLD_MEASUREMENT_KEY)}), {ONLINE}"
        )
        return
    op.drop_index("ix_connector_status_session_id", "connector_status")
    op.drop_index("ix_measurement_session_id", "measurement")
    with op.batch_alter_table("measurement", recreate="always") as batch:
        batch.drop_constraint("uq_measurement_natural", type_="unique")
        batch.create_unique_constraint("uq_measurement_natural", OLD_MEASUREMENT_KEY)
