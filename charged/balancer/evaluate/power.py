"""Power peaks and energy cost from the energy through the root fuse per slot of the clock.

A run (or the optimum's schedule) gives, per :data:`SLOT_S` slot of the clock (15 minutes,
aligned on the epoch, so on local quarter hours wherever the offset is whole quarter hours),
the kWh through the root fuse and the building's part of it.
From these:

- *window peak*: the highest mean power (kW, chargers and building) over a window of the
  clock (15 or 60 minutes: ``window_s``), among the windows wholly inside the run;
- *monthly peak*: per calendar month (in the scenario's offset), the highest hourly mean power,
  chargers and building: what a Swedish effect tariff charges for;
- *cost*: the chargers' energy (root minus building) in every slot at the price in force at
  the slot's start (currency/kWh; a slot without a price is not counted, and its kWh show as
  ``unpriced_kwh``), and that cost per kWh the chargers took.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timezone

from charged.prices.series import PriceSeries

SLOT_S = 900
WINDOWS_S = (900, 3600)


@dataclass(frozen=True, slots=True)
class PowerFigures:
    window_s: int
    window_peak_kw: float
    monthly_peaks_kw: tuple[tuple[str, float], ...]  # (YYYY-MM, kW), in time order
    charger_kwh: float  # through the root, from the slots
    building_kwh: float
    cost: float | None  # None: no price series
    price_per_kwh: float | None
    unpriced_kwh: float

    @property
    def monthly_peak_kw(self) -> float:
        """The highest of the months' peaks (0 for a run shorter than an hour)."""
        return max((kw for _, kw in self.monthly_peaks_kw), default=0.0)


def power_figures(
    slot_times: Sequence[int],
    root_kwh: Sequence[float],
    building_kwh: Sequence[float],
    *,
    window_s: int = 3600,
    tz: timezone = UTC,
    prices: PriceSeries | None = None,
    slot_s: int = SLOT_S,
) -> PowerFigures:
    if window_s % slot_s:
        raise ValueError(f"the window must be a whole number of {slot_s}-s slots")
    chargers = [r - b for r, b in zip(root_kwh, building_kwh, strict=True)]
    cost: float | None = None
    unpriced = 0.0
    if prices is not None:
        parts = []
        for t, kwh in zip(slot_times, chargers, strict=True):
            price = prices.price_at(t)
            if price is None:
                unpriced += kwh
            else:
                parts.append(kwh * price)
        cost = math.fsum(parts)
    charger_kwh = math.fsum(chargers)
    priced = charger_kwh - unpriced
    months: dict[str, float] = {}
    for hour, kw in window_means(slot_times, root_kwh, 3600, slot_s):
        month = datetime.fromtimestamp(hour, tz).strftime("%Y-%m")
        months[month] = max(months.get(month, 0.0), kw)
    peak = max((kw for _, kw in window_means(slot_times, root_kwh, window_s, slot_s)), default=0.0)
    return PowerFigures(
        window_s=window_s,
        window_peak_kw=peak,
        monthly_peaks_kw=tuple(months.items()),
        charger_kwh=charger_kwh,
        building_kwh=math.fsum(building_kwh),
        cost=cost,
        price_per_kwh=cost / priced if cost is not None and priced > 1e-9 else None,
        unpriced_kwh=unpriced,
    )


def window_means(
    slot_times: Sequence[int], kwh: Sequence[float], window_s: int, slot_s: int = SLOT_S
) -> list[tuple[int, float]]:
    """(window start, mean kW) of every clock window wholly covered by the slots."""
    per = window_s // slot_s
    sums: dict[int, list[float]] = {}
    for t, e in zip(slot_times, kwh, strict=True):
        sums.setdefault(t - t % window_s, []).append(e)
    hours = window_s / 3600
    return [(w, math.fsum(parts) / hours) for w, parts in sums.items() if len(parts) == per]
