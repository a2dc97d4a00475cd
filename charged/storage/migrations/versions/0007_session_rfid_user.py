"""Who charged: the vendor's rfid and userId on charging_session.

Filled by the SessionTracker's reconcile from the vendor's chargingsessions (the polls do not
carry them); NULL until then, and for a session started without a tag.  An index on rfid
serves the monthly per-tag report.  Existing rows are kept as they are.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("charging_session") as batch:
        batch.add_column(sa.Column("rfid", sa.String(64)))
        batch.add_column(sa.Column("user_id", sa.String(128)))
    op.create_index("ix_charging_session_rfid", "charging_session", ["rfid"])


def downgrade() -> None:
    op.drop_index("ix_charging_session_rfid", table_name="charging_session")
    with op.batch_alter_table("charging_session") as batch:
        batch.drop_column("user_id")
        batch.drop_column("rfid")
