"""The balancer's decisions: one balancer_decision row per connector per balancer step.

Written through the batch writer, keyed by (tick_time, charge_point_id, connector_id) so a
replayed spool never duplicates a row.  Nothing existing is changed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "balancer_decision",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tick_time", sa.DateTime, nullable=False),
        sa.Column("charge_point_id", sa.String(128), nullable=False),
        sa.Column("connector_id", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("phases", sa.String(8)),
        sa.Column("measured_a", sa.Float),
        sa.Column("allocated_a", sa.Float),
        sa.Column("limit_in_force_a", sa.Float),
        sa.Column("limit_sent_a", sa.Float),
        sa.Column("write_result", sa.String(16)),
        sa.Column("reason", sa.String(32)),
        sa.Column("deferred", sa.String(255)),
        sa.Column("bottleneck", sa.String(160)),
        sa.UniqueConstraint(
            "tick_time", "charge_point_id", "connector_id", name="uq_balancer_decision_natural"
        ),
    )
    op.create_index(
        "ix_balancer_decision_charge_point_id_tick_time",
        "balancer_decision",
        ["charge_point_id", "tick_time"],
    )


def downgrade() -> None:
    op.drop_index("ix_balancer_decision_charge_point_id_tick_time", "balancer_decision")
    op.drop_table("balancer_decision")
