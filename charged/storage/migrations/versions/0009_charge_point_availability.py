"""charge_point_availability: each Online/Offline change of a charger, and
poll_cycle.chargers_offline: the chargers a tick found Offline.

charge_point_status keeps only the newest status, so an offline charger left no history (and
a tick counted it as ok).  Existing poll_cycle rows get 0: before this revision an Offline
charger was counted in chargers_ok, which cannot be told apart afterwards.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "charge_point_availability",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tick_time", sa.DateTime, nullable=False),
        sa.Column("charge_point_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("previous_status", sa.String(32)),
        sa.UniqueConstraint(
            "charge_point_id", "tick_time", name="uq_charge_point_availability_natural"
        ),
    )
    op.create_index(
        "ix_charge_point_availability_tick_time", "charge_point_availability", ["tick_time"]
    )
    with op.batch_alter_table("poll_cycle") as batch:
        batch.add_column(
            sa.Column("chargers_offline", sa.Integer, nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("poll_cycle") as batch:
        batch.drop_column("chargers_offline")
    op.drop_index("ix_charge_point_availability_tick_time", "charge_point_availability")
    op.drop_table("charge_point_availability")
