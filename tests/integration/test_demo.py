"""`charged demo`, shortened: simulator + collector + SQLite end to end."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from charged.cli import main
from charged.demo import DemoOptions, run_demo


async def test_short_demo_stores_every_charger_every_tick(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    out = io.StringIO()
    summary = await run_demo(
        DemoOptions(db=db, chargers=6, interval=1.0, duration=2.5, speed=600.0), out=out
    )
    text = out.getvalue()
    assert summary.ticks >= 2
    assert summary.chargers_ok_every_tick
    assert "chargers 6/6 ok" in text
    assert str(db) in text and "sqlite3" in text  # tells where the data is and how to look
    with sqlite3.connect(db) as conn:
        per_tick = conn.execute(
            "SELECT date_created, count(DISTINCT charge_point_id) FROM connector_status "
            "GROUP BY date_created"
        ).fetchall()
        cycles = conn.execute("SELECT chargers_ok, rows FROM poll_cycle").fetchall()
        stored = sum(
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("connector_status", "measurement", "poll_cycle")
        )
    assert len(per_tick) == summary.ticks
    assert all(n == 6 for _, n in per_tick)
    assert all(ok == 6 for ok, _ in cycles)
    assert stored > 0 and summary.rows_stored >= stored


def test_a_demo_date_that_is_not_a_day_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--date", "05/01/2026", "--duration", "1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("argument --date: not a day (YYYY-MM-DD): '05/01/2026'")
