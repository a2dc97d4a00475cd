"""Prices: the rule's dear intervals, the capped site (nobody stranded), the daemon's step,
reading a file and an HTTP JSON URL, and the evaluation's charged-price."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError

from charged.balancer.allocate import allocate
from charged.balancer.evaluate.engine import run
from charged.balancer.evaluate.metrics import figures
from charged.balancer.evaluate.policies import make_policy
from charged.balancer.model import (
    DEFAULT_PARAMS,
    BalancerMemory,
    ChargerSpec,
    ConnectorState,
    Fuse,
    Rotation,
    Site,
)
from charged.clock import FakeClock
from charged.config_site import PriceSettings
from charged.metrics import Metrics
from charged.prices.rule import DearHours, PriceRule, capped_site, floor_a, rule_from_settings
from charged.prices.series import JsonFields, parse_price_json, series_of
from charged.prices.source import PriceBook, PriceReader, PriceSource
from tests.unit.test_balancer_runtime_limits import KEY, Rows, runtime, tick
from tests.unit.test_evaluate_engine import T0, scenario, site, visit

HOUR = 3600
CET = timezone(timedelta(hours=1))


def day_prices(prices: list[float], start: float = T0) -> Any:
    return series_of(
        [(start + k * HOUR, start + (k + 1) * HOUR, p) for k, p in enumerate(prices)], CET
    )


def test_dear_above_a_threshold_or_among_the_days_dearest_share() -> None:
    series = day_prices([1.0, 3.0, 2.0, 3.0])
    above = DearHours(series, PriceRule(above=2.0))
    assert [above.dear(T0 + k * HOUR) for k in range(4)] == [False, True, False, True]
    # the dearest half of four intervals: the two at 3.0
    half = DearHours(series, PriceRule(share=0.5))
    assert [half.dear(T0 + k * HOUR + 10) for k in range(4)] == [False, True, False, True]
    # a quarter of four is one: the tie goes to the earlier
    quarter = DearHours(series, PriceRule(share=0.25))
    assert [quarter.dear(T0 + k * HOUR) for k in range(4)] == [False, True, False, False]
    # no price known: not dear
    assert not above.dear(T0 - 1) and not above.dear(T0 + 4 * HOUR)


def test_each_local_day_is_ranked_on_its_own() -> None:
    midnight = datetime(2026, 3, 2, tzinfo=CET).timestamp()
    series = day_prices([5.0] * 24 + [1.0] * 23 + [2.0], start=midnight)
    dear = DearHours(series, PriceRule(share=0.25))
    assert sum(dear.dear(midnight + k * HOUR) for k in range(24)) == 6
    assert dear.dear(midnight + 47 * HOUR)  # the second day's dearest, though cheap


def two_chargers() -> Site:
    chargers = (ChargerSpec("CP1", rotation=Rotation.parse("L1L2L3")), ChargerSpec("CP2"))
    return Site(Fuse("main", (63.0,) * 3, chargers=("CP1", "CP2")), chargers)


def wanting(cp: str, terminals: frozenset[int] | None) -> ConnectorState:
    return ConnectorState(
        key=(cp, 1), plugged=True, wants_current=True, terminals=terminals, limit=16.0,
        plugged_since=T0,
    )  # fmt: skip


def test_the_cap_keeps_every_cars_minimum_on_its_phases() -> None:
    idle = [ConnectorState(key=(cp, 2), limit=0.0) for cp in ("CP1", "CP2")]
    states = [wanting("CP1", frozenset({0})), wanting("CP2", None), *idle]
    s = two_chargers()
    assert floor_a(s, states, 6.0, T0) == (12.0, 6.0, 6.0)
    capped = capped_site(s, states, PriceRule(above=1.0, cap_kw=0.0), T0)
    assert capped.capacity(capped.root) == (12.0, 6.0, 6.0)
    # 11.04 kW over three phases is 16 A each, above the floor
    roomy = capped_site(s, states, PriceRule(above=1.0, cap_kw=11.04), T0)
    assert roomy.capacity(roomy.root) == pytest.approx((16.0, 16.0, 16.0))
    # the rule never raises a fuse the building already lowered
    metered = s.with_other_load({"main": (55.0, 55.0, 55.0)})
    assert capped_site(metered, states, PriceRule(above=1.0, cap_kw=30), T0).capacity(
        metered.root
    ) == (
        8.0,
        8.0,
        8.0,
    )
    # nor one a power target capped: the lower of the two caps holds
    target = s.with_caps({"main": (5.0, 5.0, 5.0)})
    assert capped_site(target, states, PriceRule(above=1.0), T0).capacity(target.root) == (
        5.0,
        5.0,
        5.0,
    )
    # the real allocation gives both cars their 6 A: nobody is stranded
    allocation = allocate(capped, states, T0, DEFAULT_PARAMS, BalancerMemory())
    assert [allocation.decisions[(cp, 1)].target for cp in ("CP1", "CP2")] == [6.0, 6.0]
    assert not allocation.paused
    # what the allocation counts as fixed is kept on top: a charger offline, a pinned limit
    offline = ConnectorState(key=("CP1", 2), online=False)
    pinned = ConnectorState(key=("CP2", 2), limit=10.0, pinned=10.0, terminals=frozenset({1}))
    fixed = [*states[:2], offline, pinned]
    assert floor_a(s, fixed, 6.0, T0) == (12.0 + 32.0, 6.0 + 32.0 + 10.0, 6.0 + 32.0)
    # a connector with no state at all counts at its full limit on every phase
    assert floor_a(s, states[:3], 6.0, T0) == (12.0 + 32.0, 6.0 + 32.0, 6.0 + 32.0)


def test_a_rule_needs_one_way_to_be_dear_and_sane_minimums() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        PriceRule()
    with pytest.raises(ValidationError, match="connector_min"):
        PriceSettings(connector_min=3)
    with pytest.raises(ValidationError, match="one of file and url"):
        PriceSettings(file=Path("p.csv"), url="https://example.org/p.json")
    with pytest.raises(ValidationError, match="https://"):
        PriceSettings(url="ftp://example.org/p.json")
    assert rule_from_settings(PriceSettings()).share == 0.25
    assert rule_from_settings(PriceSettings(dear_above=1.5)).above == 1.5


class Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def warning(self, event: str, **_: Any) -> None:
        self.events.append(event)

    def info(self, event: str, **_: Any) -> None:
        self.events.append(event)

    def exception(self, event: str, **_: Any) -> None:
        self.events.append(event)


async def test_the_daemons_step_is_capped_only_in_a_dear_interval() -> None:
    book = PriceBook(PriceRule(above=1.0, cap_kw=0.0))
    book.update(day_prices([0.5, 2.0]), T0)
    log = Log()
    rt = runtime(Rows(), Metrics(), prices=book, logger=log)
    cheap = await rt.step(tick(T0 + 60))
    assert cheap.site.capacity(cheap.site.root) == (40.0, 40.0, 40.0)
    assert cheap.allocation.decisions[KEY].target == 32.0
    dear = await rt.step(tick(T0 + HOUR + 60))
    # the charging connector keeps its 6 A on the three phases it draws on; the idle one none
    assert dear.site.capacity(dear.site.root) == (6.0, 6.0, 6.0)
    assert dear.allocation.decisions[KEY].target == 6.0
    after = await rt.step(tick(T0 + 2 * HOUR + 60))  # no price known: not capped
    assert after.allocation.decisions[KEY].target == 32.0
    await rt.step(tick(T0 + 2 * HOUR + 90))
    transitions = [e for e in log.events if "price" in e]
    assert transitions == [
        "dear price: charging capped",
        "price no longer dear: charging not capped",
    ]


def test_the_daemon_installs_a_reader_for_configured_prices(tmp_path: Path) -> None:
    from charged.cli import _install_prices
    from charged.config import Settings

    class Daemon:
        clock = FakeClock(T0)
        metrics = Metrics()

        def __init__(self) -> None:
            self.tasks: list[str] = []

        def add_task(self, name: str, run: Any) -> None:
            self.tasks.append(name)

    off, on = Daemon(), Daemon()
    assert _install_prices(off, Settings()) is None and off.tasks == []
    settings = Settings(prices=PriceSettings(file=tmp_path / "p.csv", dear_share=0.5))
    book = _install_prices(on, settings)
    assert isinstance(book, PriceBook) and book.rule.share == 0.5
    assert on.tasks == ["charged-prices"]


def test_the_book_keeps_two_days_and_a_newer_read_wins() -> None:
    book = PriceBook(PriceRule(above=1.0))
    book.update(day_prices([0.5, 0.5]), T0)
    book.update(day_prices([2.0], start=T0 + HOUR), T0)
    assert book.price(T0) == 0.5 and book.dear(T0 + HOUR) and book.price(T0 + HOUR) == 2.0
    book.update(day_prices([0.7], start=T0 + 3 * 86400), T0 + 3 * 86400)
    assert book.series is not None and len(book.series) == 1


def test_a_json_answer_becomes_a_series() -> None:
    body = json.dumps(
        {"data": [
            {"time_start": "2026-03-02T09:00:00+01:00", "time_end": "2026-03-02T09:15:00+01:00",
             "SEK_per_kWh": 1.25},
            {"time_start": "2026-03-02T09:15:00+01:00", "SEK_per_kWh": "0.75"},
        ]}
    )  # fmt: skip
    series = parse_price_json(body, JsonFields(items="data"))
    assert series.price_at(T0 + 100) == 1.25 and series.price_at(T0 + 900) == 0.75
    assert series.ends == (T0 + 900, T0 + 1800)
    with pytest.raises(ValueError, match="item 0, SEK_per_kWh"):
        parse_price_json('[{"time_start": "2026-03-02T09:00:00+01:00"}]', JsonFields())


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    answers: dict[str, Any] = {}

    async def prices(request: web.Request) -> web.Response:
        day = request.match_info["day"]
        if day not in answers:
            return web.Response(status=404)
        return web.Response(body=answers[day], content_type="application/json")

    app = web.Application()
    app.router.add_get("/prices/{day}.json", prices)
    runner = web.AppRunner(app)
    await runner.setup()
    site_ = web.TCPSite(runner, "127.0.0.1", 0)
    await site_.start()
    port = site_._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/prices/{{date:%Y-%m-%d}}.json", answers
    finally:
        await runner.cleanup()


def hourly_json(day: str, prices: list[float]) -> str:
    start = datetime.fromisoformat(f"{day}T00:00:00+01:00")
    return json.dumps(
        [
            {"time_start": (start + timedelta(hours=k)).isoformat(), "SEK_per_kWh": p}
            for k, p in enumerate(prices)
        ]
    )


async def test_a_url_is_read_for_today_and_tomorrow_and_a_failure_keeps_what_is_known(
    server: tuple[str, dict[str, Any]],
) -> None:
    url, answers = server
    answers["2026-03-02"] = hourly_json("2026-03-02", [1.0] * 9 + [3.0] + [1.0] * 14)
    clock = FakeClock(T0, auto_advance=False)  # 09:00 CET
    settings = PriceSettings(url=url, dear_above=2.0)
    book = PriceBook(rule_from_settings(settings))
    log = Log()
    reader = PriceReader(
        PriceSource.of(settings, "Europe/Stockholm"), book, clock=clock, logger=log
    )
    async with aiohttp.ClientSession() as session:
        assert await reader.read_once(session)  # tomorrow's 404 is no failure
        assert book.dear(T0) and not book.dear(T0 + HOUR)
        answers["2026-03-03"] = hourly_json("2026-03-03", [4.0] * 24)
        assert await reader.read_once(session)
        assert book.dear(T0 + 86400)
        answers["2026-03-02"] = "not json"
        assert not await reader.read_once(session)
        assert not await reader.read_once(session)
        assert book.dear(T0)  # what was known is kept
        answers["2026-03-02"] = hourly_json("2026-03-02", [1.0] * 24)
        assert await reader.read_once(session)
        assert not book.dear(T0)
    assert log.events == ["prices could not be read; keeping what is known", "prices read again"]


async def test_the_reads_and_the_price_now_are_metrics(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("start,price\n2026-03-02T09:00:00+01:00,3.0\n2026-03-02T10:00:00+01:00,0\n")
    settings = PriceSettings(file=path, dear_above=2.0)
    clock, metrics = FakeClock(T0, auto_advance=False), Metrics()
    book = PriceBook(rule_from_settings(settings))
    reader = PriceReader(PriceSource.of(settings, "UTC"), book, clock=clock, metrics=metrics)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("charged_price_known_until_seconds") == 0.0
    assert math.isnan(sample("charged_price") or 0.0) and sample("charged_price_dear") == 0.0
    assert await reader.read_once()
    assert sample("charged_price_reads_total", result="ok") == 1
    assert sample("charged_price_known_until_seconds") == T0 + 2 * HOUR
    # the gauges of now follow the clock between two reads
    assert (sample("charged_price"), sample("charged_price_dear")) == (3.0, 1.0)
    await clock.advance(HOUR)
    assert (sample("charged_price"), sample("charged_price_dear")) == (0.0, 0.0)
    path.write_text("nonsense")
    assert not await reader.read_once()
    assert sample("charged_price_reads_total", result="failed") == 1
    assert sample("charged_price_known_until_seconds") == T0 + 2 * HOUR  # what is known stays


async def test_a_file_is_read_again_at_each_refresh(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("start,price\n2026-03-02T09:00:00+01:00,3.0\n")
    settings = PriceSettings(file=path, dear_above=2.0)
    book = PriceBook(rule_from_settings(settings))
    reader = PriceReader(PriceSource.of(settings, "UTC"), book, clock=FakeClock(T0))
    assert await reader.read_once()
    assert book.dear(T0 + 10)
    path.write_text("start,price\n2026-03-02T09:00:00+01:00,1.0\n")
    assert await reader.read_once()
    assert not book.dear(T0 + 10)


def test_charged_price_caps_the_dear_hour_and_strands_nobody() -> None:
    # 08:00 cheap, 09:00 dear, 10:00 cheap; two three-phase cars that could take 32 A
    prices = day_prices([0.5, 3.0, 0.5])
    day = scenario(
        visit(T0 + 10, 3 * HOUR, 60.0, phases=3, amps=32.0),
        visit(T0 + HOUR + 300, 2 * HOUR - 600, 40.0, phases=3, amps=32.0, charger="CP2"),
    )
    dear = DearHours(prices, PriceRule(above=1.0, cap_kw=0.0, connector_min=6.0))
    capped = run(day, site(100.0), make_policy("charged-price", site(100.0), prices=dear))
    plain = run(day, site(100.0), make_policy("charged", site(100.0)))
    f_capped = figures(capped, prices=prices)
    f_plain = figures(plain, prices=prices)
    assert f_capped.power is not None and f_plain.power is not None
    assert f_capped.power.price_per_kwh is not None and f_plain.power.price_per_kwh is not None
    assert f_capped.power.price_per_kwh < f_plain.power.price_per_kwh
    assert f_capped.energy_kwh < f_plain.energy_kwh
    # the car arriving in the dear hour is started at 6 A within two minutes
    late = next(s for s in capped.sessions if s.visit.charger == "CP2")
    assert late.first_6a_s is not None and late.first_6a_s <= 120
    # in the dear hour the two cars draw their minimum: 12 A per phase through the main
    assert f_capped.power.monthly_peaks_kw and capped.truth.ampere_seconds_above == 0
    hour_kw = dict(
        (t, kwh * 4) for t, kwh in zip(capped.slot_times, capped.slot_root_kwh, strict=True)
    )
    assert max(hour_kw[T0 + HOUR + k * 900] for k in range(1, 4)) <= 12 * 3 * 0.23 + 0.2
    with pytest.raises(ValueError, match="--prices"):
        make_policy("charged-price", site(100.0))
