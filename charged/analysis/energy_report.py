"""Energy per RFID tag (or per vendor user) over a period: what a garage bills from.

Pure functions over charging_session rows (as :func:`~charged.analysis.plot_data.find_sessions`
returns them).  A session counts in the period it *started* in, whole, so a session running
over midnight at the end of a month is billed once, in the month it began.  Tags and user ids
come from the vendor's chargingsessions (the polls do not carry them), so a session not yet
reconciled has no known tag: it is its own line, never mixed with sessions the vendor says
were started without a tag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TextIO

Row = dict[str, Any]
By = Literal["tag", "user"]
NO_TAG = "(no tag)"
NO_USER = "(no user)"
NOT_RECONCILED = "(not reconciled)"


@dataclass
class Line:
    """One tag's (or user's) sessions of the period."""

    key: str
    sessions: int = 0
    running: int = 0
    energy_kwh: float = 0.0
    unknown_energy: int = 0  # sessions whose energy is not known
    charging_s: float = 0.0
    connected_s: float = 0.0
    chargers: set[str] = field(default_factory=set)
    others: set[str] = field(default_factory=set)  # users of a tag, tags of a user

    def add(self, row: Row, other: str | None) -> None:
        self.sessions += 1
        self.running += row["end_time"] is None
        if row["energy_kwh"] is None:
            self.unknown_energy += 1
        else:
            self.energy_kwh += float(row["energy_kwh"])
        self.charging_s += float(row["charging_s"] or 0.0)
        self.connected_s += float(row["connected_s"] or 0.0)
        self.chargers.add(str(row["charge_point_id"]))
        if other is not None:
            self.others.add(other)


@dataclass
class Report:
    by: By
    since: datetime | None
    until: datetime | None
    lines: list[Line]
    total: Line


def energy_by(
    rows: Sequence[Row], by: By, since: datetime | None, until: datetime | None
) -> Report:
    """The sessions that started in [since, until), grouped by tag or user, most energy first;
    the sessions without a tag and those not reconciled yet last."""
    lines: dict[str, Line] = {}
    total = Line("total")
    for row in rows:
        start = row["start_time"]
        if start is None or (since is not None and start < since):
            continue
        if until is not None and start >= until:
            continue
        key, other = _key(row, by)
        lines.setdefault(key, Line(key)).add(row, other)
        total.add(row, None)
    rank = {NO_TAG: 1, NO_USER: 1, NOT_RECONCILED: 2}
    ordered = sorted(
        lines.values(), key=lambda line: (rank.get(line.key, 0), -line.energy_kwh, line.key)
    )
    return Report(by, since, until, ordered, total)


def _key(row: Row, by: By) -> tuple[str, str | None]:
    if row["reconciled_at"] is None:
        return NOT_RECONCILED, None
    tag, user = row.get("rfid"), row.get("user_id")
    if by == "tag":
        return (tag or NO_TAG), user
    return (user or NO_USER), tag


def print_report(report: Report, title: str, out: TextIO) -> None:
    print(title, file=out)
    if not report.lines:
        print("no sessions started in that period", file=out)
        return
    other = "USERS" if report.by == "tag" else "TAGS"
    headers = [report.by.upper(), "SESSIONS", "RUNNING", "kWh", "CHARGING", "CONNECTED"]
    headers += ["CHARGERS", other]
    cells = [_cells(line) for line in [*report.lines, report.total]]
    cells[-1][-1] = ""
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip(), file=out)
    notes = []
    if report.total.running:
        notes.append(f"{report.total.running} still running (energy so far)")
    if report.total.unknown_energy:
        notes.append(f"{report.total.unknown_energy} without a known energy (not counted)")
    unreconciled = next((li for li in report.lines if li.key == NOT_RECONCILED), None)
    if unreconciled is not None:
        notes.append(
            f"{unreconciled.sessions} not reconciled with the vendor yet, so their tag is "
            "not known (charged run reconciles every sessions.reconcile_interval)"
        )
    for note in notes:
        print(f"note: {note}", file=out)


def _cells(line: Line) -> list[str]:
    energy = f"{line.energy_kwh:.2f}" + ("+?" if line.unknown_energy else "")
    return [
        line.key,
        str(line.sessions),
        str(line.running),
        energy,
        _hours(line.charging_s),
        _hours(line.connected_s),
        str(len(line.chargers)),
        str(len(line.others)),
    ]


def _hours(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def report_json(report: Report) -> dict[str, Any]:
    """camelCase, like every --json of charged; times ISO 8601 UTC with a Z."""

    def line(li: Line) -> dict[str, Any]:
        document: dict[str, Any] = {
            "sessions": li.sessions,
            "running": li.running,
            "energyKwh": round(li.energy_kwh, 6),
            "sessionsWithoutEnergy": li.unknown_energy,
            "chargingSeconds": round(li.charging_s, 3),
            "connectedSeconds": round(li.connected_s, 3),
            "chargers": sorted(li.chargers),
        }
        return document

    def key(li: Line) -> dict[str, Any]:
        reconciled = li.key != NOT_RECONCILED
        missing = li.key in (NO_TAG, NO_USER)
        value = None if missing or not reconciled else li.key
        others = "userIds" if report.by == "tag" else "rfids"
        return {
            "rfid" if report.by == "tag" else "userId": value,
            "reconciled": reconciled,
            **line(li),
            others: sorted(li.others),
        }

    return {
        "by": report.by,
        "since": _iso(report.since),
        "until": _iso(report.until),
        "lines": [key(li) for li in report.lines],
        "total": line(report.total),
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"
