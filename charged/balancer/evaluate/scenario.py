"""The scenario file: one row per visit of a car to the garage, as CSV.

Columns (header row required, any order; names are case-sensitive):

- ``arrival``, ``departure``: ISO 8601 with an offset (``2026-03-02T07:41:00+01:00``, or
  ``Z``); the car plugs in at ``arrival`` and leaves at ``departure`` (> arrival).
- ``energy_kwh``: what the car takes before it is full (>= 0).
- ``phases``: 1 or 3, the phases the car charges on (a one-phase car draws on its charger's
  L1 terminal, whichever site phase the charger's rotation puts that on).
- ``max_current``: A per phase the car draws when allowed (more than 0, at most 32).
- ``charger``, ``connector`` (optional): where it plugs in.  Blank or absent: the first free
  connector of the charger (``charger`` alone), or of the site (both blank), in the order the
  site lists its chargers, when the car arrives.
- ``follows_limit`` (optional, default 1.0): the share of its limit the car draws (the field
  study saw a car draw about half its limit): it draws min(max_current, share × limit).

Rows are numbered as a spreadsheet numbers them: the header is row 1, the first visit row 2.
A bad row is one :class:`ScenarioError` naming the row and the column.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timezone
from pathlib import Path
from typing import TextIO

REQUIRED_COLUMNS = ("arrival", "departure", "energy_kwh", "phases", "max_current")
OPTIONAL_COLUMNS = ("charger", "connector", "follows_limit")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
MAX_CURRENT = 32.0

ConnectorKey = tuple[str, int]  # charger id, connector id (1-based)


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message is one line naming row and column."""


@dataclass(frozen=True, slots=True)
class Visit:
    """One car's visit.  Times are epoch seconds (UTC)."""

    row: int  # the row of the file it came from (2 = first visit); 0 when made in code
    arrival: float
    departure: float
    energy_kwh: float
    phases: int
    max_current: float
    charger: str | None = None
    connector: int | None = None
    follows_limit: float = 1.0

    @property
    def key(self) -> ConnectorKey:
        if self.charger is None or self.connector is None:
            raise ValueError(f"visit of row {self.row} has no connector assigned yet")
        return (self.charger, self.connector)

    def describe(self) -> str:
        return f"row {self.row}" if self.row else "visit"


@dataclass(frozen=True, slots=True)
class Scenario:
    """Visits in arrival order; ``tz`` is the offset the file was written in (for display)."""

    visits: tuple[Visit, ...]
    tz: timezone = UTC
    name: str = "scenario"

    @property
    def start(self) -> float:
        return min(v.arrival for v in self.visits) if self.visits else 0.0

    @property
    def end(self) -> float:
        return max(v.departure for v in self.visits) if self.visits else 0.0

    @property
    def energy_asked_kwh(self) -> float:
        return math.fsum(v.energy_kwh for v in self.visits)


# --------------------------------------------------------------------------- reading


def read_scenario(path: Path | str) -> Scenario:
    """Parse a scenario file; :class:`ScenarioError` (one line) if it is unusable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not UTF-8 text; save the CSV as UTF-8") from None
    try:
        return parse_scenario(text, name=path.stem)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


def parse_scenario(text: str, *, name: str = "scenario") -> Scenario:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ScenarioError(
            "empty file; the first row must name the columns: " + ",".join(REQUIRED_COLUMNS)
        ) from None
    header = [h.strip() for h in header]
    for h in header:
        if h not in COLUMNS:
            raise ScenarioError(
                f"row 1: unknown column {h!r}; the columns are {', '.join(COLUMNS)}"
            )
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise ScenarioError(f"row 1: column {h!r} appears twice")
        seen.add(h)
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        raise ScenarioError(
            f"row 1: missing column {missing[0]!r} (required: {', '.join(REQUIRED_COLUMNS)})"
        )
    visits: list[Visit] = []
    tz: timezone | None = None
    for row_number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue  # a blank line (a trailing newline, a spreadsheet's empty row)
        if len(cells) > len(header):
            raise ScenarioError(
                f"row {row_number}: {len(cells)} cells but the header names {len(header)} "
                "columns; quote values that contain a comma"
            )
        values = dict(zip(header, (c.strip() for c in cells), strict=False))
        visit, offset = _parse_row(row_number, values)
        tz = tz or offset
        visits.append(visit)
    visits.sort(key=lambda v: (v.arrival, v.row))
    return Scenario(visits=tuple(visits), tz=tz or UTC, name=name)


def _parse_row(row: int, values: dict[str, str]) -> tuple[Visit, timezone]:
    def cell(column: str) -> str:
        return values.get(column, "")

    def fail(column: str, message: str) -> ScenarioError:
        return ScenarioError(f"row {row}, column {column}: {message}")

    arrival, tz = _parse_time(cell("arrival"), fail("arrival", "{}"))
    departure, _ = _parse_time(cell("departure"), fail("departure", "{}"))
    if departure <= arrival:
        raise fail("departure", f"{cell('departure')} is not after the arrival {cell('arrival')}")
    energy = _parse_number(cell("energy_kwh"), fail("energy_kwh", "{}"))
    if energy < 0:
        raise fail("energy_kwh", f"must be 0 kWh or more, got {cell('energy_kwh')}")
    phases_text = cell("phases")
    if phases_text not in ("1", "3"):
        raise fail("phases", f"must be 1 or 3, got {phases_text!r}")
    max_current = _parse_number(cell("max_current"), fail("max_current", "{}"))
    if not 0 < max_current <= MAX_CURRENT:
        raise fail(
            "max_current",
            f"must be more than 0 and at most {MAX_CURRENT:g} A per phase, "
            f"got {cell('max_current')}",
        )
    charger = cell("charger") or None
    connector: int | None = None
    if cell("connector"):
        try:
            connector = int(cell("connector"))
        except ValueError:
            raise fail("connector", f"not a connector number: {cell('connector')!r}") from None
        if connector < 1:
            raise fail("connector", f"connectors are numbered from 1, got {connector}")
        if charger is None:
            raise fail("connector", "a connector needs its charger in the charger column")
    follows = 1.0
    if cell("follows_limit"):
        follows = _parse_number(cell("follows_limit"), fail("follows_limit", "{}"))
        if not 0 < follows <= 1:
            raise fail("follows_limit", f"must be in (0, 1], got {cell('follows_limit')}")
    visit = Visit(
        row=row,
        arrival=arrival,
        departure=departure,
        energy_kwh=energy,
        phases=int(phases_text),
        max_current=max_current,
        charger=charger,
        connector=connector,
        follows_limit=follows,
    )
    return visit, tz


def _parse_time(text: str, error: ScenarioError) -> tuple[float, timezone]:
    template = str(error)
    if not text:
        raise ScenarioError(template.format("missing; an ISO 8601 time with an offset"))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ScenarioError(
            template.format(f"not an ISO 8601 time: {text!r} (e.g. 2026-03-02T07:41:00+01:00)")
        ) from None
    offset = moment.utcoffset()
    if offset is None:
        raise ScenarioError(template.format(f"{text!r} has no offset; add one, e.g. +01:00 or Z"))
    return moment.timestamp(), timezone(offset)


def _parse_number(text: str, error: ScenarioError) -> float:
    template = str(error)
    if not text:
        raise ScenarioError(template.format("missing; a number is required"))
    try:
        value = float(text)
    except ValueError:
        raise ScenarioError(template.format(f"not a number: {text!r}")) from None
    if not math.isfinite(value):
        raise ScenarioError(template.format(f"not a finite number: {text!r}"))
    return value


# --------------------------------------------------------------------------- writing


def format_time(t: float, tz: timezone) -> str:
    return datetime.fromtimestamp(t, tz).isoformat(timespec="seconds")


def write_scenario(scenario: Scenario, out: TextIO | Path | str) -> None:
    """Write the visits (in arrival order) as a scenario file."""
    if isinstance(out, Path | str):
        with Path(out).open("w", encoding="utf-8", newline="") as handle:
            _write(scenario, handle)
    else:
        _write(scenario, out)


def _write(scenario: Scenario, handle: TextIO) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(COLUMNS)
    for v in scenario.visits:
        writer.writerow(
            (
                format_time(v.arrival, scenario.tz),
                format_time(v.departure, scenario.tz),
                f"{v.energy_kwh:.3f}",
                v.phases,
                f"{v.max_current:g}",
                v.charger or "",
                v.connector if v.connector is not None else "",
                f"{v.follows_limit:g}",
            )
        )


# --------------------------------------------------------------------------- placing


def assign_connectors(scenario: Scenario, connectors: Sequence[ConnectorKey]) -> Scenario:
    """Every visit on a connector of the site: given ones checked, blank ones first-free.

    ``connectors`` are the site's, in its order.  A visit naming a charger or connector the
    site does not have, two visits on one connector at once, or no free connector when a car
    arrives: :class:`ScenarioError` naming the row.
    """
    known = set(connectors)
    chargers = {c for c, _ in connectors}
    busy_until: dict[ConnectorKey, tuple[float, int]] = {}
    placed: list[Visit] = []
    # Explicit placements first, so a first-free car never takes a bay a later row names.
    explicit = [v for v in scenario.visits if v.connector is not None]
    for v in explicit:
        if v.charger not in chargers:
            raise ScenarioError(
                f"row {v.row}, column charger: {v.charger!r} is not a charger of the site"
            )
        if v.key not in known:
            raise ScenarioError(
                f"row {v.row}, column connector: charger {v.charger} has no connector {v.connector}"
            )
    reserved: dict[ConnectorKey, list[tuple[float, float, int]]] = {}
    for v in sorted(explicit, key=lambda v: v.arrival):
        spans = reserved.setdefault(v.key, [])
        if spans and spans[-1][1] > v.arrival:
            raise ScenarioError(
                f"row {v.row}, column connector: {v.charger}/{v.connector} is still taken by "
                f"row {spans[-1][2]} until {format_time(spans[-1][1], scenario.tz)}"
            )
        spans.append((v.arrival, v.departure, v.row))
    for v in scenario.visits:
        if v.connector is not None:
            placed.append(v)
            busy_until[v.key] = (v.departure, v.row)
            continue
        if v.charger is not None and v.charger not in chargers:
            raise ScenarioError(
                f"row {v.row}, column charger: {v.charger!r} is not a charger of the site"
            )
        candidates = [k for k in connectors if v.charger is None or k[0] == v.charger]
        chosen = next(
            (
                k
                for k in candidates
                if busy_until.get(k, (-math.inf, 0))[0] <= v.arrival
                and not _overlaps(reserved.get(k, ()), v.arrival, v.departure)
            ),
            None,
        )
        if chosen is None:
            where = f"charger {v.charger}" if v.charger else "the site"
            raise ScenarioError(
                f"row {v.row}, column connector: no connector of {where} is free at "
                f"{format_time(v.arrival, scenario.tz)}; name one or drop the row"
            )
        busy_until[chosen] = (v.departure, v.row)
        placed.append(replace(v, charger=chosen[0], connector=chosen[1]))
    return replace(scenario, visits=tuple(sorted(placed, key=lambda v: (v.arrival, v.row))))


def _overlaps(spans: Iterable[tuple[float, float, int]], start: float, end: float) -> bool:
    return any(s < end and start < e for s, e, _ in spans)
