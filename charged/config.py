"""YAML configuration → typed, validated settings.

Everything an operator can set lives in one YAML file (see ``config.example.yaml``).  Secrets
(``api.email``, ``api.password``, ``api.api_key`` and the database URL's password) need not be
in the file: each secret ``X`` may instead come from ``X_file`` (a path whose content is the
value, e.g. a systemd credential) or from the environment variable ``CHARGED_API_X``, which
wins over both.  ``CHARGED_DATABASE_URL`` likewise replaces
``database.url``.  Every problem is reported as one :class:`ConfigError` line naming the file
and the key.

:class:`Settings` composes the sections: the service's own (:mod:`charged.config_service`) and
the balancer's (:mod:`charged.config_site`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import Field, ValidationError

from charged.config_base import Section as _Section
from charged.config_service import (
    ApiSettings,
    CollectorSettings,
    ControlSettings,
    DatabaseSettings,
    LogSettings,
    MqttSettings,
    OpsSettings,
    RetentionSettings,
    SessionSettings,
    ShutdownSettings,
    SpoolSettings,
    WriterSettings,
)
from charged.config_site import (
    BalancerSettings,
    PriceSettings,
    SiteSettings,
)

SECRET_FIELDS = ("email", "password", "api_key")
DATABASE_URL_ENV = "CHARGED_DATABASE_URL"


class ConfigError(Exception):
    """A configuration problem, as one line a person can act on."""


class Settings(_Section):
    api: ApiSettings = Field(default_factory=ApiSettings)
    collector: CollectorSettings = Field(default_factory=CollectorSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    writer: WriterSettings = Field(default_factory=WriterSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    shutdown: ShutdownSettings = Field(default_factory=ShutdownSettings)
    control: ControlSettings = Field(default_factory=ControlSettings)
    sessions: SessionSettings = Field(default_factory=SessionSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    site: SiteSettings = Field(default_factory=SiteSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    balancer: BalancerSettings = Field(default_factory=BalancerSettings)
    prices: PriceSettings = Field(default_factory=PriceSettings)
    # where this file came from (for messages); not a YAML key
    source: str = Field(default="<defaults>", exclude=True)
    # problems worth a warning but not fatal (e.g. file readable by others)
    warnings: tuple[str, ...] = Field(default=(), exclude=True)

    @property
    def email(self) -> str:
        return _required(self.api.email, "email", self.source)

    @property
    def password(self) -> str:
        return _required(self.api.password, "password", self.source)

    @property
    def api_key(self) -> str:
        return _required(self.api.api_key, "api_key", self.source)


# Settings fields that the loader fills in (where the file came from, what to warn about):
# a file naming them is refused like any other unknown key.
INTERNAL_FIELDS = ("source", "warnings")


def _required(value: str | None, name: str, source: str) -> str:
    if not value:
        raise ConfigError(f"{source}: api.{name} is missing: {_secret_hint(name)}")
    return value


def _secret_hint(name: str) -> str:
    return (
        f"set api.{name}, or api.{name}_file to a file holding it, "
        f"or the environment variable {env_name(name)}"
    )


def env_name(secret: str) -> str:
    return f"CHARGED_API_{secret.upper()}"


def load_settings(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    require_secrets: bool = True,
) -> Settings:
    """Read, validate and resolve the YAML file at ``path``."""
    env = os.environ if environ is None else environ
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: config file not found; copy config.example.yaml there or pass -c PATH"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{file}: YAML syntax error{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of sections (api, database, …)")
    warnings = _permission_warnings(file, data)
    return settings_from_mapping(
        data, source=str(file), environ=env, require_secrets=require_secrets, warnings=warnings
    )


def settings_from_mapping(
    data: Mapping[str, Any],
    *,
    source: str = "<config>",
    environ: Mapping[str, str] | None = None,
    require_secrets: bool = True,
    warnings: tuple[str, ...] = (),
) -> Settings:
    env = os.environ if environ is None else environ
    for key in INTERNAL_FIELDS:  # fields of Settings, but not keys of the file
        if key in data:
            raise ConfigError(
                f"{source}: unknown key '{key}'; check its spelling against config.example.yaml"
            )
    try:
        settings = Settings.model_validate({**data, "source": source, "warnings": warnings})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from None
    # a command that needs only the database (db upgrade, sessions, export) must work on a
    # machine where the vendor's secrets or the control token cannot be read
    api = _resolve_secrets(settings.api, source, env, strict=require_secrets)
    updates: dict[str, Any] = {"api": api}
    if env.get(DATABASE_URL_ENV):
        # The URL may hold the database password: let it come from the environment too.
        try:
            updates["database"] = DatabaseSettings(
                url=env[DATABASE_URL_ENV], migrate_on_start=settings.database.migrate_on_start
            )
        except ValidationError as exc:
            raise ConfigError(f"{DATABASE_URL_ENV}: {_describe(exc)}") from None
    updates["control"] = _resolve_control(settings.control, source, env, strict=require_secrets)
    if settings.control.enabled and not settings.ops.enabled:
        # The control API lives on the ops HTTP server: without it there would be no API
        # at all, silently.
        raise ConfigError(
            f"{source}: control.enabled is true but ops.enabled is false: the control API is "
            "served by the ops HTTP server; set ops.enabled: true (or control.enabled: false)"
        )
    if settings.balancer.mode != "off" and settings.site.fuse is None:
        raise ConfigError(
            f"{source}: balancer.mode is {settings.balancer.mode} but there is no site: "
            "describe the fuse tree under site (see config.example.yaml)"
        )
    topics = [name for name, m in settings.site.meters.items() if m.mqtt_topic is not None]
    if topics and settings.mqtt.host is None:
        raise ConfigError(
            f"{source}: site.meters.{topics[0]}.mqtt_topic is set but mqtt.host is not: "
            "name the broker under mqtt (see config.example.yaml)"
        )
    updates["mqtt"] = _resolve_mqtt(settings.mqtt, source, env, strict=require_secrets)
    settings = settings.model_copy(update=updates)
    if require_secrets:
        for name in SECRET_FIELDS:
            _required(getattr(api, name), name, source)
    return settings


def _describe(exc: ValidationError) -> str:
    """The first validation error as 'key.path: what is wrong'."""
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"unknown key '{key}'; check its spelling against config.example.yaml"
    message = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    leaf = key.split(".")[-1]
    if leaf in SECRET_FIELDS or leaf == "token" or isinstance(value, dict):
        shown = ""
    elif leaf == "url" and isinstance(value, str):
        shown = f" (got {_mask_url(value)!r})"  # a database URL may hold its password
    else:
        shown = f" (got {value!r})"
    more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return f"{key}: {message}{shown}{more}"


def _mask_url(url: str) -> str:
    """``url`` with any password replaced by ***; unparsable URLs are not shown at all."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(not shown: it may hold a password)"


def _resolve_secrets(
    api: ApiSettings, source: str, env: Mapping[str, str], *, strict: bool = True
) -> ApiSettings:
    """The secrets from the file, their *_file or the environment.  Not ``strict``: a secret
    file that cannot be read leaves the secret unset instead of stopping the command."""
    updates: dict[str, str | None] = {}
    for name in SECRET_FIELDS:
        value: str | None = getattr(api, name)
        secret_file: Path | None = getattr(api, f"{name}_file")
        if secret_file is not None:
            if value:
                raise ConfigError(
                    f"{source}: api.{name} and api.{name}_file are both set; keep one"
                )
            try:
                value = secret_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                if strict:
                    raise ConfigError(
                        f"{source}: api.{name}_file: cannot read {secret_file}: {exc.strerror}"
                    ) from None
                value = None
        from_env = env.get(env_name(name))
        if from_env:
            value = from_env
        updates[name] = value
    return api.model_copy(update=updates)


MQTT_PASSWORD_ENV = "CHARGED_MQTT_PASSWORD"


def _resolve_mqtt(
    mqtt: MqttSettings, source: str, env: Mapping[str, str], *, strict: bool = True
) -> MqttSettings:
    """The broker's password from the file, mqtt.password_file or the environment."""
    password = mqtt.password
    if mqtt.password_file is not None:
        try:
            password = mqtt.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            if strict:
                raise ConfigError(
                    f"{source}: mqtt.password_file: cannot read {mqtt.password_file}: "
                    f"{exc.strerror}"
                ) from None
            password = None
    password = env.get(MQTT_PASSWORD_ENV) or password
    return mqtt.model_copy(update={"password": password})


CONTROL_TOKEN_ENV = "CHARGED_CONTROL_TOKEN"
MIN_CONTROL_TOKEN = 16


def _resolve_control(
    control: ControlSettings, source: str, env: Mapping[str, str], *, strict: bool = True
) -> ControlSettings:
    token = control.token
    if control.token_file is not None:
        try:
            token = control.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            if strict:
                raise ConfigError(
                    f"{source}: control.token_file: cannot read {control.token_file}: "
                    f"{exc.strerror}"
                ) from None
            token = None
    token = env.get(CONTROL_TOKEN_ENV) or token
    if strict and control.enabled and (not token or len(token) < MIN_CONTROL_TOKEN):
        raise ConfigError(
            f"{source}: control.enabled is true but control.token is missing or shorter than "
            f"{MIN_CONTROL_TOKEN} characters: set control.token, control.token_file or "
            f"{CONTROL_TOKEN_ENV} (e.g. from: openssl rand -hex 32)"
        )
    return control.model_copy(update={"token": token})


# Secrets that may be written in the config file itself, and where else each can come from.
_INLINE_SECRETS = (
    ("api", "password", f"api.password_file or {env_name('password')}"),
    ("api", "api_key", f"api.api_key_file or {env_name('api_key')}"),
    ("control", "token", f"control.token_file or {CONTROL_TOKEN_ENV}"),
    ("mqtt", "password", f"mqtt.password_file or {MQTT_PASSWORD_ENV}"),
)


def _inline_secrets(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, where else it can come from) of every secret written in the file's own text."""
    found: list[tuple[str, str]] = []
    for section, name, elsewhere in _INLINE_SECRETS:
        part = data.get(section)
        if isinstance(part, Mapping) and part.get(name):
            found.append((f"{section}.{name}", elsewhere))
    database = data.get("database")
    url = database.get("url") if isinstance(database, Mapping) else None
    if isinstance(url, str):
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            found.append(("the password in database.url", DATABASE_URL_ENV))
    return found


def _permission_warnings(file: Path, data: Mapping[str, Any]) -> tuple[str, ...]:
    """A warning when others can read the file and it holds a secret itself.

    A file with no secret in it (they come from the environment or from *_file) may stay
    world-readable: the compose config is mounted read-only for the container's own uid,
    and chmod 600 on the host would lock that uid out.
    """
    try:
        mode = file.stat().st_mode
    except OSError:
        return ()
    secrets = _inline_secrets(data)
    if not (mode & stat.S_IROTH and secrets):
        return ()
    keys = ", ".join(key for key, _ in secrets)
    elsewhere = "; ".join(
        f"{key.removeprefix('the password in ')} → {where}" for key, where in secrets
    )
    return (
        f"{file} is readable by other users and holds {keys}: run chmod 600 {file} (or 640 "
        f"with the service's group), or move the secret out of it ({elsewhere})",
    )
