"""The original scripts' tables, exactly as they created them.

A database the original scripts made already has these tables (``migrate.upgrade`` stamps it
at this revision instead of running it); a new database gets them here, so both paths reach
0002 with the same schema.  Tables that already exist are left alone.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "charge_point_status" not in existing:
        op.create_table(
            "charge_point_status",
            sa.Column("id", sa.String(128), primary_key=True),
            sa.Column("status", sa.String(128)),
        )
    if "connector_status" not in existing:
        op.create_table(
            "connector_status",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("charge_point_id", sa.String(128)),
            sa.Column("connector_id", sa.Numeric),
            sa.Column("total_consumption_kwh", sa.Numeric),
            sa.Column("session_type", sa.String(128)),
            sa.Column("status", sa.String(128)),
            sa.Column("start_time", sa.String(256)),
            sa.Column("end_time", sa.String(256)),
            sa.Column("session_id", sa.Numeric),
            sa.Column("date_created", sa.DateTime),
        )
    if "measurement" not in existing:
        op.create_table(
            "measurement",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("phase", sa.String(128)),
            sa.Column("current", sa.Float),
            sa.Column("voltage", sa.Float),
            sa.Column("connector_id", sa.Numeric),
            sa.Column("charge_point_id", sa.String(128)),
            sa.Column("comment", sa.String(15000)),
            sa.Column("session_id", sa.Numeric),
            sa.Column("date_created", sa.DateTime),
        )


def downgrade() -> None:
    # The original tables hold the user's data; going below the first revision keeps them.
    pass
