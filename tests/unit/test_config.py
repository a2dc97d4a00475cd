"""Config loading: defaults, secrets from files and the environment, one-line errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from charged.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]
SECRETS_ENV = {
    "CHARGED_API_EMAIL": "a@b.c",
    "CHARGED_API_PASSWORD": "pw-from-env",
    "CHARGED_API_API_KEY": "key-from-env",
}


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_example_config_is_valid(tmp_path: Path) -> None:
    # The shipped example must load as is (secrets from the environment).
    (tmp_path / "password").write_text("x")
    text = (ROOT / "config.example.yaml").read_text()
    text = text.replace("/etc/charged/password", str(tmp_path / "password"))
    text = text.replace("/etc/charged/api_key", str(tmp_path / "password"))
    settings = load_settings(write(tmp_path, text), environ={})
    assert settings.api.version == "v5"
    assert settings.collector.interval == 30
    assert settings.database.url.startswith("mysql+asyncmy://")
    assert settings.password == "x"


def test_defaults_and_env_secrets(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "{}\n"), environ=SECRETS_ENV)
    assert settings.api.base_url == "https://eapi.charge.space"
    assert settings.collector.interval == 30.0
    assert settings.collector.rediscover_every == 20
    assert settings.writer.batch_size == 5000
    assert settings.database.url.startswith("sqlite+aiosqlite://")
    assert (settings.email, settings.password, settings.api_key) == (
        "a@b.c",
        "pw-from-env",
        "key-from-env",
    )


def test_secret_from_file_and_env_wins(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    path = write(tmp_path, f"api:\n  email: e@x\n  api_key: k\n  password_file: {secret}\n")
    assert load_settings(path, environ={}).password == "from-file"
    env = {"CHARGED_API_PASSWORD": "from-env"}
    assert load_settings(path, environ=env).password == "from-env"


def test_database_url_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  migrate_on_start: false\n")
    env = {**SECRETS_ENV, "CHARGED_DATABASE_URL": "mysql+asyncmy://u:p@db/charged"}
    settings = load_settings(path, environ=env)
    assert settings.database.url == "mysql+asyncmy://u:p@db/charged"
    assert settings.database.migrate_on_start is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api:\n  emial: x\n", "unknown key 'api.emial'"),
        ("colector:\n  interval: 3\n", "unknown key 'colector'"),
        ("collector:\n  interval: soon\n", "collector.interval: Input should be a valid number"),
        ("collector:\n  interval: 0.5\n", "collector.interval: Input should be greater than"),
        ("api:\n  version: v9\n", "api.version: Input should be 'v4' or 'v5'"),
        ("database:\n  url: postgres://x\n", "database.url: must start with mysql+asyncmy://"),
        ("api: [1, 2]\n", "api: Input should be"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("api:\n  email: [unclosed\n", "YAML syntax error at line"),
        # fields the loader fills in are not keys of the file
        ("source: /tmp/elsewhere.yaml\n", "unknown key 'source'"),
        ("warnings: []\n", "unknown key 'warnings'"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ=SECRETS_ENV)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert expected in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_missing_password_names_all_three_ways(tmp_path: Path) -> None:
    path = write(tmp_path, "api:\n  email: e@x\n  api_key: k\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    message = str(err.value)
    assert "api.password is missing" in message
    assert "api.password_file" in message and "CHARGED_API_PASSWORD" in message


def test_unreadable_secret_file(tmp_path: Path) -> None:
    path = write(tmp_path, f"api:\n  password_file: {tmp_path / 'absent'}\n")
    with pytest.raises(ConfigError, match=r"api\.password_file: cannot read"):
        load_settings(path, environ={})


def test_secret_value_never_echoed_in_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "api:\n  password: [hunter2]\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert "hunter2" not in str(err.value)
    assert "api.password" in str(err.value)


def test_world_readable_file_with_an_inline_secret_warns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "api:\n  password: hunter2-inline\n  api_key: k-inline\n"
        "database:\n  url: mysql+asyncmy://charged:db-pw-inline@db:3306/charged\n"
        "control:\n  token: t0k3n-inline-0123456789\n",
    )
    os.chmod(path, 0o644)
    (warning,) = load_settings(path, environ=SECRETS_ENV).warnings
    assert warning.startswith(
        f"{path} is readable by other users and holds api.password, api.api_key, "
        "control.token, the password in database.url: "
        f"run chmod 600 {path} (or 640 with the service's group), or move the secret out of it"
    )
    for where in ("CHARGED_API_PASSWORD", "api.api_key_file", "CHARGED_CONTROL_TOKEN"):
        assert where in warning
    assert "database.url → CHARGED_DATABASE_URL" in warning
    assert not any(s in warning for s in ("hunter2", "k-inline", "db-pw", "t0k3n"))
    os.chmod(path, 0o640)  # group-readable (the service's group) is what the docs say
    assert load_settings(path, environ=SECRETS_ENV).warnings == ()


def test_world_readable_file_without_secrets_does_not_warn(tmp_path: Path) -> None:
    # the compose config: secrets from the environment or *_file, mounted read-only for the
    # container's uid; chmod 600 on the host would lock that uid out, so no warning
    (tmp_path / "pw").write_text("from-a-file")
    path = write(
        tmp_path,
        f"api:\n  email: owner@example.com\n  password_file: {tmp_path / 'pw'}\n"
        "database:\n  url: mysql+asyncmy://charged@mysql:3306/charged\n",
    )
    os.chmod(path, 0o644)
    env = {**SECRETS_ENV, "CHARGED_DATABASE_URL": "mysql+asyncmy://charged:pw@mysql/charged"}
    del env["CHARGED_API_PASSWORD"]
    settings = load_settings(path, environ=env)
    assert settings.password == "from-a-file" and settings.warnings == ()
    compose = ROOT / "deploy" / "compose" / "config.yaml"
    assert load_settings(compose, environ=SECRETS_ENV).warnings == ()


def test_a_refused_database_url_is_shown_without_its_password(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  url: postgresql://charged:s3cret-pw@db/charged\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ=SECRETS_ENV)
    message = str(err.value)
    assert "s3cret-pw" not in message
    assert "database.url" in message and "postgresql://charged:***@db/charged" in message


def test_a_port_that_is_not_a_number_is_one_clear_line() -> None:
    from charged.storage.engine import StorageError, create_engine

    with pytest.raises(StorageError, match="database URL is not valid") as err:
        create_engine("mysql+asyncmy://charged:s3cret-pw@db:33o6/charged")
    assert "s3cret-pw" not in str(err.value)


def test_control_api_without_the_ops_server_is_a_config_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ops:\n  enabled: false\ncontrol:\n  enabled: true\n  token: t0k3n-inline-0123456789\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=SECRETS_ENV)
    message = str(caught.value)
    assert message == (
        f"{path}: control.enabled is true but ops.enabled is false: the control API is served "
        "by the ops HTTP server; set ops.enabled: true (or control.enabled: false)"
    )
    # either one alone is fine
    for text in ("ops:\n  enabled: false\n", "control:\n  enabled: false\n"):
        load_settings(write(tmp_path, text), environ=SECRETS_ENV)


def test_charged_run_exits_78_on_control_without_ops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from charged.cli import main

    for name, value in SECRETS_ENV.items():
        monkeypatch.setenv(name, value)
    path = write(
        tmp_path,
        "ops:\n  enabled: false\ncontrol:\n  enabled: true\n  token: t0k3n-inline-0123456789\n",
    )
    assert main(["run", "-c", str(path)]) == 78
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ops.enabled is false" in err


def test_the_example_shows_every_key(tmp_path: Path) -> None:
    # every key of every section, set or commented out (a secret is best left out of it)
    from pydantic import BaseModel

    from charged.config import INTERNAL_FIELDS, Settings

    sections: dict[str, list[str]] = {}
    current = None
    for line in (ROOT / "config.example.yaml").read_text().splitlines():
        top = re.match(r"^([a-z_]+):", line)
        if top:
            current = top.group(1)
            sections[current] = []
        key = re.match(r"^\s+#?\s*([a-z_]+):", line)
        if key and current is not None:
            sections[current].append(key.group(1))
    for name, field in Settings.model_fields.items():
        if name in INTERNAL_FIELDS:
            continue
        assert name in sections, f"config.example.yaml has no section {name}"
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        missing = set(model.model_fields) - set(sections[name])
        assert not missing, f"config.example.yaml does not show {name}.{sorted(missing)}"


def test_a_database_command_does_not_need_the_vendors_secrets(tmp_path: Path) -> None:
    # config.example.yaml as copied to a machine where /etc/charged/password does not exist
    # (yet): `charged db upgrade -c` reads only database.url
    text = (
        "api:\n  email: owner@example.com\n  password_file: /nonexistent/password\n"
        "  api_key_file: /nonexistent/api_key\n"
        "database:\n  url: sqlite+aiosqlite:///x.db\n"
        "ops:\n  enabled: true\n"
        "control:\n  enabled: true\n  token_file: /nonexistent/token\n"
    )
    path = write(tmp_path, text)
    settings = load_settings(path, environ={}, require_secrets=False)
    assert settings.database.url == "sqlite+aiosqlite:///x.db"
    assert settings.api.password is None and settings.control.token is None
    # the collector still refuses, naming the file it cannot read
    with pytest.raises(
        ConfigError, match=re.escape("api.password_file: cannot read /nonexistent/password")
    ):
        load_settings(path, environ={})
