"""`charged sessions` and `charged plot` show a charger's offline spans: a simulated morning in
which a charging charger is reported Offline for ten ticks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from simulated_morning import INTERVAL, MORNING, Morning, collect_morning

from charged.cli import main
from charged.simulator import Simulator

OFF_FROM, OFF_UNTIL = 60, 70  # ticks: Offline from the first, answering again at the second
DAY = MORNING.strftime("%Y-%m-%d")


class TakeOffline:
    """Makes a charger that is charging at tick OFF_FROM Offline until tick OFF_UNTIL."""

    charge_point: str | None = None

    def __call__(self, k: int, sim: Simulator) -> None:
        if k == OFF_FROM:
            self.charge_point = next(
                cp.id
                for cp in (sim.fleet.get(i) for i in sim.charge_point_ids())
                if cp is not None and any(c.reading().status == "Charging" for c in cp.connectors)
            )
            sim.faults.offline.add(self.charge_point)
        elif k == OFF_UNTIL:
            assert self.charge_point is not None
            sim.faults.offline.discard(self.charge_point)


OFFLINE = TakeOffline()


@pytest.fixture(scope="module")
def morning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Morning]:
    db = tmp_path_factory.mktemp("offline") / "morning.db"
    yield asyncio.run(
        collect_morning(f"sqlite+aiosqlite:///{db}", chargers=4, ticks=100, seed=5, during=OFFLINE)
    )


def tick_time(k: int) -> datetime:
    return MORNING.replace(tzinfo=None) + timedelta(seconds=INTERVAL * k)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sessions_list_the_offline_span(
    morning: Morning, capsys: pytest.CaptureFixture[str]
) -> None:
    db = morning.db_url.removeprefix("sqlite+aiosqlite:///")
    cp = OFFLINE.charge_point
    code, out, err = run(capsys, "sessions", "--db", db, "--json", "--no-update")
    assert code == 0, err
    assert json.loads(out)["offline"] == [
        {
            "chargePointId": cp,
            "start": tick_time(OFF_FROM).isoformat() + "Z",
            "end": tick_time(OFF_UNTIL).isoformat() + "Z",
        }
    ]
    code, out, err = run(capsys, "sessions", "--db", db, "--charger", str(cp), "--no-update")
    assert code == 0, err
    assert f"{cp}  {tick_time(OFF_FROM)}  {tick_time(OFF_UNTIL)}  0:05:00" in out
    assert "1 offline spans" in out
    # a range that ends before the span shows none; one inside it shows it
    before = tick_time(OFF_FROM - 5).isoformat()
    code, out, _ = run(capsys, "sessions", "--db", db, "--json", "--until", before, "--no-update")
    assert code == 0 and json.loads(out)["offline"] == []
    inside = tick_time(OFF_FROM + 5).isoformat()
    code, out, _ = run(capsys, "sessions", "--db", db, "--json", "--since", inside, "--no-update")
    assert code == 0 and len(json.loads(out)["offline"]) == 1


def test_plot_energy_hatches_the_offline_span(
    morning: Morning, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = morning.db_url.removeprefix("sqlite+aiosqlite:///")
    svg = tmp_path / "energy.svg"
    code, _, err = run(capsys, "plot", "energy", "--db", db, "--charger",
                       str(OFFLINE.charge_point), "--date", DAY, "-o", str(svg))  # fmt: skip
    assert code == 0, err
    assert "charger offline" in svg.read_text()  # its legend entry
    other = next(cp for cp in morning.charge_point_ids if cp != OFFLINE.charge_point)
    code, _, _ = run(capsys, "plot", "energy", "--db", db, "--charger", other, "--date", DAY,
                     "-o", str(svg))  # fmt: skip
    assert code in (0, 1)  # (a charger without sessions that morning is an error line)
    assert code == 1 or "charger offline" not in svg.read_text()
