"""The demo's database carries fleet time, so its sessions (and plots) make sense.

Like test_demo.py this runs the real demo for a few seconds: the demo has no injectable
clock of its own (its FleetClock runs on the system clock).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from charged.cli import main
from charged.demo import SESSION_UPDATE_TICKS, DemoOptions, run_demo

SESSIONS_ON_LINE = re.compile(r"sessions (\d+) \(\d+ reconciled\)")


DAY = date(2026, 1, 5)


def test_demo_rows_are_stamped_with_fleet_time_and_make_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "charged-demo.db"
    # the tracker folds polls in every SESSION_UPDATE_TICKS ticks: a pass runs mid-demo, and
    # a tick or two after it
    duration = SESSION_UPDATE_TICKS + 2.5
    options = DemoOptions(db=db, chargers=4, interval=1.0, duration=duration, speed=600.0, day=DAY)
    out = io.StringIO()
    summary = asyncio.run(run_demo(options, out=out))
    assert summary.ticks >= SESSION_UPDATE_TICKS + 1
    with sqlite3.connect(db) as conn:
        ticks = [
            datetime.fromisoformat(t)
            for (t,) in conn.execute(
                "SELECT DISTINCT date_created FROM connector_status ORDER BY 1"
            )
        ]
        stored = conn.execute(
            "SELECT count(*), count(reconciled_at), count(vendor_start) FROM charging_session"
        ).fetchone()
    # one real second between polls is ten fleet minutes at ×600
    spacings = {round((b - a).total_seconds() / 60) for a, b in itertools.pairwise(ticks)}
    assert spacings <= {9, 10, 11}
    # the fleet's morning of the day asked for, not the wall clock's day or time of day
    assert (ticks[0].date(), ticks[0].hour) == (DAY, 7)

    # the demo's own tracker kept pace: sessions appeared while it ran (a tick's line is
    # printed before the pass after the last tick), not only at the end …
    lines = [line for line in out.getvalue().splitlines() if " fleet " in line]
    during = [int(m.group(1)) for m in map(SESSIONS_ON_LINE.search, lines) if m]
    assert len(during) == len(lines) == summary.ticks and max(during) > 0
    # … and the last pass after the last tick left every session in, reconciled ones too
    assert summary.sessions == stored[0] > 0
    assert 0 < summary.reconciled == stored[1] == stored[2]
    assert f"{summary.sessions} charging sessions ({summary.reconciled} reconciled" in (
        out.getvalue()
    )

    capsys.readouterr()  # what the collector logged while the demo ran
    assert main(["sessions", "--db", str(db), "--json"]) == 0
    sessions = json.loads(capsys.readouterr().out)["sessions"]
    assert sessions
    for s in sessions:
        start = datetime.fromisoformat(s["startTime"].rstrip("Z"))
        first = datetime.fromisoformat(s["firstPoll"].rstrip("Z"))
        # the simulator's session start lies on the same time line as the polls
        assert start <= first + timedelta(minutes=10)
        assert s["connectedS"] >= 0
