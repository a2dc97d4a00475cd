"""Sessions, plots and exports of a time older than retention.raw_days: the raw polls are
gone and the 15-minute rollups stand in for them (SQLite and MariaDB; the CLI on SQLite)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.analysis.energy_report import energy_by
from charged.analysis.export import rollup_instead
from charged.analysis.plot_data import find_sessions, session_series
from charged.analysis.plot_sessions import energy_power_figure, phase_currents_figure
from charged.cli import main
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.rollup import Rollups, bucket_of
from charged.storage.schema import (
    charging_session,
    connector_status,
    connector_status_rollup,
    measurement,
    measurement_rollup,
)
from charged.storage.writes import write_rows

START = datetime(2025, 6, 1)
NOW = START + timedelta(days=10)
POLL = timedelta(minutes=5)
INTERVAL_S = POLL.total_seconds()
SESSION = 4242
BEGIN, END = START + timedelta(hours=8, minutes=10), START + timedelta(hours=10, minutes=40)
OLD_DAY = (START, START + timedelta(days=1))
RECENT_DAY = (NOW - timedelta(days=1), NOW)


def current(moment: datetime, phase: str) -> float:
    return 6.0 + (moment.minute // 5 + "123".index(phase[1])) % 10


def history() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """CP1/1 polled every 5 min for 10 days; on the first day a session 08:10–10:40, one
    phase (L1) the first hour, three phases after; CP1/1 idle otherwise.  The session's
    phases are returned first, CP2's one recent phase last."""
    statuses, phases = [], []
    moment = START
    while moment < NOW:
        charging = BEGIN <= moment < END
        statuses.append(
            {
                "charge_point_id": "CP1",
                "connector_id": 1,
                "status": "Charging" if charging else "Available",
                "session_id": SESSION if charging else None,
                "total_consumption_kwh": 1.0 if charging else None,
                "date_created": moment,
            }
        )
        if charging:
            on = ("L1",) if moment < BEGIN + timedelta(hours=1) else ("L1", "L2", "L3")
            phases += [
                {
                    "charge_point_id": "CP1",
                    "connector_id": 1,
                    "phase": p,
                    "current": current(moment, p),
                    "voltage": 230.0,
                    "session_id": SESSION,
                    "date_created": moment,
                }
                for p in on
            ]
        moment += POLL
    # and CP2 drawing on L1 at the last poll: recent raw measurements (the newest row)
    phases.append(
        {
            "charge_point_id": "CP2",
            "connector_id": 1,
            "phase": "L1",
            "current": 10.0,
            "voltage": 230.0,
            "date_created": NOW - POLL,
        }
    )
    return statuses, phases


SESSION_ROW = {
    "charge_point_id": "CP1",
    "connector_id": 1,
    "session_id": SESSION,
    "session_type": "RFID",
    "start_time": BEGIN,
    "end_time": END,
    "first_poll": BEGIN,
    "last_poll": END - POLL,
    "energy_kwh": 12.5,
    "polls": 30,
    "gap_count": 0,
    "gap_s": 0.0,
    "rfid": "TAG1",
    "updated": END,
}


async def past_retention(db_url: str) -> list[dict[str, Any]]:
    """The history stored, folded, and the raw rows older than 7 days deleted → the phases
    the session had (for the expected figures)."""
    await upgrade(db_url)
    engine = create_engine(db_url)
    try:
        statuses, phases = history()
        async with engine.begin() as conn:
            await write_rows(conn, "connector_status", statuses)
            await write_rows(conn, "measurement", phases)
            await conn.execute(insert(charging_session), [SESSION_ROW])
        rollups = Rollups(engine, interval=INTERVAL_S, raw_days=7, batch_rows=500, pause=0)
        await rollups.run_pass(NOW)
        deleted = (await rollups.run_pass(NOW)).deleted
        assert deleted["measurement"] == len(phases) - 1  # every phase of the session is gone
    finally:
        await engine.dispose()
    return phases[:-1]


@pytest.fixture
async def engine(db_url: str) -> Any:
    phases = await past_retention(db_url)
    eng = create_engine(db_url)
    try:
        yield eng, phases
    finally:
        await eng.dispose()


async def test_a_session_past_raw_days_is_drawn_from_the_rollups(
    engine: tuple[AsyncEngine, list[dict[str, Any]]],
) -> None:
    eng, phases = engine
    async with eng.connect() as conn:
        (row,) = await find_sessions(conn, charger="CP1", since=OLD_DAY[0], until=OLD_DAY[1])
        series = await session_series(conn, row)
        raw = await conn.scalar(select(func.count()).select_from(measurement))
    assert raw == 1 and series.from_rollups  # CP2's recent one
    # the session is kept, with its energy and tag: the reports read it as before
    assert row["energy_kwh"] == 12.5
    assert energy_by([row], "tag", *OLD_DAY).lines
    # quarter hours from the one of the first poll to the one of the last
    quarters = [bucket_of(BEGIN) + timedelta(minutes=15 * k) for k in range(11)]
    assert series.times == quarters
    wh: dict[datetime, float] = defaultdict(float)
    amps: dict[tuple[datetime, str], float] = defaultdict(float)
    for r in phases:
        wh[bucket_of(r["date_created"])] += r["current"] * r["voltage"] * INTERVAL_S / 3600
        amps[(bucket_of(r["date_created"]), r["phase"])] += r["current"] / 3  # 3 polls a quarter
    assert series.power_w == pytest.approx([wh[q] / 0.25 for q in quarters])
    for p in ("L1", "L2", "L3"):
        assert series.phase_currents[p] == pytest.approx([amps[(q, p)] for q in quarters])
    assert series.phase_currents["L2"][0] == 0.0 and series.phase_currents["L2"][-1] > 0
    # the energy at each quarter hour's start: the measured energy of those before
    running = [sum(wh[q] for q in quarters[:k]) / 1000 for k in range(len(quarters))]
    assert series.energy_kwh == pytest.approx(running)
    # and the figures draw it, saying where it comes from
    for figure in (
        energy_power_figure([series], "energy"),
        phase_currents_figure(series, [], "phases"),
    ):
        title = figure.axes[0].get_title()
        assert "from the rollups" in title
        assert any(len(line.get_xdata()) >= len(quarters) for line in figure.axes[0].lines)


async def test_an_export_past_raw_days_reads_the_rollups(
    engine: tuple[AsyncEngine, list[dict[str, Any]]],
) -> None:
    eng, _ = engine
    assert await rollup_instead(eng, measurement, *OLD_DAY) is measurement_rollup
    assert await rollup_instead(eng, connector_status, *OLD_DAY) is connector_status_rollup
    # raw rows still there: the raw rows are exported; no range: what is left of them
    assert await rollup_instead(eng, measurement, *RECENT_DAY) is None
    assert await rollup_instead(eng, connector_status, *RECENT_DAY) is None
    assert await rollup_instead(eng, connector_status, None, None) is None


def test_the_export_command_says_it_exports_the_rollups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.db"
    phases = asyncio.run(past_retention(f"sqlite+aiosqlite:///{path}"))
    since, until = (t.isoformat() for t in OLD_DAY)
    argv = ["export", "measurement", "--db", str(path), "--format", "jsonl"]
    code = main([*argv, "--since", since, "--until", until, "--no-update"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "no raw measurement rows in that range" in err
    assert "rows of measurement_rollup (jsonl)" in err
    lines = [json.loads(line) for line in out.splitlines()]
    assert sum(line["samples"] for line in lines) == len(phases)
    assert {line["phase"] for line in lines} == {"L1", "L2", "L3"}
