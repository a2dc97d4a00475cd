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
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from charged.balancer.evaluate.scenario import ConnectorKey, Scenario, Visit
from charged.balancer.model import ChargerSpec, Fuse, Rotation, Site

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
