"""The database tables, as SQLAlchemy Core metadata (the target the migrations must reach).

The original scripts' table and column names are kept so existing databases and queries carry
over.  Every timestamp is a naive UTC ``DATETIME`` at whole seconds.  Each table that grows
with every tick has a *natural key* (unique constraint) so that writing the same tick twice
leaves one copy; :data:`NATURAL_KEYS` names them for the writer.

Adding a table: define it here, add a migration under ``migrations/versions`` that creates it
exactly like this, and (if rows for it go through the BatchWriter) give it a natural key below.
Constraints and indexes carry explicit names so migrations can address them on every backend.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Double,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

metadata = MetaData()

charge_point_status = Table(
    "charge_point_status",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("status", String(128)),
    Column("name", String(256)),
    Column("type", String(32)),
    Column("firmware_version", String(64)),
    Column("hardware_version", String(64)),
    Column("last_seen", DateTime),
)

connector_status = Table(
    "connector_status",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(128)),
    Column("connector_id", Integer),
    # The original NUMERIC (DECIMAL(10,0) on MySQL) cut the decimals off; DOUBLE keeps them.
    Column("total_consumption_kwh", Double),
    Column("session_type", String(128)),
    # the normalised name (Charging, SuspendedEV …; charged.chargeamps.states), or the
    # vendor's value as it came when it names no state
    Column("status", String(128)),
    # ISO 8601 text, as the original scripts stored it
    Column("start_time", String(256)),
    Column("end_time", String(256)),
    Column("session_id", BigInteger),
    Column("date_created", DateTime),
    Column("charging_power_kw", Float),
    # what the vendor sent when it differs from status (a v4 digit such as "2", another
    # casing); NULL: exactly status.  COALESCE(status_raw, status) is the raw value.
    Column("status_raw", String(128)),
    UniqueConstraint(
        "charge_point_id", "connector_id", "date_created", name="uq_connector_status_natural"
    ),
    Index("ix_connector_status_date_created", "date_created"),
    # a session's polls (load_polls, the balancer's recall) without the connector's history,
    # from the index alone (0013: it holds what load_polls reads but end_time, which does not
    # fit in the same key; that one has its own)
    Index(
        "ix_connector_status_session_id",
        "session_id",
        "charge_point_id",
        "connector_id",
        "date_created",
        "status",
        "total_consumption_kwh",
        "charging_power_kw",
        "session_type",
        "start_time",
    ),
    Index(
        "ix_connector_status_session_end",
        "session_id",
        "charge_point_id",
        "connector_id",
        "end_time",
    ),
)

measurement = Table(
    "measurement",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("phase", String(128)),
    Column("current", Float),
    Column("voltage", Float),
    Column("connector_id", Integer),
    Column("charge_point_id", String(128)),
    Column("comment", String(15000)),
    Column("session_id", BigInteger),
    Column("date_created", DateTime),
    UniqueConstraint(
        "charge_point_id",
        "connector_id",
        "date_created",
        "phase",
        name="uq_measurement_natural",
    ),
    Index("ix_measurement_date_created", "date_created"),
    # phase currents by session id (research queries)
    Index("ix_measurement_session_id", "session_id", "date_created"),
    # a connector's phases by time (the session tracker, plots) from the index alone (0013)
    Index(
        "ix_measurement_connector_time",
        "charge_point_id",
        "connector_id",
        "date_created",
        "phase",
        "current",
        "voltage",
    ),
)

poll_cycle = Table(
    "poll_cycle",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tick_time", DateTime, nullable=False),
    Column("chargers_asked", Integer, nullable=False),
    Column("chargers_ok", Integer, nullable=False),
    Column("chargers_failed", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("duration_s", Float, nullable=False),
    # grid ticks skipped (because the previous tick overran) just before this one
    Column("skipped_ticks", Integer, nullable=False, server_default=text("0")),
    # chargers the vendor reported Offline: answered, so neither ok nor failed, and no rows
    Column("chargers_offline", Integer, nullable=False, server_default=text("0")),
    UniqueConstraint("tick_time", name="uq_poll_cycle_tick_time"),
)

poll_gap = Table(
    "poll_gap",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tick_time", DateTime, nullable=False),
    Column("charge_point_id", String(128), nullable=False),
    # an error class name or short text; never a secret
    Column("reason", String(256)),
    UniqueConstraint("tick_time", "charge_point_id", name="uq_poll_gap_natural"),
    Index("ix_poll_gap_charge_point_id_tick_time", "charge_point_id", "tick_time"),
)

# Each change of a charger's availability (the vendor's charge point status: Online, Offline)
# as the polls saw it: tick_time is the first tick that showed the new status, so the charger
# changed between the tick before and this one.  previous_status NULL: the first status a
# collector run saw of the charger (a restart, or a charger new to it): what it was before is
# not known.  charge_point_status holds only the newest status; this is its history.
charge_point_availability = Table(
    "charge_point_availability",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tick_time", DateTime, nullable=False),
    Column("charge_point_id", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("previous_status", String(32)),
    UniqueConstraint("charge_point_id", "tick_time", name="uq_charge_point_availability_natural"),
    Index("ix_charge_point_availability_tick_time", "tick_time"),
)

# 15-minute rollups of the raw polls (charged/storage/rollup.py), kept forever, also after
# the retention deleted the raw rows (retention.raw_days).  bucket_start: the quarter hour's
# start (naive UTC).  Additive: every raw row is folded in once, by id.
measurement_rollup = Table(
    "measurement_rollup",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(128), nullable=False),
    Column("connector_id", Integer, nullable=False),
    Column("phase", String(128), nullable=False),
    Column("bucket_start", DateTime, nullable=False),
    Column("samples", Integer, nullable=False),  # polls with a current on this phase
    Column("current_sum", Double, nullable=False),  # A; the mean is current_sum / samples
    Column("current_max", Float, nullable=False),
    # ∑ current × voltage × the poll interval (collector.interval when folded), Wh
    Column("energy_wh", Double, nullable=False),
    UniqueConstraint(
        "charge_point_id",
        "connector_id",
        "bucket_start",
        "phase",
        name="uq_measurement_rollup_natural",
    ),
    Index("ix_measurement_rollup_bucket_start", "bucket_start"),
)

connector_status_rollup = Table(
    "connector_status_rollup",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(128), nullable=False),
    Column("connector_id", Integer, nullable=False),
    Column("bucket_start", DateTime, nullable=False),
    Column("status", String(128), nullable=False),  # '' for a poll without a status
    Column("polls", Integer, nullable=False),
    Column("seconds", Double, nullable=False),  # polls × the poll interval when folded
    UniqueConstraint(
        "charge_point_id",
        "connector_id",
        "bucket_start",
        "status",
        name="uq_connector_status_rollup_natural",
    ),
    Index("ix_connector_status_rollup_bucket_start", "bucket_start"),
)

# How far the rollups have folded each raw table: every id <= folded_to is in its rollup;
# seen is the highest id at the previous pass, which the next pass folds up to.
rollup_state = Table(
    "rollup_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("folded_to", BigInteger, nullable=False),
    Column("seen", BigInteger),
    Column("updated", DateTime),  # when a pass last moved it (UTC)
)

# Table name -> columns whose values identify a row; a second insert with the same values
# is a no-op.  charge_point_status is keyed by its primary key and upserted instead.
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "connector_status": ("charge_point_id", "connector_id", "date_created"),
    "measurement": ("charge_point_id", "connector_id", "date_created", "phase"),
    "poll_cycle": ("tick_time",),
    "poll_gap": ("tick_time", "charge_point_id"),
    "charge_point_availability": ("charge_point_id", "tick_time"),
    "balancer_decision": ("tick_time", "charge_point_id", "connector_id"),
    "balancer_fuse": ("tick_time", "fuse", "phase"),
    "meter_reading": ("fuse", "read_at"),
    "power_window": ("tick_time",),
}

# Tables whose rows update the existing row with the same primary key.
UPSERT_KEYS: dict[str, tuple[str, ...]] = {
    "charge_point_status": ("id",),
}

# Within one transaction the charge points go first, so readers never see a connector row
# whose charger is unknown.
WRITE_ORDER: tuple[str, ...] = (
    "charge_point_status",
    "connector_status",
    "measurement",
    "poll_cycle",
    "poll_gap",
    "charge_point_availability",
    "balancer_decision",
    "balancer_fuse",
    "meter_reading",
    "power_window",
)

# Control actions (charged/control): one row per field a CLI or API request tried to change,
# written after the attempt with its outcome, also when it failed or was refused.  Values are
# JSON text: "null" is a value (no current limit), SQL NULL an old value never read.
control_action = Table(
    "control_action",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created", DateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("charge_point_id", String(128), nullable=False),
    Column("connector_id", Integer),
    Column("action", String(32), nullable=False),
    Column("field", String(32)),
    Column("old_value", String(255)),
    Column("new_value", String(255)),
    Column("result", String(16), nullable=False),
    Column("error", String(1000)),
    Index("ix_control_action_charge_point_id_created", "charge_point_id", "created"),
)

# Charging sessions (charged/analysis): one row per vendor session, derived from the
# connector_status and measurement rows by the SessionTracker and reconciled with the vendor's
# chargingsessions endpoint.  start_time, end_time and energy_kwh are the best values known:
# the vendor's (vendor_* columns) once reconciled, else what the polls showed.  Durations are
# seconds; time the polls did not see (collector down, charger unreachable) is gap_s, never
# counted as charging or idle.
charging_session = Table(
    "charging_session",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("charge_point_id", String(128), nullable=False),
    Column("connector_id", Integer, nullable=False),
    Column("session_id", BigInteger, nullable=False),
    Column("session_type", String(32)),
    Column("start_time", DateTime),
    # NULL while the session runs
    Column("end_time", DateTime),
    Column("energy_kwh", Double),
    # the cross-check: ∑ current × voltage × Δt between the first and last poll, and what the
    # vendor's energy counter moved over the same polls
    Column("energy_from_power_kwh", Double),
    Column("observed_energy_kwh", Double),
    Column("peak_power_w", Float),
    Column("mean_power_w", Float),
    Column("phases", Integer),
    Column("connected_s", Float),
    Column("charging_s", Float),
    Column("idle_after_s", Float),
    Column("polls", Integer, nullable=False),
    Column("gap_count", Integer, nullable=False),
    Column("gap_s", Float, nullable=False),
    Column("first_poll", DateTime),
    Column("last_poll", DateTime),
    # the highest connector_status.id folded in: where the tracker resumes after a restart
    Column("last_status_id", Integer),
    Column("vendor_start", DateTime),
    Column("vendor_end", DateTime),
    Column("vendor_energy_kwh", Double),
    # who charged, as the vendor's chargingsessions say (the polls do not): the tag that
    # started the session (hex, NULL without one) and the vendor's user id
    Column("rfid", String(64)),
    Column("user_id", String(128)),
    Column("reconciled_at", DateTime),
    Column("updated", DateTime, nullable=False),
    UniqueConstraint(
        "charge_point_id", "connector_id", "session_id", name="uq_charging_session_natural"
    ),
    Index("ix_charging_session_start_time", "start_time"),
    Index("ix_charging_session_rfid", "rfid"),
)

# The balancer's decisions (charged/balancer/runtime.py): one row per connector per balancer
# step, in shadow mode too.  Currents are A per phase.  phases: the site phases the connector
# is counted on (learned from its car; all three while unknown).  limit_in_force_a: the limit
# read back before the step (NULL: not known yet).  limit_sent_a: the write the guarantee let
# out (in shadow mode: the one it would have sent), write_result what came of it (confirmed,
# unknown, refused, not_sent, shadow).  reason: why the allocation gave allocated_a
# (fair_share, car_max, paused_floor, pinned, offline, ...); deferred: why a different target
# was not sent this tick; bottleneck: the fuse/phase that limited it.
balancer_decision = Table(
    "balancer_decision",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tick_time", DateTime, nullable=False),
    Column("charge_point_id", String(128), nullable=False),
    Column("connector_id", Integer, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("phases", String(8)),
    Column("measured_a", Float),
    Column("allocated_a", Float),
    Column("limit_in_force_a", Float),
    Column("limit_sent_a", Float),
    Column("write_result", String(16)),
    Column("reason", String(32)),
    Column("deferred", String(255)),
    Column("bottleneck", String(160)),
    UniqueConstraint(
        "tick_time", "charge_point_id", "connector_id", name="uq_balancer_decision_natural"
    ),
    Index("ix_balancer_decision_charge_point_id_tick_time", "charge_point_id", "tick_time"),
)

# Each fuse and site phase at each balancer step: its limit, what the balancer may use of it
# (capacity: limit minus the margin), the envelope of the limits in force once the step's
# writes are out (each unconfirmed change counted at the higher of old and new) and the current
# the polls measured through it.  `charged balance status` prints the newest step.
balancer_fuse = Table(
    "balancer_fuse",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tick_time", DateTime, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("fuse", String(128), nullable=False),
    Column("parent", String(128)),  # the fuse above it (NULL: the root): the tree
    Column("phase", String(2), nullable=False),
    Column("limit_a", Float, nullable=False),
    Column("capacity_a", Float, nullable=False),
    Column("envelope_a", Float, nullable=False),
    Column("measured_a", Float, nullable=False),
    UniqueConstraint("tick_time", "fuse", "phase", name="uq_balancer_fuse_natural"),
)

# Site meters (charged/meters): what else a fuse feeds besides the chargers (the building's
# own load), as read, A per site phase (a meter in W divided by its voltage).  One row per
# meter and second at most (read_at: when charged received it, whole seconds); source: mqtt
# or http.  The balancer subtracted the fresh reading plus the meter's headroom from the
# fuse (balancer_fuse.capacity_a shows what was left).
meter_reading = Table(
    "meter_reading",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("read_at", DateTime, nullable=False),
    Column("fuse", String(128), nullable=False),
    Column("source", String(8), nullable=False),
    Column("l1_a", Float, nullable=False),
    Column("l2_a", Float, nullable=False),
    Column("l3_a", Float, nullable=False),
    UniqueConstraint("fuse", "read_at", name="uq_meter_reading_natural"),
    Index("ix_meter_reading_read_at", "read_at"),
)

# The site's power target (site.power_target) at each balancer step: the window in progress
# (window_start, window_s), the energy it has used so far (chargers + building, Wh), the site's
# power at the step and the building's part of it, the target in force (the month's peak in
# monthly mode when higher), the highest window mean of the month (month: YYYY-MM, the site's
# local time) and the mean of the caps put on the chargers under the top fuse (A per phase).
# A restart takes the window and the month's peak back from the newest row.
power_window = Table(
    "power_window",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tick_time", DateTime, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("window_start", DateTime, nullable=False),
    Column("window_s", Integer, nullable=False),
    Column("month", String(7), nullable=False),
    Column("energy_wh", Float, nullable=False),
    Column("power_w", Float, nullable=False),
    Column("building_w", Float, nullable=False),
    Column("target_w", Float, nullable=False),
    Column("month_peak_w", Float, nullable=False),
    Column("cap_a", Float, nullable=False),
    UniqueConstraint("tick_time", name="uq_power_window_natural"),
)
