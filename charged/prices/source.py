"""Prices in the daemon: read from a file or an HTTP JSON URL, refreshed, and asked each tick.

:class:`PriceBook` keeps the series known so far (the intervals of the last two days and
later) and which intervals the rule calls dear.  :class:`PriceReader` refreshes it every
``refresh_s``: a file is read again (a new day's prices appended by a cron job show up); a URL
is fetched with TLS verified (aiohttp's default) and a timeout, its body at most
:data:`MAX_BODY_BYTES`.  A URL with ``{date:…}`` in it is fetched for the site's today and
tomorrow (day-ahead prices appear in the afternoon; tomorrow's not there yet is no failure).
A read that fails keeps what is known, logged once until a read succeeds again; prices
running out means no interval is dear, so nobody's charging is capped for want of a price.
"""

from __future__ import annotations

import asyncio
import math
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from charged.clock import Clock, sleep_or_stop
from charged.config_site import PriceSettings
from charged.metrics import Metrics
from charged.prices.rule import DearHours, PriceRule
from charged.prices.series import (
    JsonFields,
    PriceError,
    PriceSeries,
    parse_price_json,
    read_price_file,
    series_of,
)


class PriceUnavailable(PriceError):
    """The URL answered, but not with prices (an HTTP error status)."""


MAX_BODY_BYTES = 1024 * 1024
# what a read of the series may raise: the source's content, or the way to it
READ_ERRORS = (PriceError, aiohttp.ClientError, TimeoutError)
KEEP_S = 2 * 86400  # intervals that ended longer ago than this are dropped


class PriceBook:
    """The prices known and the rule's dear intervals (what the balancer asks each tick)."""

    def __init__(self, rule: PriceRule) -> None:
        self.rule = rule
        self._series: PriceSeries | None = None
        self._hours: DearHours | None = None

    @property
    def series(self) -> PriceSeries | None:
        return self._series

    def update(self, series: PriceSeries, now: float) -> None:
        """Add what was read (a newer read wins for an interval read twice)."""
        merged = series if self._series is None else self._series.merged(series)
        kept = [
            (s, e, p)
            for s, e, p in zip(merged.starts, merged.ends, merged.prices, strict=True)
            if e > now - KEEP_S
        ]
        self._series = series_of(kept, merged.tz) if kept else None
        self._hours = None if self._series is None else DearHours(self._series, self.rule)

    def dear(self, now: float) -> bool:
        return self._hours is not None and self._hours.dear(now)

    def price(self, now: float) -> float | None:
        return None if self._series is None else self._series.price_at(now)


@dataclass(frozen=True, slots=True)
class PriceSource:
    file: Path | None
    url: str | None
    fields: JsonFields
    refresh_s: float
    tz: str = "UTC"

    @classmethod
    def of(cls, settings: PriceSettings, tz: str) -> PriceSource:
        fields = JsonFields(
            items=settings.items,
            start=settings.start_field,
            price=settings.price_field,
            end=settings.end_field,
        )
        return cls(settings.file, settings.url, fields, settings.refresh_s, tz)

    def urls(self, now: float) -> list[tuple[str, bool]]:
        """(URL, required) to fetch at ``now``: today's (required) and tomorrow's when the URL
        names a date, else the URL itself."""
        assert self.url is not None
        if "{" not in self.url:
            return [(self.url, True)]
        today: date = datetime.fromtimestamp(now, zoneinfo.ZoneInfo(self.tz)).date()
        return [
            (self.url.format(date=today), True),
            (self.url.format(date=today + timedelta(days=1)), False),
        ]


class PriceReader:
    def __init__(
        self,
        source: PriceSource,
        book: PriceBook,
        *,
        clock: Clock,
        logger: Any = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.source = source
        self.book = book
        self._clock = clock
        self._log = logger or structlog.get_logger("charged.prices")
        self._failing = False
        self._metrics = metrics
        if metrics is not None:
            # read at each scrape, so they follow the clock between two reads of the series
            metrics.price_now.set_function(lambda: _or_nan(book.price(clock.time())))
            metrics.price_dear.set_function(lambda: float(book.dear(clock.time())))

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=10.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                await self.read_once(session)
                await sleep_or_stop(self._clock, self.source.refresh_s, stop)

    async def read(self, session: aiohttp.ClientSession | None, now: float) -> PriceSeries:
        """The series as the source gives it now (nothing kept); a failure raises
        :data:`READ_ERRORS` (``charged check`` reports it as it is)."""
        if self.source.file is not None:
            return read_price_file(self.source.file)
        assert session is not None
        return await self._fetch(session, now)

    async def read_once(self, session: aiohttp.ClientSession | None = None) -> bool:
        """One refresh; → whether it read prices."""
        now = self._clock.time()
        try:
            series = await self.read(session, now)
        except READ_ERRORS as exc:
            self._count("failed")
            if not self._failing:
                self._failing = True
                self._log.warning(
                    "prices could not be read; keeping what is known",
                    error=f"{type(exc).__name__}: {exc}"[:200],
                )
            return False
        self.book.update(series, now)
        self._count("ok")
        if self._metrics is not None:
            known = self.book.series
            self._metrics.price_known_until.set(known.ends[-1] if known is not None else 0.0)
        if self._failing:
            self._failing = False
            self._log.info("prices read again", intervals=len(series))
        return True

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.price_reads.labels(result).inc()

    async def _fetch(self, session: aiohttp.ClientSession, now: float) -> PriceSeries:
        found: PriceSeries | None = None
        for url, required in self.source.urls(now):
            try:
                series = await self._get(session, url)
            except READ_ERRORS:
                if required:
                    raise
                continue
            found = series if found is None else found.merged(series)
        assert found is not None
        return found

    async def _get(self, session: aiohttp.ClientSession, url: str) -> PriceSeries:
        async with session.get(url, headers={"Accept": "application/json"}) as resp:
            if resp.status != 200:
                raise PriceUnavailable(f"the URL answered HTTP {resp.status}")
            body = await resp.content.read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                raise PriceError(f"the answer is larger than {MAX_BODY_BYTES} bytes")
            return parse_price_json(bytes(body), self.source.fields)


def _or_nan(price: float | None) -> float:
    return math.nan if price is None else price
