"""connector_status.status_raw: the vendor's status value when it differs from the normalised
name in status (a v4 digit, whose meaning depends on the charger's protocol; another casing).

NULL means the vendor sent exactly what status holds, which is every row written before this
revision: those stored the value as it came.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("connector_status") as batch:
        batch.add_column(sa.Column("status_raw", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("connector_status") as batch:
        batch.drop_column("status_raw")
