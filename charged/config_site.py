"""The sections the balancer reads: ``site:`` (the fuse tree, rotations, site meters, limit
schedules, the power target), ``balancer:`` and ``prices:``; composed into
:class:`charged.config.Settings`, validated like the rest of the file.
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from charged.config_base import PositiveFloat, PositiveInt
from charged.config_base import Section as _Section

PhaseAmps = Annotated[float, Field(ge=0)]
FieldPath = Annotated[str, Field(min_length=1, max_length=256)]


class MeterSettings(_Section):
    """A site meter: what else a fuse feeds besides the chargers, per site phase."""

    # where the readings come from: an MQTT topic (on the mqtt: broker) or an HTTP JSON URL
    mqtt_topic: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    http_url: str | None = None
    http_interval_s: Annotated[float, Field(ge=1)] = 10.0  # seconds between HTTP reads
    # the JSON field of L1, L2, L3: a dotted path, list positions as numbers (data.phases.0.i)
    fields: Annotated[list[FieldPath], Field(min_length=3, max_length=3)]
    unit: Literal["A", "W"] = "A"  # W: power per phase, divided by voltage
    voltage: PositiveFloat = 230.0
    max_age_s: PositiveFloat = 60.0  # older than this the reading is stale
    # A per phase the building is assumed to draw while the meter is stale (or [L1, L2, L3]);
    # None: the fuse's whole limit (nothing left for the chargers)
    fallback_a: PhaseAmps | Annotated[list[PhaseAmps], Field(min_length=3, max_length=3)] | None = (
        None
    )
    # A added to every fresh reading, at least: what the building may rise by before the
    # balancer answers (the next tick's lowered limits in force)
    headroom_a: PhaseAmps = 2.0
    # hours the largest rise the meter showed within that time is remembered and added instead
    # of headroom_a when larger (0: always headroom_a)
    headroom_learn_h: Annotated[float, Field(ge=0, le=744)] = 24.0

    @field_validator("mqtt_topic")
    @classmethod
    def _one_topic(cls, value: str | None) -> str | None:
        if value is not None and ("+" in value or "#" in value):
            raise ValueError("must be one topic, without the wildcards + or #")
        return value

    @field_validator("http_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// on a trusted network)")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> MeterSettings:
        if (self.mqtt_topic is None) == (self.http_url is None):
            raise ValueError("give exactly one of mqtt_topic and http_url")
        return self

    def fallback(self) -> tuple[float, float, float] | None:
        if self.fallback_a is None:
            return None
        if isinstance(self.fallback_a, list):
            return (self.fallback_a[0], self.fallback_a[1], self.fallback_a[2])
        return (self.fallback_a, self.fallback_a, self.fallback_a)


ROTATION_PATTERN = r"^(?:L1L2L3|L1L3L2|L2L1L3|L2L3L1|L3L1L2|L3L2L1)$"


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PhaseLimit = PositiveFloat | Annotated[list[PositiveFloat], Field(min_length=3, max_length=3)]
_CLOCK = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")


def _phase_limits(limit: float | list[float]) -> tuple[float, float, float]:
    if isinstance(limit, list):
        return (limit[0], limit[1], limit[2])
    return (limit, limit, limit)


def clock_minutes(value: object) -> int:
    """``"HH:MM"`` → minutes after midnight (``"24:00"`` is 1440, the end of the day)."""
    if not isinstance(value, str):
        # PyYAML reads a bare 07:00 as the number 420 (base 60): ask for quotes
        raise ValueError("must be a time of day in quotes, 'HH:MM' (e.g. '07:00')")
    found = _CLOCK.match(value)
    if found is None:
        raise ValueError("must be a time of day 'HH:MM' from '00:00' to '24:00'")
    minutes = int(found[1]) * 60 + int(found[2])
    if minutes > 24 * 60:
        raise ValueError("must be a time of day 'HH:MM' from '00:00' to '24:00'")
    return minutes


class ScheduleEntry(_Section):
    """A fuse's limit on some weekdays from ``start`` to ``end`` (the site's local time)."""

    days: Annotated[list[Literal[WEEKDAYS]], Field(min_length=1)] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(WEEKDAYS)
    )
    start: str  # 'HH:MM', included
    end: str  # 'HH:MM', excluded; '24:00' is midnight at the end of the day
    limit: PhaseLimit  # A on every site phase, or [L1, L2, L3]

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock(cls, value: object) -> object:
        clock_minutes(value)
        return value

    @model_validator(mode="after")
    def _forward(self) -> ScheduleEntry:
        if len(set(self.days)) != len(self.days):
            raise ValueError("days: a weekday is named twice")
        if clock_minutes(self.start) >= clock_minutes(self.end):
            raise ValueError(
                f"start {self.start} is not before end {self.end}; a range over midnight is "
                "two entries (… to '24:00', and '00:00' to … on the next day)"
            )
        return self

    def minutes(self) -> tuple[int, int]:
        return (clock_minutes(self.start), clock_minutes(self.end))

    def limits(self) -> tuple[float, float, float]:
        return _phase_limits(self.limit)


class FuseSettings(_Section):
    """One fuse of the site: a limit per site phase, the chargers it feeds, fuses below it."""

    name: Annotated[str, Field(min_length=1, max_length=128)]
    # A on every site phase, or [L1, L2, L3]
    limit: PhaseLimit
    chargers: list[str] = Field(default_factory=list)
    children: list[FuseSettings] = Field(default_factory=list)
    # a weekly schedule: in an entry's days and hours its limit replaces ``limit``
    schedule: list[ScheduleEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _no_overlap(self) -> FuseSettings:
        for i, a in enumerate(self.schedule):
            for j in range(i + 1, len(self.schedule)):
                b = self.schedule[j]
                shared = [day for day in WEEKDAYS if day in a.days and day in b.days]
                (a0, a1), (b0, b1) = a.minutes(), b.minutes()
                if shared and a0 < b1 and b0 < a1:
                    raise ValueError(
                        f"schedule: entries {i} and {j} overlap on {shared[0]} from "
                        f"{max(a.start, b.start)} to {min(a.end, b.end)}; one limit at a time"
                    )
        return self

    def limits(self) -> tuple[float, float, float]:
        return _phase_limits(self.limit)


class PowerTargetSettings(_Section):
    """The site's power target: a window's mean power, chargers plus building, under it."""

    target_kw: PositiveFloat  # the window's mean power to stay under (kW)
    window_min: Literal[15, 60] = 15  # the window: quarter-hours or hours of the clock
    # true: the target rises to the month's highest window mean so far (an effect tariff)
    monthly: bool = False
    voltage: PositiveFloat = 230.0  # V per phase, to turn the power left into A per phase


class SiteSettings(_Section):
    """The garage's wiring for the balancer (the same schema as a standalone site file)."""

    fuse: FuseSettings | None = None  # the root (main) fuse; None: no site described
    # charger id -> which site phase its terminals L1 L2 L3 land on (default L1L2L3)
    rotations: dict[str, Annotated[str, Field(pattern=ROTATION_PATTERN)]] = Field(
        default_factory=dict
    )
    # A kept free below every fuse on every phase
    margin: Annotated[float, Field(ge=0)] = 0.0
    # chargers whose isLoadbalanced is true but whose vendor balancing is known to be off
    vendor_balancing_off: list[str] = Field(default_factory=list)
    # fuse name -> its meter of what else it feeds (the building's own load)
    meters: dict[str, MeterSettings] = Field(default_factory=dict)
    # the site's time zone (IANA name): the fuses' schedules and the power target's month
    timezone: str = "UTC"
    # None: no power target (the fuses alone limit the chargers)
    power_target: PowerTargetSettings | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "is not a time zone this machine knows: an IANA name such as Europe/Stockholm "
                "or UTC (install tzdata if none is known)"
            ) from None
        return value

    @model_validator(mode="after")
    def _one_place_each(self) -> SiteSettings:
        placed: dict[str, str] = {}
        names: set[str] = set()
        pending = [] if self.fuse is None else [self.fuse]
        while pending:
            fuse = pending.pop()
            if fuse.name in names:
                raise ValueError(f"fuse name {fuse.name!r} is used twice")
            names.add(fuse.name)
            for cp in fuse.chargers:
                if cp in placed:
                    raise ValueError(f"charger {cp} is under both {placed[cp]} and {fuse.name}")
                placed[cp] = fuse.name
            pending.extend(fuse.children)
        for key, what in (
            (self.rotations, "rotations"),
            (self.vendor_balancing_off, "vendor_balancing_off"),
        ):
            strangers = sorted(set(key) - set(placed))
            if strangers:
                raise ValueError(f"{what}: charger {strangers[0]} is under no fuse of the site")
        unknown = sorted(set(self.meters) - names)
        if unknown:
            raise ValueError(f"meters: {unknown[0]!r} is not the name of a fuse of the site")
        if self.power_target is not None and self.fuse is None:
            raise ValueError("power_target caps the top fuse: describe the site's fuse too")
        return self

    def charger_ids(self) -> list[str]:
        out: list[str] = []
        pending = [] if self.fuse is None else [self.fuse]
        while pending:
            fuse = pending.pop(0)
            out.extend(fuse.chargers)
            pending.extend(fuse.children)
        return out


class BalancerSettings(_Section):
    # off: nothing; shadow: decide and record every step, send nothing; active: send
    mode: Literal["off", "shadow", "active"] = "off"
    # guarantee: the limits in force never exceed a fuse; measured: trimmed from readings
    guarantee: Literal["guarantee", "measured"] = "guarantee"
    fairness: Literal["current", "power"] = "current"  # what max-min fair shares
    arrival_limit: Annotated[float, Field(ge=0, le=32)] = 0.0  # A an idle connector holds
    hysteresis: Annotated[float, Field(ge=0)] = 2.0  # A: smaller changes are not sent
    hold_s: Annotated[float, Field(ge=0)] = 300.0  # no increase this soon after a change
    min_run_s: Annotated[float, Field(ge=0)] = 1800.0  # a running car keeps its slot
    max_wait_s: Annotated[float, Field(ge=0)] = 1800.0  # a paused car takes a slot after
    settle_s: Annotated[float, Field(ge=0)] = 60.0  # a lowered limit counts old this long
    max_writes_per_tick: PositiveInt = 20

    @field_validator("mode", mode="before")
    @classmethod
    def _off_unquoted(cls, value: object) -> object:
        return "off" if value is False else value  # YAML reads a bare off as false


class PriceSettings(_Section):
    """Energy prices and the rule that caps charging in the dear hours (README "Prices")."""

    # where the prices come from: a CSV file (start, price) or an HTTP JSON URL; neither: off
    file: Path | None = None
    # {date:%Y/%m-%d} etc. in the URL: read for today and tomorrow (the site's local date)
    url: str | None = None
    items: Annotated[str, Field(max_length=256)] = ""  # dotted path of the list ("" the body)
    start_field: Annotated[str, Field(min_length=1, max_length=128)] = "time_start"
    end_field: Annotated[str, Field(min_length=1, max_length=128)] | None = "time_end"
    price_field: Annotated[str, Field(min_length=1, max_length=128)] = "SEK_per_kWh"
    refresh_s: Annotated[float, Field(ge=60)] = 3600.0  # seconds between reads
    # dear: a price above dear_above (currency/kWh), or among the dearest dear_share of the
    # day's intervals; neither given: dear_share 0.25
    dear_above: float | None = None
    dear_share: Annotated[float, Field(gt=0, lt=1)] | None = None
    cap_kw: Annotated[float, Field(ge=0)] = 0.0  # the chargers together when dear, kW
    connector_min: Annotated[float, Field(ge=0, le=32)] = 6.0  # A per phase a car keeps

    @field_validator("url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// on a trusted network)")
        return value

    @model_validator(mode="after")
    def _one_each(self) -> PriceSettings:
        if self.file is not None and self.url is not None:
            raise ValueError("give one of file and url, not both")
        if self.dear_above is not None and self.dear_share is not None:
            raise ValueError("give one of dear_above and dear_share, not both")
        if 0 < self.connector_min < 6:
            raise ValueError("connector_min must be 0 or at least 6 A (a car stops below 6 A)")
        return self

    @property
    def enabled(self) -> bool:
        return self.file is not None or self.url is not None
