"""measurement_rollup and connector_status_rollup: 15-minute rollups of the polls, kept
forever; rollup_state: how far each raw table is folded in (charged/storage/rollup.py).

New tables only; nothing existing changes.  The first passes of `charged run` fold the
history already stored, batch by batch (about 10,000 rows a second on a small server).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "measurement_rollup",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("charge_point_id", sa.String(128), nullable=False),
        sa.Column("connector_id", sa.Integer, nullable=False),
        sa.Column("phase", sa.String(128), nullable=False),
        sa.Column("bucket_start", sa.DateTime, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("current_sum", sa.Double, nullable=False),
        sa.Column("current_max", sa.Float, nullable=False),
        sa.Column("energy_wh", sa.Double, nullable=False),
        sa.UniqueConstraint(
            "charge_point_id",
            "connector_id",
            "bucket_start",
            "phase",
            name="uq_measurement_rollup_natural",
        ),
    )
    op.create_index("ix_measurement_rollup_bucket_start", "measurement_rollup", ["bucket_start"])
    op.create_table(
        "connector_status_rollup",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("charge_point_id", sa.String(128), nullable=False),
        sa.Column("connector_id", sa.Integer, nullable=False),
        sa.Column("bucket_start", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(128), nullable=False),
        sa.Column("polls", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Double, nullable=False),
        sa.UniqueConstraint(
            "charge_point_id",
            "connector_id",
            "bucket_start",
            "status",
            name="uq_connector_status_rollup_natural",
        ),
    )
    op.create_index(
        "ix_connector_status_rollup_bucket_start", "connector_status_rollup", ["bucket_start"]
    )
    op.create_table(
        "rollup_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("folded_to", sa.BigInteger, nullable=False),
        sa.Column("seen", sa.BigInteger),
        sa.Column("updated", sa.DateTime),
    )


def downgrade() -> None:
    op.drop_table("rollup_state")
    op.drop_index("ix_connector_status_rollup_bucket_start", "connector_status_rollup")
    op.drop_table("connector_status_rollup")
    op.drop_index("ix_measurement_rollup_bucket_start", "measurement_rollup")
    op.drop_table("measurement_rollup")
