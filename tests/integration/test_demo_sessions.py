"""The demo's database carries fleet time, so its sessions (and plots) make sense.

Like test_demo.py this runs the real demo for a couple of seconds: the demo has no injectable
clock of its own (its FleetClock runs on the system clock).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from charged.cli import main
from charged.demo import DemoOptions, run_demo


def test_demo_rows_are_stamped_with_fleet_time_and_make_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "charged-demo.db"
    options = DemoOptions(db=db, chargers=4, interval=1.0, duration=2.5, speed=600.0)
    summary = asyncio.run(run_demo(options, out=io.StringIO()))
    assert summary.ticks >= 2
    with sqlite3.connect(db) as conn:
        ticks = [
            datetime.fromisoformat(t)
            for (t,) in conn.execute(
                "SELECT DISTINCT date_created FROM connector_status ORDER BY 1"
            )
        ]
    # one real second between polls is ten fleet minutes at ×600
    spacings = {round((b - a).total_seconds() / 60) for a, b in itertools.pairwise(ticks)}
    assert spacings <= {9, 10, 11}
    assert ticks[0].hour == 7  # the fleet's morning, not the wall clock's time of day

    capsys.readouterr()  # what the collector logged while the demo ran
    assert main(["sessions", "--db", str(db), "--json"]) == 0
    sessions = json.loads(capsys.readouterr().out)["sessions"]
    assert sessions
    for s in sessions:
        start = datetime.fromisoformat(s["start_time"].rstrip("Z"))
        first = datetime.fromisoformat(s["first_poll"].rstrip("Z"))
        # the simulator's session start lies on the same time line as the polls
        assert start <= first + timedelta(minutes=10)
        assert s["connected_s"] >= 0
