"""Fleet arrivals from a scenario file: the simulator's own reading of the format.

The format is the balancer evaluation's (one row per visit; see the README): ``arrival``,
``departure`` (ISO 8601 with an offset), ``energy_kwh`` (what the car takes before it is full),
``phases`` (1 or 3), ``max_current`` (A per phase when allowed), and optional ``charger``,
``connector`` and ``follows_limit`` (share of its limit the car draws, default 1).  The
simulator reads it itself rather than importing the balancer's reader: it is the judge, and
shares no code with what it judges.

``charger`` is a charge point id of the fleet, or its position (1 = the first charger); a
visit without ``charger``/``connector`` goes to the first connector free at its arrival, in
fleet order.  A visit that finds every connector taken is turned away (counted).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from charged.simulator.physics import Car, Visit

REQUIRED = ("arrival", "departure", "energy_kwh", "phases", "max_current")
OPTIONAL = ("charger", "connector", "follows_limit")


class ScenarioError(ValueError):
    """A scenario file that cannot be read: one line naming the row and column."""


@dataclass(frozen=True)
class ScenarioVisits:
    visits: dict[tuple[str, int], list[Visit]]
    turned_away: int  # visits that found no free connector
    first_arrival: int | None


@dataclass(frozen=True)
class _Row:
    line: int
    visit: Visit
    charger: str | None
    connector: int | None


def read_scenario(path: Path, charger_ids: Sequence[str], connectors: int = 2) -> ScenarioVisits:
    """The visits of a scenario file placed on the fleet's connectors."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise ScenarioError(f"scenario {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"scenario {path}: not UTF-8 text") from None
    if not rows:
        raise ScenarioError(f"scenario {path}: empty; the first row names the columns")
    header = [h.strip() for h in rows[0]]
    for name in header:
        if name not in REQUIRED and name not in OPTIONAL:
            known = ", ".join(REQUIRED + OPTIONAL)
            raise ScenarioError(f"scenario {path}: unknown column {name!r} (known: {known})")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ScenarioError(f"scenario {path}: column {missing[0]!r} is missing")
    parsed = [
        _row(path, line, dict(zip(header, raw, strict=False)), charger_ids, connectors)
        for line, raw in enumerate(rows[1:], start=2)
        if any(cell.strip() for cell in raw)
    ]
    return _place(parsed, charger_ids, connectors)


def _row(path: Path, line: int, cells: dict[str, str], ids: Sequence[str], connectors: int) -> _Row:
    def fail(column: str, what: str) -> ScenarioError:
        return ScenarioError(f"scenario {path} row {line}, column {column}: {what}")

    def cell(column: str) -> str:
        return (cells.get(column) or "").strip()

    def when(column: str) -> int:
        text = cell(column)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise fail(column, f"{text!r} is not an ISO 8601 date-time") from None
        if parsed.tzinfo is None:
            raise fail(column, f"{text!r} has no UTC offset (add Z or +01:00)")
        return math.ceil(parsed.timestamp())

    def number(column: str, default: float | None = None) -> float:
        text = cell(column)
        if not text and default is not None:
            return default
        try:
            value = float(text)
        except ValueError:
            raise fail(column, f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise fail(column, f"{text!r} is not a number")
        return value

    arrival, departure = when("arrival"), when("departure")
    if departure <= arrival:
        raise fail("departure", "must be after the arrival")
    energy = number("energy_kwh")
    if energy < 0:
        raise fail("energy_kwh", "must be 0 or more")
    phases_text = cell("phases")
    if phases_text not in ("1", "3"):
        raise fail("phases", f"{phases_text!r} is not 1 or 3")
    max_current = number("max_current")
    if not 0 < max_current <= 32:
        raise fail("max_current", f"{max_current:g} A is not in (0, 32]")
    follows = number("follows_limit", 1.0)
    if not 0 < follows <= 1:
        raise fail("follows_limit", f"{follows:g} is not a share in (0, 1]")
    charger: str | None = cell("charger") or None
    if charger is not None:
        if charger.isdigit():
            if not 1 <= int(charger) <= len(ids):
                raise fail("charger", f"position {charger} is not 1–{len(ids)}")
            charger = ids[int(charger) - 1]
        elif charger not in ids:
            raise fail("charger", f"{charger} is not a simulated charger")
    connector_text = cell("connector")
    connector: int | None = None
    if connector_text:
        if not connector_text.isdigit() or not 1 <= int(connector_text) <= connectors:
            raise fail("connector", f"{connector_text!r} is not 1–{connectors}")
        connector = int(connector_text)
    car = Car(int(phases_text), max_current, energy, follows)
    return _Row(line, Visit(arrival, departure, car), charger, connector)


def _place(rows: list[_Row], ids: Sequence[str], connectors: int) -> ScenarioVisits:
    keys = [(cp, c) for cp in ids for c in range(1, connectors + 1)]
    busy_until: dict[tuple[str, int], int] = {}
    visits: dict[tuple[str, int], list[Visit]] = {}
    turned_away = 0
    for row in sorted(rows, key=lambda r: (r.visit.arrival, r.line)):
        candidates = [
            k
            for k in keys
            if (row.charger is None or k[0] == row.charger)
            and (row.connector is None or k[1] == row.connector)
        ]
        free = [k for k in candidates if busy_until.get(k, -1) <= row.visit.arrival]
        if not free:
            turned_away += 1
            continue
        key = free[0]
        busy_until[key] = row.visit.departure
        visits.setdefault(key, []).append(row.visit)
    first = min((r.visit.arrival for r in rows), default=None)
    return ScenarioVisits(visits, turned_away, first)
