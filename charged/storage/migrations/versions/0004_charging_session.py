"""Charging sessions: one charging_session row per vendor session (charged/analysis).

Derived from connector_status and measurement by the SessionTracker and reconciled with the
vendor's chargingsessions endpoint; keyed by (charge_point_id, connector_id, session_id) so a
session is updated in place, never duplicated.  Nothing existing is changed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "charging_session",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("charge_point_id", sa.String(128), nullable=False),
        sa.Column("connector_id", sa.Integer, nullable=False),
        sa.Column("session_id", sa.BigInteger, nullable=False),
        sa.Column("session_type", sa.String(32)),
        sa.Column("start_time", sa.DateTime),
        sa.Column("end_time", sa.DateTime),
        sa.Column("energy_kwh", sa.Double),
        sa.Column("energy_from_power_kwh", sa.Double),
        sa.Column("observed_energy_kwh", sa.Double),
        sa.Column("peak_power_w", sa.Float),
        sa.Column("mean_power_w", sa.Float),
        sa.Column("phases", sa.Integer),
        sa.Column("connected_s", sa.Float),
        sa.Column("charging_s", sa.Float),
        sa.Column("idle_after_s", sa.Float),
        sa.Column("polls", sa.Integer, nullable=False),
        sa.Column("gap_count", sa.Integer, nullable=False),
        sa.Column("gap_s", sa.Float, nullable=False),
        sa.Column("first_poll", sa.DateTime),
        sa.Column("last_poll", sa.DateTime),
        sa.Column("last_status_id", sa.Integer),
        sa.Column("vendor_start", sa.DateTime),
        sa.Column("vendor_end", sa.DateTime),
        sa.Column("vendor_energy_kwh", sa.Double),
        sa.Column("reconciled_at", sa.DateTime),
        sa.Column("updated", sa.DateTime, nullable=False),
        sa.UniqueConstraint(
            "charge_point_id", "connector_id", "session_id", name="uq_charging_session_natural"
        ),
    )
    op.create_index("ix_charging_session_start_time", "charging_session", ["start_time"])


def downgrade() -> None:
    op.drop_index("ix_charging_session_start_time", table_name="charging_session")
    op.drop_table("charging_session")
