"""The sections of the service itself: the vendor API (``api:``), polling (``collector:``),
storage (``database:``, ``writer:``, ``spool:``, ``sessions:``, ``retention:``), operation
(``log:``, ``ops:``, ``shutdown:``), the control API (``control:``) and the MQTT broker
(``mqtt:``); composed into :class:`charged.config.Settings`, whose loader resolves their
secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from charged.config_base import PositiveFloat, PositiveInt
from charged.config_base import Section as _Section


class ApiSettings(_Section):
    base_url: str = "https://eapi.charge.space"
    version: Literal["v4", "v5"] = "v5"
    email: str | None = Field(default=None, repr=False)
    email_file: Path | None = None
    password: str | None = Field(default=None, repr=False)
    password_file: Path | None = None
    api_key: str | None = Field(default=None, repr=False)
    api_key_file: Path | None = None
    request_timeout: PositiveFloat = 10.0
    # the largest vendor answer read (bytes); a larger one is a payload error, not read
    max_body_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    max_concurrency: PositiveInt = 10
    # None: no requests-per-second cap (concurrency still applies)
    max_requests_per_second: PositiveFloat | None = 20.0
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 4
    # where the bearer token is cached between runs (daemon and CLI share it); None: memory only
    token_cache: Path | None = None
    # the account's organisation id: each tick asks GET /organisations/{id}/chargepoints/
    # statuses once (v5) instead of one request per charger; None: one request per charger
    organisation_id: str | None = None

    @field_validator("organisation_id")
    @classmethod
    def _organisation(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value or "/" in value:
            raise ValueError("must be the organisation's id (no '/'), or null")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local simulator)")
        return value.rstrip("/")


class CollectorSettings(_Section):
    interval: Annotated[float, Field(ge=1)] = 30.0
    # re-read the list of owned chargers every N ticks (new or removed chargers show up)
    rediscover_every: PositiveInt = 20
    # only these charge point ids are polled; empty: every owned charger
    charge_points: list[str] = Field(default_factory=list)
    # share of the interval a tick's requests (with retries) may take before they give up
    deadline_fraction: Annotated[float, Field(gt=0, le=1)] = 0.9


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///charged.db"
    migrate_on_start: bool = True

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("mysql+asyncmy://", "sqlite+aiosqlite://")):
            raise ValueError(
                "must start with mysql+asyncmy:// or sqlite+aiosqlite:// "
                "(e.g. mysql+asyncmy://charged:PASSWORD@127.0.0.1:3306/charged)"
            )
        return value


class WriterSettings(_Section):
    batch_size: PositiveInt = 5000
    flush_interval: PositiveFloat = 1.0
    # items (one per charger per tick) waiting for the writer before producers wait
    queue_size: PositiveInt = 20000
    # longest wait between attempts to reach a database that failed (jittered, doubling)
    retry_backoff_max: PositiveFloat = 30.0
    # a write that takes longer counts as failed (a server that hangs rather than refuses)
    write_timeout: PositiveFloat = 60.0


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    # auto: readable console lines in a terminal, JSON lines otherwise
    format: Literal["auto", "console", "json"] = "auto"


class SpoolSettings(_Section):
    # batches the database cannot take wait here, on disk, until it answers again
    directory: Path = Path("spool")
    max_bytes: PositiveInt = 512 * 1024 * 1024
    fsync_interval: PositiveFloat = 1.0


class OpsSettings(_Section):
    # /healthz, /readyz, /metrics (and the control API when enabled)
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9464


class ShutdownSettings(_Section):
    # on SIGTERM: seconds to write what is queued before the rest goes to the spool
    drain_timeout: PositiveFloat = 30.0


class SessionSettings(_Section):
    # charging_session: derived from the stored polls, reconciled with the vendor's sessions
    enabled: bool = True
    update_interval: PositiveFloat = 300.0  # seconds between passes over the new polls
    reconcile_interval: PositiveFloat = 900.0  # seconds between chargingsessions reads


class RetentionSettings(_Section):
    # 15-minute rollups of the polls, kept forever (measurement_rollup,
    # connector_status_rollup), and how long the raw connector_status/measurement rows stay
    rollups: bool = True
    # None: raw rows are kept forever; else deleted once this many days old (and folded).
    # At least 7: the session tracker re-reads a running session's polls from its start.
    raw_days: Annotated[int, Field(ge=7)] | None = None
    # balancer_decision and poll_gap (no rollups): None keeps them, else deleted once this
    # many days old.  Decisions at least 7: the balancer reads back a plugged-in car's
    # decisions since its session began when it starts.
    decision_days: Annotated[int, Field(ge=7)] | None = None
    gap_days: Annotated[int, Field(ge=1)] | None = None
    # balancer_fuse and power_window (no rollups either).  power_window at least 32: a
    # restarted daemon takes the month's peak (monthly mode) back from the newest row, and a
    # row of the month in progress is never older than 31 days.
    fuse_days: Annotated[int, Field(ge=1)] | None = None
    power_days: Annotated[int, Field(ge=32)] | None = None
    interval: Annotated[float, Field(ge=60)] = 300.0  # seconds between passes
    batch_rows: Annotated[int, Field(ge=100, le=100_000)] = 5000  # rows per transaction

    @model_validator(mode="after")
    def _raw_rows_go_only_into_rollups(self) -> RetentionSettings:
        if self.raw_days is not None and not self.rollups:
            raise ValueError(
                "raw_days needs rollups: true (raw rows are deleted only once they are in "
                "the rollups); set rollups: true or raw_days: null"
            )
        return self


class ControlSettings(_Section):
    # the HTTP control API on the ops server; off unless enabled, always needs the token
    enabled: bool = False
    token: str | None = Field(default=None, repr=False)
    token_file: Path | None = None


class MqttSettings(_Section):
    """The MQTT broker the site meters' topics are read from (site.meters.*.mqtt_topic)."""

    host: str | None = None  # None: no broker (no meter may then name a topic)
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    # TLS with the system's certificate authorities, the broker's host name checked
    tls: bool = False
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    password_file: Path | None = None
    client_id: str | None = None  # None: the broker assigns one
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 30
    # a lost broker is tried again after reconnect_min_s, doubling up to reconnect_max_s
    reconnect_min_s: PositiveFloat = 1.0
    reconnect_max_s: PositiveFloat = 60.0

    @model_validator(mode="after")
    def _backoff(self) -> MqttSettings:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        if self.password is not None and self.password_file is not None:
            raise ValueError("password and password_file are both set; keep one")
        return self
