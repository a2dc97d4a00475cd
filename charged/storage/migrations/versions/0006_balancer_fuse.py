"""Per fuse and site phase at each balancer step: limit, capacity, envelope, measured current.

What `charged balance status` prints and a researcher plots against the limit.  Keyed by
(tick_time, fuse, phase) so a replayed spool never duplicates a row.  Nothing existing is
changed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "balancer_fuse",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tick_time", sa.DateTime, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("fuse", sa.String(128), nullable=False),
        sa.Column("parent", sa.String(128)),
        sa.Column("phase", sa.String(2), nullable=False),
        sa.Column("limit_a", sa.Float, nullable=False),
        sa.Column("capacity_a", sa.Float, nullable=False),
        sa.Column("envelope_a", sa.Float, nullable=False),
        sa.Column("measured_a", sa.Float, nullable=False),
        sa.UniqueConstraint("tick_time", "fuse", "phase", name="uq_balancer_fuse_natural"),
    )


def downgrade() -> None:
    op.drop_table("balancer_fuse")
