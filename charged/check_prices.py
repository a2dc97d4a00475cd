"""`charged check`'s price line: the configured price series read once, as the daemon reads it.

The file, or the URL for the site's today and tomorrow (tomorrow's not there yet is no
failure), through the daemon's own :class:`~charged.prices.source.PriceReader`, then what the
rule makes of now.  A URL that cannot be reached, or answers with an HTTP error, fails with 69
(unavailable); a file that cannot be read or prices the fields do not fit fail with 78 (the
config).  A series that ends before now, or has no interval for now, is a warning: nothing is
capped for price until newer prices come.  The URL is shown without its query, which may hold
a key.  Nothing is stored.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from urllib.parse import urlsplit

import aiohttp

from charged.check_result import CheckResult, Status
from charged.check_time import CheckTimeout, within
from charged.clock import Clock
from charged.config import Settings
from charged.exits import EXIT_CONFIG, EXIT_UNAVAILABLE
from charged.prices.rule import rule_from_settings
from charged.prices.series import PriceError, PriceSeries
from charged.prices.source import PriceBook, PriceReader, PriceSource, PriceUnavailable

CHECK = "prices"


async def check_prices(settings: Settings, *, clock: Clock, time_limit: float) -> CheckResult:
    """One line for ``prices`` (which must be enabled: a file or a URL)."""
    prices = settings.prices
    source = PriceSource.of(prices, settings.site.timezone)
    book = PriceBook(rule_from_settings(prices))
    reader = PriceReader(source, book, clock=clock)
    where = f"file {prices.file}" if prices.file is not None else f"url {_shown(prices.url)}"
    key = "prices.file" if prices.file is not None else "prices.url"
    now = clock.time()

    async def read() -> PriceSeries:
        if prices.file is not None:
            return await reader.read(None, now)
        timeout = aiohttp.ClientTimeout(total=time_limit)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            return await reader.read(session, now)

    try:
        series = await within(clock, time_limit, read())
    except PriceUnavailable as exc:
        why = str(exc)
    except PriceError as exc:
        return CheckResult(
            CHECK,
            Status.FAIL,
            f'{where}: {exc}; check {key} and the prices\' fields (README "Prices")',
            EXIT_CONFIG,
        )
    except (CheckTimeout, TimeoutError):
        why = f"no answer within {time_limit:g} s"
    except aiohttp.ClientError as exc:
        why = f"cannot be reached: {type(exc).__name__}: {exc}"[:200]
    else:
        return _read(book, series, now, where, settings.site.timezone)
    return CheckResult(
        CHECK,
        Status.FAIL,
        f"{where}: {why}; check {key} and that the URL answers",
        EXIT_UNAVAILABLE,
    )


def _read(book: PriceBook, series: PriceSeries, now: float, where: str, tz: str) -> CheckResult:
    book.update(series, now)
    zone = zoneinfo.ZoneInfo(tz)

    def local(t: float) -> str:
        return datetime.fromtimestamp(t, zone).isoformat(timespec="minutes")

    span = f"{len(series)} intervals, {local(series.starts[0])} to {local(series.ends[-1])}"
    if series.ends[-1] <= now:
        return CheckResult(
            CHECK,
            Status.WARN,
            f"{where}: {span}, all before now: nothing is capped for price until newer "
            "prices come; check what writes the prices",
        )
    price = book.price(now)
    if price is None:
        return CheckResult(
            CHECK,
            Status.WARN,
            f"{where}: {span}, none for now ({local(now)}): not capped for price until the "
            "series covers the time",
        )
    state = "dear, charging capped" if book.dear(now) else "not dear"
    return CheckResult(CHECK, Status.OK, f"{where}: {span}; now {price:g} ({state})")


def _shown(url: str | None) -> str:
    """The URL without query or credentials: a price service's key often rides in either."""
    parts = urlsplit(url or "")
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"
