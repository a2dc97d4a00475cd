"""A price series: currency per kWh over consecutive intervals (an hour, or 15 minutes).

The file form is CSV with a header row naming two columns, in any order:

- ``start``: ISO 8601 with an offset, the start of the interval the price holds for;
- ``price``: currency per kWh (any currency; negative prices are allowed, they happen).

Each price holds from its ``start`` until the next row's; the last row holds for as long as
the row before it did (an hour when it is the only one).  Rows are numbered as a spreadsheet
numbers them (header = row 1); a bad row is one :class:`PriceError` naming row and column.

The JSON form (an HTTP answer) is a list of objects, each with a start field and a price
field (names configurable), and optionally an end field; see :func:`parse_price_json`.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timezone
from pathlib import Path
from typing import Any

PRICE_COLUMNS = ("start", "price")
DEFAULT_INTERVAL_S = 3600.0


class PriceError(ValueError):
    """A price series that cannot be used; the message is one line naming where and why."""


@dataclass(frozen=True, slots=True)
class PriceSeries:
    """Prices over intervals ``[starts[k], ends[k])`` (epoch seconds), in time order.

    ``tz`` is the offset the series was written in: its calendar days are the days the
    price rule ranks hours within."""

    starts: tuple[float, ...]
    ends: tuple[float, ...]
    prices: tuple[float, ...]
    tz: timezone = UTC

    def __len__(self) -> int:
        return len(self.prices)

    def index_at(self, t: float) -> int | None:
        """The interval holding ``t``; None outside every interval."""
        k = bisect.bisect_right(self.starts, t) - 1
        if k < 0 or t >= self.ends[k]:
            return None
        return k

    def price_at(self, t: float) -> float | None:
        k = self.index_at(t)
        return None if k is None else self.prices[k]

    def day_of(self, k: int) -> str:
        """The calendar day (in ``tz``) interval ``k`` starts on, ``YYYY-MM-DD``."""
        return datetime.fromtimestamp(self.starts[k], self.tz).date().isoformat()

    def merged(self, other: PriceSeries) -> PriceSeries:
        """This series with ``other``'s intervals added (``other`` wins where they start at the
        same moment); intervals stay in time order."""
        by_start = {s: (e, p) for s, e, p in zip(self.starts, self.ends, self.prices, strict=True)}
        for s, e, p in zip(other.starts, other.ends, other.prices, strict=True):
            by_start[s] = (e, p)
        return series_of(((s, *by_start[s]) for s in sorted(by_start)), self.tz)


def series_of(rows: Iterable[tuple[float, float, float]], tz: timezone) -> PriceSeries:
    """(start, end, price) rows in time order as a series."""
    starts, ends, prices = [], [], []
    for s, e, p in rows:
        starts.append(s)
        ends.append(e)
        prices.append(p)
    return PriceSeries(tuple(starts), tuple(ends), tuple(prices), tz)


# --------------------------------------------------------------------------- CSV


def read_price_file(path: Path | str) -> PriceSeries:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise PriceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PriceError(f"{path}: not UTF-8 text; save the CSV as UTF-8") from None
    try:
        return parse_price_csv(text)
    except PriceError as exc:
        raise PriceError(f"{path}: {exc}") from None


def parse_price_csv(text: str) -> PriceSeries:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise PriceError("empty file; the first row must name the columns start,price") from None
    for h in header:
        if h not in PRICE_COLUMNS:
            raise PriceError(f"row 1: unknown column {h!r}; the columns are start, price")
    for c in PRICE_COLUMNS:
        if header.count(c) != 1:
            raise PriceError(f"row 1: column {c!r} must appear once (columns: start, price)")
    starts: list[float] = []
    prices: list[float] = []
    tz: timezone | None = None
    for row, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise PriceError(f"row {row}: {len(cells)} cells but the header names {len(header)}")
        values = dict(zip(header, (c.strip() for c in cells), strict=False))
        start, offset = parse_time(values.get("start", ""), f"row {row}, column start")
        price = parse_number(values.get("price", ""), f"row {row}, column price")
        if starts and start <= starts[-1]:
            raise PriceError(
                f"row {row}, column start: {values['start']} is not after the row before; "
                "sort the rows by start, one row per interval"
            )
        tz = tz or offset
        starts.append(start)
        prices.append(price)
    if not starts:
        raise PriceError("no prices: add rows of start,price under the header")
    return series_of(_with_ends(starts, prices), tz or UTC)


def _with_ends(
    starts: Sequence[float], prices: Sequence[float]
) -> list[tuple[float, float, float]]:
    rows = []
    for k, (s, p) in enumerate(zip(starts, prices, strict=True)):
        if k + 1 < len(starts):
            end = starts[k + 1]
        elif k > 0:
            end = s + (s - starts[k - 1])
        else:
            end = s + DEFAULT_INTERVAL_S
        rows.append((s, end, p))
    return rows


def parse_time(text: str, where: str) -> tuple[float, timezone]:
    if not text:
        raise PriceError(f"{where}: missing; an ISO 8601 time with an offset")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PriceError(
            f"{where}: not an ISO 8601 time: {text!r} (e.g. 2026-03-02T07:00:00+01:00)"
        ) from None
    offset = moment.utcoffset()
    if offset is None:
        raise PriceError(f"{where}: {text!r} has no offset; add one, e.g. +01:00 or Z")
    return moment.timestamp(), timezone(offset)


def parse_number(text: str, where: str) -> float:
    if not text:
        raise PriceError(f"{where}: missing; a number is required")
    try:
        value = float(text)
    except ValueError:
        raise PriceError(f"{where}: not a number: {text!r}") from None
    if not math.isfinite(value):
        raise PriceError(f"{where}: not a finite number: {text!r}")
    return value


def write_price_csv(series: PriceSeries) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PRICE_COLUMNS)
    for s, p in zip(series.starts, series.prices, strict=True):
        moment = datetime.fromtimestamp(s, series.tz).isoformat(timespec="seconds")
        writer.writerow((moment, f"{p:.4f}"))
    return out.getvalue()


# --------------------------------------------------------------------------- JSON


@dataclass(frozen=True, slots=True)
class JsonFields:
    """Where a JSON answer keeps its prices: ``items`` is the dotted path of the list ("" the
    document itself); in each item the start, the price and (optionally) the end."""

    items: str = ""
    start: str = "time_start"
    price: str = "SEK_per_kWh"
    end: str | None = "time_end"


def parse_price_json(body: bytes | str, fields: JsonFields) -> PriceSeries:
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PriceError("the answer is not JSON") from None
    items = document
    for part in fields.items.split(".") if fields.items else ():
        if isinstance(items, dict) and part in items:
            items = items[part]
        elif isinstance(items, list) and part.isdigit() and int(part) < len(items):
            items = items[int(part)]
        else:
            raise PriceError(f"items {fields.items}: the answer has no {part!r} there")
    if not isinstance(items, list):
        raise PriceError(f"items {fields.items or '(the document)'}: not a list of prices")
    rows: list[tuple[float, float | None, float]] = []
    tz: timezone | None = None
    for n, item in enumerate(items):
        where = f"item {n}"
        if not isinstance(item, dict):
            raise PriceError(f"{where}: not an object")
        start, offset = parse_time(_text(item.get(fields.start)), f"{where}, {fields.start}")
        end: float | None = None
        if fields.end is not None and item.get(fields.end) is not None:
            end, _ = parse_time(_text(item[fields.end]), f"{where}, {fields.end}")
            if end <= start:
                raise PriceError(f"{where}, {fields.end}: not after {fields.start}")
        price = parse_number(_text(item.get(fields.price)), f"{where}, {fields.price}")
        tz = tz or offset
        rows.append((start, end, price))
    if not rows:
        raise PriceError("the answer holds no prices")
    rows.sort()
    for k in range(1, len(rows)):
        if rows[k][0] == rows[k - 1][0]:
            raise PriceError(f"two prices start at {rows[k][0]:.0f}")
    starts = [r[0] for r in rows]
    guessed = _with_ends(starts, [r[2] for r in rows])
    out = [(s, e if e is not None else g[1], p) for (s, e, p), g in zip(rows, guessed, strict=True)]
    return series_of(out, tz or UTC)


def _text(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return ""
    return str(value)


def local_days(series: PriceSeries) -> dict[str, list[int]]:
    """The intervals of each calendar day of the series (in its ``tz``)."""
    days: dict[str, list[int]] = {}
    for k in range(len(series)):
        days.setdefault(series.day_of(k), []).append(k)
    return days
