"""energy_by on hand-made session rows: per tag and per user, by start month, the unknowns."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import pytest

from charged.analysis.energy_report import (
    NO_TAG,
    NOT_RECONCILED,
    energy_by,
    print_report,
    report_json,
)

NOV, DEC = datetime(2026, 11, 1), datetime(2026, 12, 1)
RECONCILED = datetime(2026, 12, 2)


def session(
    start: datetime,
    kwh: float | None,
    rfid: str | None,
    *,
    user: str | None = "u1",
    cp: str = "2202998602C",
    end: datetime | None = None,
    reconciled: bool = True,
) -> dict[str, Any]:
    return {
        "charge_point_id": cp,
        "start_time": start,
        "end_time": end or start.replace(hour=start.hour + 1),
        "energy_kwh": kwh,
        "charging_s": 3000.0,
        "connected_s": 3600.0,
        "rfid": rfid,
        "user_id": user,
        "reconciled_at": RECONCILED if reconciled else None,
    }


ROWS = [
    session(datetime(2026, 10, 31, 22), 9.0, "AAAA0001"),  # before November: not counted
    session(datetime(2026, 11, 1, 0), 5.0, "AAAA0001"),
    session(datetime(2026, 11, 30, 23), 7.0, "AAAA0001", end=datetime(2026, 12, 1, 3)),
    session(datetime(2026, 11, 15, 8), 20.0, "BBBB0002", user="u2", cp="2104894082C"),
    session(datetime(2026, 11, 15, 9), 1.5, None),
    session(datetime(2026, 11, 20, 9), 3.0, None, reconciled=False),
    session(datetime(2026, 11, 21, 9), None, "BBBB0002", user="u2"),
    session(datetime(2026, 12, 1, 0), 4.0, "AAAA0001"),  # December: not counted
]


def test_a_month_per_tag_counts_each_session_whole_in_the_month_it_started() -> None:
    report = energy_by(ROWS, "tag", NOV, DEC)
    by_key = {line.key: line for line in report.lines}
    # the biggest first, the session without a tag and the unreconciled ones last
    assert [line.key for line in report.lines] == ["BBBB0002", "AAAA0001", NO_TAG, NOT_RECONCILED]
    assert by_key["AAAA0001"].sessions == 2
    assert by_key["AAAA0001"].energy_kwh == pytest.approx(12.0)  # 30 Nov 23:00 counts in Nov
    assert by_key["BBBB0002"].energy_kwh == pytest.approx(20.0)
    assert by_key["BBBB0002"].unknown_energy == 1
    assert by_key["BBBB0002"].chargers == {"2104894082C", "2202998602C"}
    assert by_key[NO_TAG].energy_kwh == pytest.approx(1.5)
    assert by_key[NOT_RECONCILED].energy_kwh == pytest.approx(3.0)
    assert report.total.sessions == 6
    assert report.total.energy_kwh == pytest.approx(12.0 + 20.0 + 1.5 + 3.0)


def test_per_user_lists_the_tags_each_user_charged_with() -> None:
    report = energy_by(ROWS, "user", NOV, DEC)
    by_key = {line.key: line for line in report.lines}
    assert by_key["u1"].others == {"AAAA0001"}
    assert by_key["u1"].energy_kwh == pytest.approx(13.5)
    assert by_key["u2"].others == {"BBBB0002"}


def test_the_table_and_the_json_say_what_is_not_known() -> None:
    report = energy_by(ROWS, "tag", NOV, DEC)
    out = io.StringIO()
    print_report(report, "Energy per RFID tag, sessions started in 2026-11 (UTC)", out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Energy per RFID tag, sessions started in 2026-11 (UTC)"
    assert lines[1].split() == [
        "TAG", "SESSIONS", "RUNNING", "kWh", "CHARGING", "CONNECTED", "CHARGERS", "USERS",
    ]  # fmt: skip
    assert lines[2].split()[:4] == ["BBBB0002", "2", "0", "20.00+?"]
    assert lines[6].split()[:4] == ["total", "6", "0", "36.50+?"]
    assert any("1 not reconciled with the vendor yet" in line for line in lines)
    document = report_json(report)
    assert (
        document["since"] == "2026-11-01T00:00:00Z" and document["until"] == "2026-12-01T00:00:00Z"
    )
    first, *_, no_tag, unreconciled = document["lines"]
    assert first["rfid"] == "BBBB0002" and first["userIds"] == ["u2"]
    assert first["energyKwh"] == 20.0 and first["sessionsWithoutEnergy"] == 1
    assert (no_tag["rfid"], no_tag["reconciled"]) == (None, True)
    assert (unreconciled["rfid"], unreconciled["reconciled"]) == (None, False)
    assert document["total"]["sessions"] == 6


def test_a_month_without_sessions_says_so() -> None:
    out = io.StringIO()
    print_report(energy_by(ROWS, "tag", datetime(2027, 1, 1), datetime(2027, 2, 1)), "T", out)
    assert out.getvalue().splitlines() == ["T", "no sessions started in that period"]
