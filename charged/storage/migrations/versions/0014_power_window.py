"""power_window: the site power target's window at every balancer step.

One row per step (keyed by tick_time) with the window in progress, its energy so far, the
month's peak and the cap: `charged balance status` prints the newest, and a restarted daemon
takes the window and the month's peak back from it.  New table only.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "power_window",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tick_time", sa.DateTime, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("window_start", sa.DateTime, nullable=False),
        sa.Column("window_s", sa.Integer, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("energy_wh", sa.Float, nullable=False),
        sa.Column("power_w", sa.Float, nullable=False),
        sa.Column("building_w", sa.Float, nullable=False),
        sa.Column("target_w", sa.Float, nullable=False),
        sa.Column("month_peak_w", sa.Float, nullable=False),
        sa.Column("cap_a", sa.Float, nullable=False),
        sa.UniqueConstraint("tick_time", name="uq_power_window_natural"),
    )


def downgrade() -> None:
    op.drop_table("power_window")
