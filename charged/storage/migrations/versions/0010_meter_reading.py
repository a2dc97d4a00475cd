"""meter_reading: the site meters' readings (the building's own load beside the chargers).

One row per meter and second, keyed by (fuse, read_at) so a replayed spool never duplicates a
row.  Nothing existing is changed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "meter_reading",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("read_at", sa.DateTime, nullable=False),
        sa.Column("fuse", sa.String(128), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("l1_a", sa.Float, nullable=False),
        sa.Column("l2_a", sa.Float, nullable=False),
        sa.Column("l3_a", sa.Float, nullable=False),
        sa.UniqueConstraint("fuse", "read_at", name="uq_meter_reading_natural"),
    )
    op.create_index("ix_meter_reading_read_at", "meter_reading", ["read_at"])


def downgrade() -> None:
    op.drop_index("ix_meter_reading_read_at", "meter_reading")
    op.drop_table("meter_reading")
