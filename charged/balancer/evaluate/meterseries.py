"""The meter series of an evaluation: what else each metered fuse feeds over time, as CSV.

Columns (header row required, any order): ``time`` (ISO 8601 with an offset), ``fuse`` (a
fuse of the site), ``l1``, ``l2``, ``l3`` (A per *site* phase, >= 0).  A row says what the
fuse's meter reads from ``time`` on, until the fuse's next row; before a fuse's first row its
meter reads 0.  As in the daemon (``site.meters``), a meter reads everything its fuse feeds
besides the chargers, the loads of the fuses below it included; a fuse without a meter
carries the sum of its metered children (:meth:`charged.balancer.model.Site.with_other_load`).

Rows are numbered as a spreadsheet numbers them (header = row 1); a bad row is one
:class:`~charged.balancer.evaluate.scenario.ScenarioError` naming the row and the column.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timezone
from pathlib import Path

from charged.balancer.evaluate.scenario import ScenarioError
from charged.balancer.model import PhaseCurrents, Site
from charged.prices.series import PriceError, parse_number, parse_time

METER_COLUMNS = ("time", "fuse", "l1", "l2", "l3")


@dataclass(frozen=True, slots=True)
class MeterSeries:
    """Readings in time order: (epoch seconds, fuse, A per site phase, the file's row)."""

    readings: tuple[tuple[float, str, PhaseCurrents, int], ...]
    tz: timezone = UTC
    name: str = "meters"

    @property
    def fuses(self) -> frozenset[str]:
        return frozenset(f for _, f, _, _ in self.readings)

    def check(self, site: Site) -> None:
        """Every fuse named is a fuse of ``site`` (ScenarioError naming the first row)."""
        names = {f.name for f in site.fuses()}
        for _, fuse, _, row in self.readings:
            if fuse not in names:
                raise ScenarioError(
                    f"{self.name}: row {row}, column fuse: {fuse!r} is not a fuse of the site "
                    f"(fuses: {', '.join(sorted(names))})"
                )

    def steps(self) -> list[tuple[int, dict[str, PhaseCurrents]]]:
        """Whole seconds at which a reading changes, each with every meter's reading from
        then on (the readings of one second merged)."""
        out: list[tuple[int, dict[str, PhaseCurrents]]] = []
        now: dict[str, PhaseCurrents] = {}
        for t, fuse, amps, _ in self.readings:
            second = math.floor(t)
            now[fuse] = amps
            if out and out[-1][0] == second:
                out[-1] = (second, dict(now))
            else:
                out.append((second, dict(now)))
        return out


def read_meter_series(path: Path | str) -> MeterSeries:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not UTF-8 text; save the CSV as UTF-8") from None
    try:
        return parse_meter_csv(text, name=path.name)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


def parse_meter_csv(text: str, *, name: str = "meters") -> MeterSeries:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ScenarioError(
            "empty file; the first row must name the columns " + ",".join(METER_COLUMNS)
        ) from None
    for h in header:
        if h not in METER_COLUMNS:
            raise ScenarioError(
                f"row 1: unknown column {h!r}; the columns are {', '.join(METER_COLUMNS)}"
            )
    for c in METER_COLUMNS:
        if header.count(c) != 1:
            raise ScenarioError(
                f"row 1: column {c!r} must appear once (columns: {', '.join(METER_COLUMNS)})"
            )
    rows: list[tuple[float, str, PhaseCurrents, int]] = []
    tz: timezone | None = None
    for row, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise ScenarioError(
                f"row {row}: {len(cells)} cells but the header names {len(header)} columns"
            )
        values = dict(zip(header, (c.strip() for c in cells), strict=False))
        try:
            t, offset = parse_time(values.get("time", ""), f"row {row}, column time")
            amps = []
            for column in ("l1", "l2", "l3"):
                where = f"row {row}, column {column}"
                value = parse_number(values.get(column, ""), where)
                if value < 0:
                    raise PriceError(f"{where}: must be 0 A or more, got {values[column]}")
                amps.append(value)
        except PriceError as exc:
            raise ScenarioError(str(exc)) from None
        fuse = values.get("fuse", "")
        if not fuse:
            raise ScenarioError(f"row {row}, column fuse: missing; the name of a site fuse")
        tz = tz or offset
        rows.append((t, fuse, (amps[0], amps[1], amps[2]), row))
    rows.sort(key=lambda r: (r[0], r[3]))
    return MeterSeries(tuple(rows), tz or UTC, name)


def write_meter_csv(series: MeterSeries) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(METER_COLUMNS)
    for t, fuse, amps, _ in series.readings:
        moment = datetime.fromtimestamp(t, series.tz).isoformat(timespec="seconds")
        writer.writerow((moment, fuse, *(f"{a:.1f}" for a in amps)))
    return out.getvalue()


def through_fuses(site: Site, metered: Mapping[str, PhaseCurrents]) -> dict[str, PhaseCurrents]:
    """What flows through every fuse besides the chargers, from the meters' readings (the
    daemon's rule, :meth:`Site.with_other_load`)."""
    loaded = site.with_other_load(metered)
    return {f.name: loaded.other_load_of(f) for f in site.fuses()}


def readings(rows: Iterable[tuple[float, str, PhaseCurrents]], tz: timezone) -> MeterSeries:
    """A series from (time, fuse, amps) rows made in code (row numbers count from 2)."""
    made = [(t, f, a, n + 2) for n, (t, f, a) in enumerate(rows)]
    made.sort(key=lambda r: (r[0], r[3]))
    return MeterSeries(tuple(made), tz)
