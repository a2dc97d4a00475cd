"""Issue 12 item 8: the alert rules in deploy/prometheus/ are valid Prometheus rules, fire in
the cases alerts.test.yml describes, and use only metrics and labels a running collector
exports (scraped from a real daemon's /metrics, labels from its registry).

promtool is Debian's ``prometheus`` package (``.ci/run`` installs it).  Outside CI a machine
without it skips the promtool tests; under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from charged.config import settings_from_mapping
from charged.daemon.service import Daemon
from charged.simulator import Simulator, SimulatorConfig

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/alerts.yml"
RULE_TESTS = ROOT / "deploy/prometheus/alerts.test.yml"
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# what Prometheus itself gives every target: the scrape's own series and target labels
PROMETHEUS_SERIES = {"up"}
TARGET_LABELS = {"job", "instance"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "unless", "and", "or", "bool"}
# the alerts the issue asks for (charger offline: charged_charger_online exists)
REQUIRED_ALERTS = {
    "ChargedCollectorStalled",
    "ChargedDatabaseDown",
    "ChargedSpoolFilling",
    "ChargedRowsDropped",
    "ChargedVendorOutage",
    "ChargedChargerOffline",
    "ChargedTokenRefreshFailing",
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool not found (Debian package prometheus: apt-get install prometheus)"
        if IN_CI:
            pytest.fail(f"{message}; under CI=true the alert rules must be checked")
        pytest.skip(message)
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_promtool_check_rules_accepts_the_file() -> None:
    done = run_promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_test_rules_every_case_passes() -> None:
    done = run_promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_test_rules_would_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """The cases are not vacuous: a rule that fires an hour late fails them."""
    broken = RULES.read_text(encoding="utf-8").replace(
        "expr: charged_vendor_outage == 1\n        for: 10m",
        "expr: charged_vendor_outage == 1\n        for: 70m",
    )
    assert broken != RULES.read_text(encoding="utf-8")
    (tmp_path / "alerts.yml").write_text(broken, encoding="utf-8")
    shutil.copy(RULE_TESTS, tmp_path / "alerts.test.yml")
    done = run_promtool("test", "rules", str(tmp_path / "alerts.test.yml"))
    assert done.returncode != 0 and "ChargedVendorOutage" in done.stdout + done.stderr


def test_every_alert_is_tested_and_the_required_ones_exist() -> None:
    names = {rule["alert"] for rule in rules()}
    assert names >= REQUIRED_ALERTS
    cases = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    fired = {
        check["alertname"]
        for case in cases
        for check in case["alert_rule_test"]
        if check.get("exp_alerts")
    }
    assert fired == names  # each alert has a case in which it fires
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_prometheus_loads_the_rules_file() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    assert (PROMETHEUS_CONFIG.parent / config["rule_files"][0]).resolve() == RULES.resolve()


# ---------------------------------------------------------------- against the real metrics


@pytest.fixture
async def exported() -> AsyncIterator[dict[str, set[str]]]:
    """Sample name → label names, as a collector after one tick exports them: the names
    from its /metrics over HTTP, the labels from its registry (a labelled metric with no
    sample yet, e.g. a refresh that has not failed, shows its name only)."""
    sim = Simulator(SimulatorConfig(chargers=2, seed=8, speed=1.0))
    await sim.start("127.0.0.1", 0)
    workdir = Path(tempfile.mkdtemp(prefix="charged-alerts-"))
    settings = settings_from_mapping(
        {
            "api": {
                "base_url": sim.base_url,
                "email": sim.account.email,
                "password": sim.account.password,
                "api_key": sim.account.api_key,
                "max_requests_per_second": None,
            },
            "database": {"url": f"sqlite+aiosqlite:///{workdir / 'charged.db'}"},
            "spool": {"directory": str(workdir / "spool")},
            "ops": {"host": "127.0.0.1", "port": 0},
        },
        source="test",
    )
    collector = Daemon(settings)
    try:
        await collector.start()
        assert collector.supervisor is not None and collector.ops is not None
        await collector.supervisor.tick()
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{collector.ops.port}/metrics") as answer,
        ):
            assert answer.status == 200
            text = await answer.text()
        labels_of = {
            c._name: set(c._labelnames)
            for c in collector.metrics.registry._collector_to_names
            if isinstance(c, MetricWrapperBase)
        }
    finally:
        await collector.close()
        await sim.stop()
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in suffixes.get(family.type, ("",)):
            labels = labels_of.get(family.name, set()) | ({"le"} if suffix == "_bucket" else set())
            names[family.name + suffix] = labels
    yield names


def series_in(expr: str) -> set[str]:
    """Metric names an expression reads (not functions, keywords, labels or durations)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_groups = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", without_labels)
    tokens = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", without_groups))
    return {t for t in tokens if t not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhd]", t)}


def labels_in(expr: str) -> set[str]:
    selected = set(re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"", expr))
    grouped = {
        label.strip()
        for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr)
        for label in group.split(",")
        if label.strip()
    }
    return selected | grouped


def static_target_labels() -> set[str]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    return TARGET_LABELS.union(
        *(
            set(s.get("labels", {}))
            for job in config["scrape_configs"]
            for s in job["static_configs"]
        )
    )


def test_every_metric_and_label_an_alert_uses_is_exported(
    exported: dict[str, set[str]],
) -> None:
    assert "charged_ticks_total" in exported and "charged_vendor_outage" in exported
    for rule in rules():
        expr = rule["expr"]
        used = series_in(expr)
        assert used, (rule["alert"], expr)
        missing = used - set(exported) - PROMETHEUS_SERIES
        assert not missing, f"{rule['alert']}: {sorted(missing)} not exported by charged"
        available = static_target_labels().union(*(exported.get(m, set()) for m in used))
        unknown = labels_in(expr) - available
        assert not unknown, f"{rule['alert']}: no label {sorted(unknown)}"
        templated = set(re.findall(r"\$labels\.([a-z_]+)", str(rule["annotations"])))
        assert templated <= available, (rule["alert"], templated - available)


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("charged_vendor_outages == 1", "charged_vendor_outages"),
        ("increase(charged_tick_total[10m]) == 0", "charged_tick_total"),
        ('charged_rows_dropped_total{tabel="measurement"}', "tabel"),
    ],
)
def test_the_metric_check_catches_a_wrong_name_or_label(
    exported: dict[str, set[str]], expr: str, problem: str
) -> None:
    used = series_in(expr)
    available = static_target_labels().union(*(exported.get(m, set()) for m in used))
    wrong = (used - set(exported) - PROMETHEUS_SERIES) | (labels_in(expr) - available)
    assert problem in wrong
