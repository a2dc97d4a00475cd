"""`charged balance scenario` on a morning the collector recorded from the simulator.

The simulator and the collector run over 127.0.0.1 on one fake clock (simulated_morning.py),
into SQLite and MariaDB; the scenario written from the database is read back with the
scenario parser and compared with the simulator's own record of its sessions: one visit per
session, the arrival within a tick, the energy within a few per cent, the phases the car had.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from simulated_morning import INTERVAL, MORNING, Morning, collect_morning

from charged.balancer.evaluate.scenario import read_scenario
from charged.cli import main
from charged.simulator import SessionTruth

DAY = MORNING.strftime("%Y-%m-%d")
TICKS = 480  # 07:00-11:00


def recorded(url: str) -> Morning:
    return asyncio.run(collect_morning(url, chargers=6, ticks=TICKS, seed=11))


@pytest.fixture(scope="module")
def sqlite_morning(tmp_path_factory: pytest.TempPathFactory) -> Morning:
    db = tmp_path_factory.mktemp("recorded") / "charged.db"
    return recorded(f"sqlite+aiosqlite:///{db}")


def visits_of_the_day(morning: Morning) -> dict[tuple[str, int, float], SessionTruth]:
    day = MORNING.replace(hour=0).timestamp()
    return {
        (t.charge_point_id, t.connector_id, t.start): t
        for t in morning.truth.values()
        if day <= t.start < day + 86400
    }


def scenario_of(source: str, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["balance", "scenario", "--from-db", source, "--date", DAY, "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_against_truth(morning: Morning, out: Path) -> None:
    scenario = read_scenario(out)
    truth = visits_of_the_day(morning)
    assert len(scenario.visits) == len(truth) >= 8
    last_poll = MORNING.timestamp() + INTERVAL * (TICKS - 1)
    one_phase = three_phase = 0
    for visit in scenario.visits:
        assert visit.charger is not None and visit.connector is not None
        matches = [
            t
            for (cp, connector, start), t in truth.items()
            if (cp, connector) == (visit.charger, visit.connector)
            and abs(start - visit.arrival) <= INTERVAL
        ]
        assert len(matches) == 1, visit
        t = matches[0]
        if t.end is None:  # still plugged in: it stayed at least until the last poll
            assert last_poll - INTERVAL <= visit.departure <= last_poll
        else:
            assert visit.departure == pytest.approx(t.end, abs=INTERVAL)
        assert visit.energy_kwh == pytest.approx(t.energy_kwh, rel=0.03, abs=0.05)
        if t.energy_kwh > 0.5:  # it drew long enough for its phases to show
            assert visit.phases == t.phases
            assert 6 <= visit.max_current <= 32
            one_phase += t.phases == 1
            three_phase += t.phases == 3
    assert one_phase and three_phase  # both kinds of car were in the morning


def test_a_recorded_morning_is_written_as_the_simulators_own_visits(
    sqlite_morning: Morning, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sqlite_morning.db_url.removeprefix("sqlite+aiosqlite:///")
    out = tmp_path / "morning.csv"
    code, stdout, err = scenario_of(db, out, capsys)
    assert code == 0, err
    assert stdout == ""
    assert err.startswith(f"wrote {len(visits_of_the_day(sqlite_morning))} visits of {DAY}")
    assert "still plugged in at their last poll" in err  # the morning ends with cars in
    check_against_truth(sqlite_morning, out)
    # the same through the URL and to standard output
    code, stdout, err = scenario_of(sqlite_morning.db_url, out, capsys)
    assert code == 0
    code = main(["balance", "scenario", "--from-db", sqlite_morning.db_url, "--date", DAY])
    assert capsys.readouterr().out == out.read_text()


def test_the_written_scenario_replays_uncontrolled_to_what_the_cars_took(
    sqlite_morning: Morning, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "morning.csv"
    assert scenario_of(sqlite_morning.db_url, out, capsys)[0] == 0
    site = tmp_path / "site.yaml"
    chargers = ", ".join(sqlite_morning.charge_point_ids)
    site.write_text(f"site:\n  fuse: {{name: main, limit: 400, chargers: [{chargers}]}}\n")
    argv = ["--scenario", str(out), "--site", str(site), "--json", "--policy", "uncontrolled"]
    code = main(["balance", "evaluate", *argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    figures = json.loads(captured.out)["figures"][0]
    # a car that arrived before the first poll and is still charging at the last has its
    # energy so far as what it asks; every car gets what it took, within the taper's slack
    assert figures["energy_pct"] > 97.0
    assert figures["ampere_seconds_above"] == 0


def test_bad_input_is_one_line_and_exit_2(
    sqlite_morning: Morning, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sqlite_morning.db_url.removeprefix("sqlite+aiosqlite:///")
    cases = [
        (["--from-db", str(tmp_path / "none.db"), "--date", DAY], "no SQLite file at"),
        (["--from-db", db, "--date", DAY, "--out", str(tmp_path / "x.txt")], "ends in .csv"),
        (
            ["--from-db", db, "--date", DAY, "--out", str(tmp_path / "no" / "x.csv")],
            "cannot write",
        ),
    ]
    for argv, said in cases:
        code = main(["balance", "scenario", *argv])
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert said in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit) as exited:
        main(["balance", "scenario", "--from-db", db, "--date", "05/01/2026"])
    assert exited.value.code == 2
    assert "--date" in capsys.readouterr().err
    # a day with nothing recorded: one line, exit 1
    empty_day = (MORNING + timedelta(days=3)).astimezone(UTC).strftime("%Y-%m-%d")
    code = main(["balance", "scenario", "--from-db", db, "--date", empty_day])
    err = capsys.readouterr().err
    assert code == 1 and "no charging session began on" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.mysql
async def test_a_recorded_morning_on_mariadb(
    mysql_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    morning = await collect_morning(mysql_url, chargers=6, ticks=TICKS, seed=11)
    out = tmp_path / "morning.csv"
    # the command runs its own event loop: in a thread of its own
    code, _, err = await asyncio.to_thread(scenario_of, mysql_url, out, capsys)
    assert code == 0, err
    check_against_truth(morning, out)
