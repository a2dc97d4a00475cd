"""`charged plan rotation` end to end: from a scenario file and from stored polls in SQLite.

Three chargers under one 40 A fuse, all wired L1L2L3; on each of two days three one-phase
16 A cars charge at once, one per charger: today they all load site L1 (48 A), the plan puts
them on three phases (16 A each), which the check day (not fitted on) confirms, and the
balancer delivers more under the same fuse with it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from charged.cli import main
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.schema import charging_session, measurement, poll_cycle

pytest.importorskip("scipy")

CHARGERS = ("CP1", "CP2", "CP3")
SITE = """\
site:
  fuse: {name: main, limit: 40, chargers: [CP1, CP2, CP3]}
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    return path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["plan", "rotation", *argv, "--json", "--time-limit", "20"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def main_max(period: dict[str, Any], wiring: str) -> float:
    (fuse,) = period[wiring]
    return float(max(fuse["peakA"]))


def test_a_scenario_planned_on_day_one_holds_on_day_two(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["arrival,departure,energy_kwh,phases,max_current,charger,connector"]
    for day in ("2026-03-02", "2026-03-03"):
        for cp in CHARGERS:
            rows.append(f"{day}T08:00:00Z,{day}T12:00:00Z,13,1,16,{cp},1")
    scenario = tmp_path / "two-days.csv"
    scenario.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = run_json(
        capsys, "--scenario", str(scenario), "--site", str(site), "--fit-until", "2026-03-03"
    )
    assert out["solver"]["peakProven"] and out["solver"]["unbalanceProven"]
    planned = {c["charger"]: c["plan"] for c in out["chargers"]}
    assert sorted(r[:2] for r in planned.values()) == ["L1", "L2", "L3"]  # terminal L1's phase
    assert sum(c["rewire"] for c in out["chargers"]) == 2
    fit, check = out["periods"]
    assert (fit["period"], check["period"]) == ("fit", "check")
    assert main_max(check, "today") == pytest.approx(48.0)
    assert main_max(check, "plan") == pytest.approx(16.0)
    balancer = check["balancer"]
    assert balancer["visits"] == 3
    assert balancer["plan"]["energyKwh"] > balancer["today"]["energyKwh"]
    assert balancer["plan"]["ampereSecondsAbove"] == 0


def store_polls(url: str, *, sessions: bool = False) -> None:
    """Two days of polls: 08:00-10:00 UTC every 30 s, each charger 16 A on its terminal L1;
    with ``sessions`` each day's three sessions too (plugged in until 12:00, 13 kWh)."""

    async def fill() -> None:
        await upgrade(url)
        engine = create_engine(url)
        cycles, phases = [], []
        for day in (datetime(2026, 3, 2), datetime(2026, 3, 3)):
            for k in range(240):
                t = day + timedelta(hours=8, seconds=30 * k)
                cycles.append(
                    {
                        "tick_time": t,
                        "chargers_asked": 3,
                        "chargers_ok": 3,
                        "chargers_failed": 0,
                        "rows": 0,
                        "duration_s": 0.1,
                    }
                )
                for cp in CHARGERS:
                    for phase, amps in (("L1", 16.0), ("L2", 0.0), ("L3", 0.0)):
                        phases.append(
                            {
                                "phase": phase,
                                "current": amps,
                                "voltage": 230.0,
                                "connector_id": 1,
                                "charge_point_id": cp,
                                "date_created": t,
                            }
                        )
        async with engine.begin() as conn:
            await conn.execute(poll_cycle.insert(), cycles)
            await conn.execute(measurement.insert(), phases)
            if sessions:
                await conn.execute(charging_session.insert(), session_rows())
        await engine.dispose()

    asyncio.run(fill())


def session_rows() -> list[dict[str, Any]]:
    rows = []
    for n, day in enumerate((datetime(2026, 3, 2), datetime(2026, 3, 3))):
        for i, cp in enumerate(CHARGERS):
            rows.append(
                {
                    "charge_point_id": cp,
                    "connector_id": 1,
                    "session_id": 10 * n + i,
                    "start_time": day + timedelta(hours=8),
                    "end_time": day + timedelta(hours=12),
                    "energy_kwh": 13.0,
                    "peak_power_w": 16 * 230.0,
                    "phases": 1,
                    "polls": 240,
                    "gap_count": 0,
                    "gap_s": 0.0,
                    "updated": day,
                }
            )
    return rows


def test_stored_sessions_are_replayed_through_the_balancer(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "polls.db"
    store_polls(f"sqlite+aiosqlite:///{db}", sessions=True)
    out = run_json(capsys, "--db", str(db), "--site", str(site))
    balancer = out["periods"][1]["balancer"]
    assert balancer["visits"] == 3  # the check day's sessions
    assert balancer["today"]["askedKwh"] == pytest.approx(39.0)
    assert balancer["plan"]["energyKwh"] > balancer["today"]["energyKwh"]


def test_stored_polls_give_the_same_plan(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "polls.db"
    store_polls(f"sqlite+aiosqlite:///{db}")
    out = run_json(capsys, "--db", str(db), "--site", str(site))  # default split: midnight
    assert sorted(c["plan"][:2] for c in out["chargers"]) == ["L1", "L2", "L3"]
    check = out["periods"][1]
    assert check["start"] == "2026-03-03T00:00:00Z"
    assert main_max(check, "today") == pytest.approx(48.0)
    assert main_max(check, "plan") == pytest.approx(16.0)
    assert "balancer" not in check  # no session stored: no visits to replay


def test_the_text_report_tells_the_electrician_what_moves(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "polls.db"
    store_polls(f"sqlite+aiosqlite:///{db}")
    assert main(["plan", "rotation", "--db", str(db), "--site", str(site)]) == 0
    out = capsys.readouterr().out
    assert "CHARGER  TODAY   PLAN    WHAT MOVES" in out
    assert "CP1      L1L2L3  L1L2L3  keep" in out
    assert "keep" in out
    assert "L2L3L1  terminal L1 to L2 (was L1), L2 to L3 (was L2), L3 to L1 (was L3)" in out
    assert "check: 2026-03-03 00:00 UTC" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--fit-until", "2026-04-01"],
            "--fit-until 2026-04-01 00:00 UTC leaves no step to check on",
        ),
        (["--since", "2026-05-01"], "no poll stored in the period"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    site: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    db = tmp_path / "polls.db"
    store_polls(f"sqlite+aiosqlite:///{db}")
    assert main(["plan", "rotation", "--db", str(db), "--site", str(site), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]


def test_a_charger_the_site_does_not_place_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "polls.db"
    store_polls(f"sqlite+aiosqlite:///{db}")
    site = tmp_path / "small.yaml"
    site.write_text("site:\n  fuse: {name: main, limit: 40, chargers: [CP1, CP2]}\n")
    assert main(["plan", "rotation", "--db", str(db), "--site", str(site)]) == 2
    assert "charger CP3 drew current but is under no fuse" in capsys.readouterr().err
