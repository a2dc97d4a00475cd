"""`charged demo`, shortened: simulator + collector + SQLite end to end."""

from __future__ import annotations

import io
import itertools
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


async def test_the_demo_prints_commands_as_the_reader_runs_charged(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    out = io.StringIO()
    options = DemoOptions(
        db=db, chargers=2, interval=1.0, duration=1.5, speed=600.0, command="python3 dev.py"
    )
    first = await run_demo(options, out=out)
    text = out.getvalue()
    assert "already holds" not in text  # a new file
    look = text[text.index("Look at it") :].splitlines()[1:4]
    assert look == [
        f"  python3 dev.py sessions --db {db}",
        f"  python3 dev.py sessions --db {db} --by tag --month {first.day:%Y-%m}",
        f"  python3 dev.py export connector_status --db {db} -o connector_status.csv",
    ]
    # one time on each tick line, and the rows it stored add up to the total
    ticks = [line for line in text.splitlines() if " fleet time " in line]
    assert len(ticks) == first.ticks and all(line.count(":") == 2 for line in ticks)
    written = [int(line.split("rows")[1].split("(")[0]) for line in ticks]
    totals = [int(line.split("(total ")[1].split(")")[0]) for line in ticks]
    assert list(itertools.accumulate(written)) == totals

    # a second demo moves the first one's file aside and starts afresh: the simulator
    # numbers sessions from 1 again, which would mix into the earlier demo's sessions
    first_sessions = _sessions(db)
    assert first_sessions
    out = io.StringIO()
    second = await run_demo(options, out=out)
    (note,) = [line for line in out.getvalue().splitlines() if line.startswith("note:")]
    aside = tmp_path / "demo.previous.db"
    assert note.startswith(f"note: demo.db held {first.ticks} ticks of an earlier demo")
    assert "moved to demo.previous.db" in note
    assert _sessions(aside) == first_sessions  # the earlier demo's figures, untouched
    with sqlite3.connect(db) as conn:
        (ticks,) = conn.execute("SELECT count(*) FROM poll_cycle").fetchone()
    assert ticks == second.ticks  # nothing of the first demo in the new file

    # a third takes the next free name, and keeps the first one's file
    out = io.StringIO()
    await run_demo(options, out=out)
    assert "moved to demo.previous-2.db" in out.getvalue()
    assert _sessions(aside) == first_sessions
    assert _databases(tmp_path) == ["demo.db", "demo.previous-2.db", "demo.previous.db"]


def _databases(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.db"))


def _sessions(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT charge_point_id, connector_id, session_id, end_time, energy_kwh "
            "FROM charging_session ORDER BY id"
        ).fetchall()


def test_dev_py_tells_the_demo_how_it_was_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from charged.cli import _command_as_typed

    monkeypatch.setenv("CHARGED_COMMAND", "python3 dev.py")
    assert _command_as_typed() == "python3 dev.py"
    monkeypatch.delenv("CHARGED_COMMAND")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert _command_as_typed().endswith(" -m charged.cli")
