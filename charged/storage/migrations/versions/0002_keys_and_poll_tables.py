"""Natural keys for idempotent writes, wider types, charger details, poll-cycle tables.

- charge_point_status: name, type, firmware_version, hardware_version, last_seen.
- connector_status: total_consumption_kwh NUMERIC -> DOUBLE (the original DECIMAL(10,0) on
  MySQL cut the decimals off; widening keeps every stored value), connector_id -> INTEGER,
  session_id -> BIGINT, new charging_power_kw; unique (charge_point_id, connector_id,
  date_created).
- measurement: connector_id -> INTEGER, session_id -> BIGINT; unique (charge_point_id,
  connector_id, phase, date_created).
- poll_cycle and poll_gap: one row per tick, one row per charger that failed in a tick.

Rows that already repeat a new unique key stop the upgrade before anything is altered: they
are the user's data, so the user decides which copy to keep.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from charged.storage.engine import MigrationError

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

CONNECTOR_KEY = ("charge_point_id", "connector_id", "date_created")
MEASUREMENT_KEY = ("charge_point_id", "connector_id", "phase", "date_created")


def _surplus_rows(table: str, key: tuple[str, ...]) -> int:
    """Rows beyond the first of each group sharing ``key`` (NULLs never collide)."""
    bind = op.get_bind()
    quote = bind.dialect.identifier_preparer.quote
    cols = ", ".join(quote(c) for c in key)
    not_null = " AND ".join(f"{quote(c)} IS NOT NULL" for c in key)
    sql = (
        f"SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM {quote(table)} "
        f"WHERE {not_null} GROUP BY {cols} HAVING COUNT(*) > 1) AS dup"
    )
    return int(bind.execute(sa.text(sql)).scalar_one())


def _refuse_duplicates() -> None:
    for table, key in (("connector_status", CONNECTOR_KEY), ("measurement", MEASUREMENT_KEY)):
        surplus = _surplus_rows(table, key)
        if surplus:
            raise MigrationError(
                f"cannot add the unique key ({', '.join(key)}) to {table}: {surplus} row(s) "
                "repeat another row's key; delete or merge those copies, then run "
                "`charged db upgrade` again (nothing was changed)"
            )


def _id_not_null(batch: Any, table: str, type_: sa.types.TypeEngine[Any]) -> None:
    # The original scripts' key columns, made on SQLite, carry no NOT NULL (SQLite lets a
    # primary key hold NULL unless told otherwise); say it, so both backends end the same.
    columns = sa.inspect(op.get_bind()).get_columns(table)
    if any(c["name"] == "id" and c["nullable"] for c in columns):
        batch.alter_column("id", existing_type=type_, nullable=False, existing_nullable=True)


def upgrade() -> None:
    _refuse_duplicates()

    with op.batch_alter_table("charge_point_status") as batch:
        _id_not_null(batch, "charge_point_status", sa.String(128))
        batch.add_column(sa.Column("name", sa.String(256)))
        batch.add_column(sa.Column("type", sa.String(32)))
        batch.add_column(sa.Column("firmware_version", sa.String(64)))
        batch.add_column(sa.Column("hardware_version", sa.String(64)))
        batch.add_column(sa.Column("last_seen", sa.DateTime))

    with op.batch_alter_table("connector_status") as batch:
        _id_not_null(batch, "connector_status", sa.Integer())
        batch.alter_column(
            "connector_id", type_=sa.Integer, existing_type=sa.Numeric, existing_nullable=True
        )
        batch.alter_column(
            "total_consumption_kwh",
            type_=sa.Double,
            existing_type=sa.Numeric,
            existing_nullable=True,
        )
        batch.alter_column(
            "session_id", type_=sa.BigInteger, existing_type=sa.Numeric, existing_nullable=True
        )
        batch.add_column(sa.Column("charging_power_kw", sa.Float))
        batch.create_unique_constraint("uq_connector_status_natural", list(CONNECTOR_KEY))
        batch.create_index("ix_connector_status_date_created", ["date_created"])

    with op.batch_alter_table("measurement") as batch:
        _id_not_null(batch, "measurement", sa.Integer())
        batch.alter_column(
            "connector_id", type_=sa.Integer, existing_type=sa.Numeric, existing_nullable=True
        )
        batch.alter_column(
            "session_id", type_=sa.BigInteger, existing_type=sa.Numeric, existing_nullable=True
        )
        batch.create_unique_constraint("uq_measurement_natural", list(MEASUREMENT_KEY))
        batch.create_index("ix_measurement_date_created", ["date_created"])

    op.create_table(
        "poll_cycle",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tick_time", sa.DateTime, nullable=False),
        sa.Column("chargers_asked", sa.Integer, nullable=False),
        sa.Column("chargers_ok", sa.Integer, nullable=False),
        sa.Column("chargers_failed", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("skipped_ticks", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.UniqueConstraint("tick_time", name="uq_poll_cycle_tick_time"),
    )
    op.create_table(
        "poll_gap",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tick_time", sa.DateTime, nullable=False),
        sa.Column("charge_point_id", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(256)),
        sa.UniqueConstraint("tick_time", "charge_point_id", name="uq_poll_gap_natural"),
    )
    op.create_index(
        "ix_poll_gap_charge_point_id_tick_time", "poll_gap", ["charge_point_id", "tick_time"]
    )


def downgrade() -> None:
    # Back to the original shape; kWh decimals are cut again on MySQL (DECIMAL(10,0)).
    op.drop_index("ix_poll_gap_charge_point_id_tick_time", table_name="poll_gap")
    op.drop_table("poll_gap")
    op.drop_table("poll_cycle")
    with op.batch_alter_table("measurement") as batch:
        batch.drop_index("ix_measurement_date_created")
        batch.drop_constraint("uq_measurement_natural", type_="unique")
        batch.alter_column("session_id", type_=sa.Numeric, existing_type=sa.BigInteger)
        batch.alter_column("connector_id", type_=sa.Numeric, existing_type=sa.Integer)
    with op.batch_alter_table("connector_status") as batch:
        batch.drop_index("ix_connector_status_date_created")
        batch.drop_constraint("uq_connector_status_natural", type_="unique")
        batch.drop_column("charging_power_kw")
        batch.alter_column("session_id", type_=sa.Numeric, existing_type=sa.BigInteger)
        batch.alter_column("total_consumption_kwh", type_=sa.Numeric, existing_type=sa.Double)
        batch.alter_column("connector_id", type_=sa.Numeric, existing_type=sa.Integer)
    with op.batch_alter_table("charge_point_status") as batch:
        for column in ("last_seen", "hardware_version", "firmware_version", "type", "name"):
            batch.drop_column(column)
