"""`charged balance evaluate`: policies side by side; bad input is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charged.balancer.evaluate.sitefile import differences, parse_site_file
from charged.cli import main
from charged.simulator import grid as simgrid

SITE = """\
site:
  margin: 0
  fuse:
    name: main
    limit: 40
    children:
      - {name: row, limit: [25, 25, 25], chargers: [CP1, CP2]}
    chargers: [CP3]
  rotations: {CP2: L2L3L1, CP3: L3L1L2}
balancer:
  hysteresis: 2
"""

# six cars on a 40 A main: uncontrolled overloads L1 of the row and of the main
SCENARIO = """\
arrival,departure,energy_kwh,phases,max_current,charger,connector,follows_limit
2026-03-02T08:00:10Z,2026-03-02T12:00:10Z,20,3,16,CP1,1,
2026-03-02T08:03:20Z,2026-03-02T11:03:20Z,12,1,32,CP1,2,
2026-03-02T08:06:40Z,2026-03-02T12:06:40Z,15,3,32,CP2,1,
2026-03-02T08:10:50Z,2026-03-02T10:10:50Z,6,1,16,CP2,2,0.5
2026-03-02T08:15:00Z,2026-03-02T11:15:00Z,18,3,16,CP3,1,
2026-03-02T08:25:00Z,2026-03-02T11:25:00Z,10,1,16,CP3,2,
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    site, scenario = tmp_path / "site.yaml", tmp_path / "day.csv"
    site.write_text(SITE)
    scenario.write_text(SCENARIO)
    return site, scenario


def evaluate(*args: str) -> int:
    return main(["balance", "evaluate", *args])


def test_policies_side_by_side_in_json(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("scipy")
    site, scenario = files
    policies = "uncontrolled,charged,charged-measured,optimal"
    code = evaluate(
        "--scenario", str(scenario), "--site", str(site), "--policy", policies, "--json"
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["visits"] == 6 and out["policies"] == policies.split(",")
    by = {f["policy"]: f for f in out["figures"]}
    assert by["uncontrolled"]["ampere_seconds_above"] > 10_000
    assert by["charged"]["ampere_seconds_above"] == 0
    assert by["optimal"]["energy_kwh"] >= by["charged"]["energy_kwh"] - 1e-6
    assert {f["fuse"] for f in by["charged"]["fuses"]} == {"main", "row"}


def test_the_table_has_a_column_per_policy(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    site, scenario = files
    plot = tmp_path / "fuses.png"
    code = evaluate(
        "--scenario", str(scenario), "--site", str(site), "--policy", "evcc-like,charged",
        "--plot", str(plot),
    )  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert "6 visits" in lines[0]
    assert lines[1].split() == ["evcc-like", "charged"]
    assert any(line.startswith("A·s above any fuse") for line in lines)
    assert any(line.startswith("  row L1 (limit 25 A)") for line in lines)
    assert plot.stat().st_size > 10_000


def test_a_generated_garage_runs_on_the_sites_chargers(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    site, _ = files
    code = evaluate("--generated", "garage", "--site", str(site), "--policy", "equal-split")
    assert code == 0
    assert "garage-day-2026-03-02-seed1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("--policy", "charged,fastest"), "--policy: unknown policy 'fastest'"),
        (("--site", "missing.yaml"), "missing.yaml: No such file or directory"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, str],
    expected: str,
) -> None:
    site, scenario = files
    args = {"--scenario": str(scenario), "--site": str(site), "--policy": "charged"}
    args[change[0]] = change[1]
    assert evaluate(*[x for pair in args.items() for x in pair]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err


def test_a_bad_scenario_row_names_row_and_column(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    site, scenario = files
    scenario.write_text(SCENARIO.replace(",12,1,32,", ",12,2,32,"))
    assert evaluate("--scenario", str(scenario), "--site", str(site)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "row 3" in err and "phases" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SITE.replace("  margin: 0", "  margn: 0"), "site.margn"),
        (SITE.replace("hysteresis: 2", "hysteresis: -1"), "balancer.hysteresis"),
        (SITE.replace("CP2: L2L3L1", "CP2: L2L2L1"), "site.rotations"),
        ("fuse: {name: main}\n", "limit"),
        ("- a list\n", "must be a mapping"),
    ],
)
def test_a_bad_site_file_is_one_line_and_exit_2(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    site, scenario = files
    site.write_text(text)
    assert evaluate("--scenario", str(scenario), "--site", str(site)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and str(site) in err


def test_the_two_readings_of_a_site_file_are_compared() -> None:
    import yaml

    parsed = parse_site_file(yaml.safe_load(SITE))
    assert differences(parsed.site, parsed.grid) == []
    # as if one of the parsers misread a limit and a rotation
    row = simgrid.Fuse("row", (25.0, 25.0, 20.0), chargers=("CP1", "CP2"))
    wrong = simgrid.GridSpec(
        simgrid.Fuse("main", (40.0,) * 3, children=(row,), chargers=("CP3",)),
        {"CP2": "L2L3L1"},
    )
    found = differences(parsed.site, wrong)
    assert any("fuse row: limit" in line for line in found)
    assert any("charger CP3: rotation L3L1L2" in line for line in found)
