"""The control audit trail: one control_action row per field a control request tried to change.

Written by charged/control after every attempt (CLI or HTTP API) with its outcome, also when
it failed or was refused.  Old and new values are JSON text: "null" is a value (no current
limit), SQL NULL an old value that was never read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "control_action",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("charge_point_id", sa.String(128), nullable=False),
        sa.Column("connector_id", sa.Integer),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("field", sa.String(32)),
        sa.Column("old_value", sa.String(255)),
        sa.Column("new_value", sa.String(255)),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("error", sa.String(1000)),
    )
    op.create_index(
        "ix_control_action_charge_point_id_created",
        "control_action",
        ["charge_point_id", "created"],
    )


def downgrade() -> None:
    op.drop_index("ix_control_action_charge_point_id_created", table_name="control_action")
    op.drop_table("control_action")
