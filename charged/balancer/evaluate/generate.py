"""Simulated garage scenarios: a workplace day and a month, deterministic by seed.

The parameters below are the scenario; they were fixed before any policy was run on them and
are not to be tuned to a policy's result (say so in a commit if they ever change, and re-run
every policy).  The garage: 60 connectors (30 dual-socket chargers), cars that
commute (arrive 06:00–11:00 around 08:00, stay about 8.5 h), day visitors (10:00–15:30, 1–4 h)
and a few evening visits.  40 % of cars charge on one phase.  A car asks for no more than it
could take alone at its own maximum over its stay (so any shortfall is the fuse's, not the
car's), and parks in a random free bay; when every bay is taken it drives on (not in the file).

All figures are drawn from one ``random.Random`` seeded with (seed, day), so a day is the same
whichever month it is generated in.

The building and the prices (issue 17) are profiles of their own, fixed before any policy was
run on them, and drawn from their own generators (so adding them changes no visit):

- :func:`building_load`: the office building sharing the garage's connection, on the root
  fuse every 5 minutes.  Its shape is stylised, not measured: the usual form of an office
  building's day (as in standard load profiles for commerce): a night base of a third of the
  day's plateau (ventilation, servers, lighting kept on), rising from 06:00 to a plateau from
  09:00 to 16:00 with a bump at lunch, falling through the evening; weekends at the base with
  a little more by day.  The plateau is :data:`BUILDING_PEAK_A` on L1 (L2, L3 a little less:
  single-phase loads are never spread evenly), with noise of :data:`BUILDING_NOISE_A`.
- :func:`price_series`: hourly prices with the stylised form of a Nordic day-ahead day: cheap
  at night, a morning peak 07–09, a dip at midday, the day's highest 17–19; weekends flatter.
  The level of each day is drawn (log-normal around :data:`PRICE_MEDIAN` per kWh), each hour
  varies a few per cent around the shape.  Not market data.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from charged.balancer.evaluate.meterseries import MeterSeries, readings
from charged.balancer.evaluate.scenario import ConnectorKey, Scenario, Visit
from charged.balancer.model import ChargerSpec, Fuse, Rotation, Site
from charged.prices.series import PriceSeries, series_of

NOMINAL_VOLTAGE = 230.0
GARAGE_TZ = timezone(timedelta(hours=1))  # the garage's local time (CET)
GARAGE_DAY = date(2026, 3, 2)  # a Monday
MONTH_DAYS = 30


@dataclass(frozen=True, slots=True)
class Population:
    """Who comes on a day, by kind of visit (counts are arrivals wanting a bay)."""

    commuters: int = 54
    visitors: int = 30
    evening: int = 6


WEEKDAY = Population()
WEEKEND = Population(commuters=12, visitors=14, evening=4)

ONE_PHASE_SHARE = 0.40
# (max current A, probability) per phase count
ONE_PHASE_CURRENTS = ((16.0, 0.55), (32.0, 0.25), (10.0, 0.20))
THREE_PHASE_CURRENTS = ((16.0, 0.85), (32.0, 0.15))
HALF_FOLLOWER_SHARE = 0.10  # cars that draw about half their limit (the field study saw one)
# a car may ask at most this share of what it could take alone over its stay
MAX_SHARE_OF_STAY = 0.9


def garage_connectors(charger_ids: Sequence[str]) -> list[ConnectorKey]:
    return [(cp, c) for cp in charger_ids for c in (1, 2)]


def garage_day(charger_ids: Sequence[str], *, seed: int = 1, day: date = GARAGE_DAY) -> Scenario:
    """One weekday (or weekend day, by the date) of the simulated garage."""
    visits = _day_visits(garage_connectors(charger_ids), seed=seed, day=day)
    return Scenario(
        visits=tuple(sorted(visits, key=lambda v: v.arrival)),
        tz=GARAGE_TZ,
        name=f"garage-day-{day.isoformat()}-seed{seed}",
    )


def garage_month(
    charger_ids: Sequence[str],
    *,
    seed: int = 1,
    first_day: date = GARAGE_DAY,
    days: int = MONTH_DAYS,
) -> Scenario:
    """``days`` consecutive days from ``first_day``; a car may stay past midnight only in
    the evening kind, which leaves before the next day's first arrivals."""
    connectors = garage_connectors(charger_ids)
    visits: list[Visit] = []
    for n in range(days):
        visits.extend(_day_visits(connectors, seed=seed, day=first_day + timedelta(days=n)))
    return Scenario(
        visits=tuple(sorted(visits, key=lambda v: v.arrival)),
        tz=GARAGE_TZ,
        name=f"garage-month-{first_day.isoformat()}-{days}d-seed{seed}",
    )


def _day_visits(connectors: Sequence[ConnectorKey], *, seed: int, day: date) -> list[Visit]:
    rng = random.Random(f"garage/{seed}/{day.isoformat()}")
    population = WEEKEND if day.weekday() >= 5 else WEEKDAY
    midnight = datetime(day.year, day.month, day.day, tzinfo=GARAGE_TZ).timestamp()
    hour = 3600.0
    wishes: list[tuple[float, float, str]] = []  # arrival, stay, kind
    for _ in range(population.commuters):
        arrival = _clipped_normal(rng, 8.0, 0.85, 6.0, 11.0) * hour
        stay = _clipped_normal(rng, 8.5, 1.2, 4.0, 11.0) * hour
        wishes.append((arrival, stay, "commuter"))
    for _ in range(population.visitors):
        wishes.append((rng.uniform(10.0, 15.5) * hour, rng.uniform(1.0, 4.0) * hour, "visitor"))
    for _ in range(population.evening):
        wishes.append((rng.uniform(17.0, 20.0) * hour, rng.uniform(1.0, 3.0) * hour, "evening"))
    wishes.sort()
    free_at: dict[ConnectorKey, float] = {k: -math.inf for k in connectors}
    parked: list[tuple[float, float, str, ConnectorKey]] = []
    for offset, stay, kind in wishes:
        arrival = midnight + round(offset)
        departure = arrival + round(stay)
        free = [k for k in connectors if free_at[k] <= arrival]
        if not free:
            continue  # the garage is full: this driver goes elsewhere
        bay = free[rng.randrange(len(free))]
        free_at[bay] = departure
        parked.append((arrival, departure, kind, bay))
    # exactly the one-phase share of the cars that parked (not a draw per car, which on a
    # day of 80 cars wanders by ±5 points)
    one_phase = set(rng.sample(range(len(parked)), round(ONE_PHASE_SHARE * len(parked))))
    visits: list[Visit] = []
    for n, (arrival, departure, kind, (charger, connector)) in enumerate(parked):
        phases = 1 if n in one_phase else 3
        max_current, follows, energy = _car(rng, kind, phases, departure - arrival)
        visits.append(
            Visit(
                row=0,
                arrival=arrival,
                departure=departure,
                energy_kwh=round(energy, 3),
                phases=phases,
                max_current=max_current,
                charger=charger,
                connector=connector,
                follows_limit=follows,
            )
        )
    return visits


def _car(rng: random.Random, kind: str, phases: int, stay_s: float) -> tuple[float, float, float]:
    max_current = _choice(rng, ONE_PHASE_CURRENTS if phases == 1 else THREE_PHASE_CURRENTS)
    follows = 0.5 if rng.random() < HALF_FOLLOWER_SHARE else 1.0
    if kind == "commuter":
        wanted = rng.lognormvariate(math.log(10.0), 0.5)  # median 10 kWh, a long tail
    elif kind == "visitor":
        wanted = rng.uniform(2.0, 12.0)
    else:
        wanted = rng.uniform(3.0, 10.0)
    draw = min(max_current, follows * 32.0)
    alone_kwh = phases * draw * NOMINAL_VOLTAGE * stay_s / 3600.0 / 1000.0
    energy = max(0.5, min(wanted, 40.0, MAX_SHARE_OF_STAY * alone_kwh))
    return max_current, follows, energy


def _choice(rng: random.Random, options: Sequence[tuple[float, float]]) -> float:
    x = rng.random()
    for value, p in options:
        if x < p:
            return value
        x -= p
    return options[-1][0]


def _clipped_normal(rng: random.Random, mu: float, sigma: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, rng.gauss(mu, sigma)))


# --------------------------------------------------------------------------- the sites

GARAGE_CHARGERS = 30
CYCLIC_ROTATIONS = ("L1L2L3", "L2L3L1", "L3L1L2", "L1L3L2", "L3L2L1", "L2L1L3")


def garage_site(
    charger_ids: Sequence[str],
    *,
    main_limit: float,
    row_limit: float,
    mixed_rotations: bool = False,
    margin: float = 0.0,
) -> Site:
    """The garage: a main fuse over two rows (sub-distributions) of half the chargers each;
    every charger wired L1L2L3, or (``mixed_rotations``) the six rotations in turn."""
    half = len(charger_ids) // 2
    rows = (
        Fuse("row-a", (row_limit,) * 3, chargers=tuple(charger_ids[:half])),
        Fuse("row-b", (row_limit,) * 3, chargers=tuple(charger_ids[half:])),
    )
    chargers = tuple(
        ChargerSpec(
            id=cp,
            rotation=Rotation.parse(CYCLIC_ROTATIONS[i % 6] if mixed_rotations else "L1L2L3"),
        )
        for i, cp in enumerate(charger_ids)
    )
    return Site(
        root=Fuse("main", (main_limit,) * 3, children=rows), chargers=chargers, margin=margin
    )


# --------------------------------------------------------------------------- building, prices

BUILDING_STEP_S = 300
BUILDING_PEAK_A = 60.0  # the weekday plateau on L1, A
BUILDING_PHASE_SHARE = (1.0, 0.9, 0.95)
BUILDING_NOISE_A = 1.5  # standard deviation of each 5-minute reading
# share of the plateau by local hour (the value at the hour's start; linear in between)
WEEKDAY_SHAPE = (
    0.35, 0.34, 0.33, 0.33, 0.33, 0.35, 0.45, 0.65, 0.85, 0.95, 0.97, 0.98,
    1.0, 0.97, 0.96, 0.95, 0.85, 0.7, 0.55, 0.47, 0.42, 0.39, 0.37, 0.36,
)  # fmt: skip
WEEKEND_SHAPE = (
    0.34, 0.33, 0.33, 0.33, 0.33, 0.33, 0.34, 0.36, 0.38, 0.4, 0.42, 0.43,
    0.43, 0.42, 0.42, 0.41, 0.4, 0.38, 0.37, 0.36, 0.35, 0.35, 0.34, 0.34,
)  # fmt: skip
PRICE_MEDIAN = 0.80  # currency/kWh, the median day's mean level
PRICE_DAY_SIGMA = 0.35  # log-normal spread of the day's level
PRICE_HOUR_SIGMA = 0.05
PRICE_WEEKDAY = (
    0.70, 0.66, 0.64, 0.64, 0.67, 0.78, 1.02, 1.32, 1.38, 1.22, 1.08, 1.00,
    0.95, 0.92, 0.93, 0.98, 1.12, 1.40, 1.50, 1.36, 1.15, 0.98, 0.88, 0.78,
)  # fmt: skip
PRICE_WEEKEND = (
    0.78, 0.74, 0.72, 0.71, 0.72, 0.75, 0.80, 0.88, 0.96, 1.00, 1.00, 0.98,
    0.95, 0.93, 0.94, 0.98, 1.06, 1.20, 1.28, 1.22, 1.10, 0.98, 0.90, 0.84,
)  # fmt: skip


def _days(scenario: Scenario) -> list[date]:
    """The local days the scenario touches (at least one)."""
    tz = scenario.tz
    first = datetime.fromtimestamp(scenario.start, tz).date()
    last = datetime.fromtimestamp(scenario.end, tz).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def building_load(scenario: Scenario, fuse: str, *, seed: int = 1) -> MeterSeries:
    """The office building's load on ``fuse`` over the scenario's local days, every 5 min."""
    rows: list[tuple[float, str, tuple[float, float, float]]] = []
    tz = scenario.tz
    for day in _days(scenario):
        rng = random.Random(f"building/{seed}/{day.isoformat()}")
        shape = WEEKEND_SHAPE if day.weekday() >= 5 else WEEKDAY_SHAPE
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
        for step in range(86400 // BUILDING_STEP_S):
            hours = step * BUILDING_STEP_S / 3600
            h = int(hours)
            level = shape[h] + (shape[(h + 1) % 24] - shape[h]) * (hours - h)
            amps = tuple(
                max(0.0, round(BUILDING_PEAK_A * level * share + rng.gauss(0, BUILDING_NOISE_A), 1))
                for share in BUILDING_PHASE_SHARE
            )
            rows.append((midnight + step * BUILDING_STEP_S, fuse, (amps[0], amps[1], amps[2])))
    series = readings(rows, tz)
    return MeterSeries(series.readings, tz, f"building-{fuse}-seed{seed}")


def price_series(scenario: Scenario, *, seed: int = 1) -> PriceSeries:
    """Hourly prices over the scenario's local days (see the module docstring)."""
    tz = scenario.tz
    rows: list[tuple[float, float, float]] = []
    for day in _days(scenario):
        rng = random.Random(f"prices/{seed}/{day.isoformat()}")
        shape = PRICE_WEEKEND if day.weekday() >= 5 else PRICE_WEEKDAY
        level = PRICE_MEDIAN * math.exp(rng.gauss(0, PRICE_DAY_SIGMA))
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
        for hour in range(24):
            price = level * shape[hour] * math.exp(rng.gauss(0, PRICE_HOUR_SIGMA))
            start = midnight + hour * 3600
            rows.append((start, start + 3600, round(price, 4)))
    return series_of(rows, tz)
