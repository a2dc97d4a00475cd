"""Site meters against a real MQTT broker (mosquitto) and a local HTTP meter: the building's
load lowers the fuses within one tick, a stale meter falls back, a broker that goes away is
reconnected, and the readings are stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from aiohttp import web
from sqlalchemy import select

from charged.balancer.configured import site_from_settings
from charged.balancer.runtime import BalancerRuntime, StepReport, TickInput
from charged.chargeamps.models import (
    ChargePoint,
    ChargePointStatus,
    ConnectorSettings,
    ConnectorStatus,
    Measurement,
)
from charged.clock import Clock, FakeClock, SystemClock
from charged.config import Settings, settings_from_mapping
from charged.meters.configured import SiteMeters, site_meters
from charged.metrics import Metrics
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.schema import meter_reading
from charged.storage.writes import RowBatch, write_rows
from charged.tasks import cancel_and_wait
from tests.integration.mqtt_broker import Mosquitto

KEY = ("CP1", 1)
WAIT = 20.0  # seconds any one awaited event may take before the test fails (never slept)


def config(meter: Mapping[str, Any], port: int = 1883, **mqtt: Any) -> Settings:
    return settings_from_mapping(
        {
            "site": {
                "fuse": {"name": "main", "limit": 40, "chargers": ["CP1"]},
                "meters": {"main": dict(meter)},
            },
            "mqtt": {"host": "127.0.0.1", "port": port, **mqtt},
        },
        require_secrets=False,
    )


class Vendor:
    """A charger with one car drawing 16 A on three phases; the balancer only shadows."""

    async def chargers(self) -> list[ChargePoint]:
        return []

    async def connector_settings(self, cp_id: str, connector_id: int) -> ConnectorSettings:
        return ConnectorSettings(cp_id, connector_id, 16.0, False, "On", False, 32.0)

    async def set_connector(self, *args: Any, **kw: Any) -> Any:
        raise AssertionError("shadow mode sends nothing")


def tick(at: float) -> TickInput:
    """Connector 1 charging; connector 2 free (it holds no arrival limit: no spare room)."""
    measured = tuple(Measurement(p, 16.0, 230.0) for p in ("L1", "L2", "L3"))
    connector = ConnectorStatus(
        "CP1", 1, 1.0, 11.0, None, "Charging", measured, datetime(2026, 1, 1, tzinfo=UTC), None, 7
    )
    idle = ConnectorStatus("CP1", 2, 0.0, 0.0, None, "Available", (), None, None, None)
    return TickInput(at, {"CP1": ChargePointStatus("CP1", "Online", (connector, idle))}, 1)


class Garage:
    """The balancer runtime and the site meters of one config, as the daemon wires them."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.batches: list[RowBatch] = []
        self.metrics = Metrics()
        self.clock = clock
        reaction_s = settings.collector.interval + settings.balancer.settle_s
        meters = site_meters(
            settings.site,
            settings.mqtt,
            put=self.put,
            clock=clock,
            reaction_s=reaction_s,
            metrics=self.metrics,
        )
        assert meters is not None
        self.meters: SiteMeters = meters
        self.runtime = BalancerRuntime(
            site_from_settings(settings.site),
            mode="shadow",
            controller=Vendor(),  # type: ignore[arg-type]
            audit_rows=None,
            put=self.put,
            clock=clock,
            metrics=self.metrics,
            building=meters.book,
        )

    async def put(self, batch: RowBatch) -> None:
        self.batches.append(batch)

    async def step(self) -> StepReport:
        return await self.runtime.step(tick(self.clock.time()))

    def rows(self, table: str) -> list[Mapping[str, Any]]:
        return [row for batch in self.batches for row in batch.get(table, ())]

    async def received(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            await self.meters.book.wait_received("main", count)


def capacity(report: StepReport) -> tuple[float, float, float]:
    return report.site.capacity(report.site.root)


def target(report: StepReport) -> float:
    return report.allocation.decisions[KEY].target


async def publish(port: int, topic: str, payload: Any, *, retain: bool = False) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(topic, json.dumps(payload), qos=1, retain=retain)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


@pytest.fixture
async def running() -> AsyncIterator[list[asyncio.Task[None]]]:
    """Tasks the test starts; stopped (their stop events set) and awaited at its end."""
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        await cancel_and_wait(task)


MQTT_METER = {
    "fields": ["grid.i.0", "grid.i.1", "grid.i.2"],
    "max_age_s": 60,
    "fallback_a": 25,
    "headroom_a": 2,
    "headroom_learn_h": 0,  # the fixed 2 A: the rises learned are tests/unit/test_meter_book.py's
}


async def test_an_mqtt_meter_lowers_the_fuse_within_one_tick_and_falls_back_when_stale(
    mosquitto: Mosquitto, running: list[asyncio.Task[None]]
) -> None:
    clock = FakeClock(auto_advance=False)
    garage = Garage(config({**MQTT_METER, "mqtt_topic": "t1/meter"}, mosquitto.port), clock)
    mqtt = garage.meters.mqtt
    assert mqtt is not None
    stop = asyncio.Event()
    running.append(asyncio.create_task(mqtt.run(stop)))
    async with asyncio.timeout(WAIT):
        await mqtt.wait_connected(1)

    await publish(mosquitto.port, "t1/meter", {"grid": {"i": [10, 4, 0]}})
    await garage.received(1)
    first = await garage.step()
    assert capacity(first) == (28.0, 34.0, 38.0)  # 40 A less the reading and 2 A headroom
    assert target(first) == 28.0  # the car's share: what L1 leaves it

    await clock.advance(30)
    await publish(mosquitto.port, "t1/meter", {"grid": {"i": [30, 4, 0]}})
    await garage.received(2)
    second = await garage.step()  # the very next tick: 8 A left on L1
    assert capacity(second) == (8.0, 34.0, 38.0) and target(second) == 8.0
    assert (KEY, 8.0) in [(w.key, w.limit) for w in second.plan.writes]  # down from 16 A
    fuse_rows = [r for r in garage.rows("balancer_fuse") if r["phase"] == "L1"]
    assert [r["capacity_a"] for r in fuse_rows] == [28.0, 8.0]
    assert [r["l1_a"] for r in garage.rows("meter_reading")] == [10.0, 30.0]

    await clock.advance(61)  # no reading for longer than max_age_s: the fallback, 25 A
    stale = await garage.step()
    assert capacity(stale) == (15.0, 15.0, 15.0) and target(stale) == 15.0
    assert value(garage.metrics, "charged_meter_stale_transitions_total", fuse="main") == 1
    await clock.advance(30)
    await garage.step()
    assert value(garage.metrics, "charged_meter_stale_transitions_total", fuse="main") == 1
    stop.set()


async def test_a_retained_message_of_unknown_age_is_not_a_fresh_reading(
    mosquitto: Mosquitto, running: list[asyncio.Task[None]]
) -> None:
    await publish(mosquitto.port, "t2/meter", {"grid": {"i": [39, 39, 39]}}, retain=True)
    clock = FakeClock(auto_advance=False)
    garage = Garage(config({**MQTT_METER, "mqtt_topic": "t2/meter"}, mosquitto.port), clock)
    assert garage.meters.mqtt is not None
    running.append(asyncio.create_task(garage.meters.mqtt.run(asyncio.Event())))
    async with asyncio.timeout(WAIT):
        await garage.meters.mqtt.wait_connected(1)
    await publish(mosquitto.port, "t2/meter", {"grid": {"i": [1, 2, 3]}})
    await garage.received(1)
    reading = garage.meters.book.latest("main")
    assert reading is not None and reading.amps == (1.0, 2.0, 3.0)  # the live one, not 39 A
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.publish("t2/meter", b"", qos=1, retain=True)  # the broker forgets it


async def test_a_broker_that_goes_away_and_comes_back_is_reconnected(
    tmp_path: Path, running: list[asyncio.Task[None]]
) -> None:
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        settings = config(
            {**MQTT_METER, "mqtt_topic": "t3/meter"},
            broker.port,
            reconnect_min_s=0.05,
            reconnect_max_s=0.2,
        )
        garage = Garage(settings, SystemClock())  # the backoff waits on the real clock
        mqtt = garage.meters.mqtt
        assert mqtt is not None
        running.append(asyncio.create_task(mqtt.run(asyncio.Event())))
        async with asyncio.timeout(WAIT):
            await mqtt.wait_connected(1)
        await publish(broker.port, "t3/meter", {"grid": {"i": [5, 5, 5]}})
        await garage.received(1)

        broker.stop()  # the broker goes away …
        broker.start()  # … and comes back on the same port
        async with asyncio.timeout(WAIT):
            await mqtt.wait_connected(2)
        await publish(broker.port, "t3/meter", {"grid": {"i": [7, 7, 7]}})
        await garage.received(2)
        reading = garage.meters.book.latest("main")
        assert reading is not None and reading.amps == (7.0, 7.0, 7.0)
        assert value(garage.metrics, "charged_mqtt_connects_total") == 2
        assert value(garage.metrics, "charged_mqtt_connected") == 1
    finally:
        broker.stop()


async def test_an_http_meter_in_watts_lowers_the_fuse_and_falls_back_when_it_fails(
    running: list[asyncio.Task[None]],
) -> None:
    answer: dict[str, Any] = {"status": 200, "body": {"p": [2300, 0, 460]}}

    async def meter(_: web.Request) -> web.Response:
        return web.json_response(answer["body"], status=answer["status"])

    app = web.Application()
    app.router.add_get("/state", meter)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        clock = FakeClock(auto_advance=False)
        settings = config(
            {
                "http_url": f"http://127.0.0.1:{port}/state",
                "http_interval_s": 10,
                "fields": ["p.0", "p.1", "p.2"],
                "unit": "W",
                "voltage": 230,
                "max_age_s": 30,
                "fallback_a": [20, 20, 20],
                "headroom_a": 1,
                "headroom_learn_h": 0,
            }
        )
        garage = Garage(settings, clock)
        (http,) = garage.meters.http
        running.append(asyncio.create_task(http.run(asyncio.Event())))
        await garage.received(1)  # the first read comes at once
        first = await garage.step()
        assert capacity(first) == (29.0, 39.0, 37.0)  # 10 A, 0 A, 2 A and 1 A headroom

        answer["body"] = {"p": [6900, 0, 460]}
        await clock.advance(10)  # the next poll
        await garage.received(2)
        second = await garage.step()
        assert capacity(second) == (9.0, 39.0, 37.0) and target(second) == 9.0

        answer["status"] = 503
        async with aiohttp.ClientSession() as session:
            assert not await http.poll_once(session)
        assert (
            value(garage.metrics, "charged_meter_readings_total", fuse="main", result="bad_payload")
            == 1
        )
        await clock.advance(31)  # nothing fresh for longer than max_age_s
        stale = await garage.step()
        assert capacity(stale) == (20.0, 20.0, 20.0)
        assert value(garage.metrics, "charged_meter_stale", fuse="main") == 1
    finally:
        await runner.cleanup()


async def test_meter_readings_are_stored_in_their_own_table(db_url: str) -> None:
    await upgrade(db_url)
    clock = FakeClock()
    garage = Garage(config({**MQTT_METER, "mqtt_topic": "t5/meter"}), clock)
    book = garage.meters.book
    rows = [
        *book.record("main", clock.time(), (10.0, 4.25, 0.0)),
        *book.record("main", clock.time() + 0.5, (11.0, 4.0, 0.0)),  # the same second
        *book.record("main", clock.time() + 1, (12.0, 4.0, 0.0)),
    ]
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await write_rows(conn, "meter_reading", rows)
            # a replayed spool writes nothing twice
            assert await write_rows(conn, "meter_reading", rows) == len(rows)
        async with engine.connect() as conn:
            stored = (
                await conn.execute(select(meter_reading).order_by(meter_reading.c.read_at))
            ).all()
    finally:
        await engine.dispose()
    assert [(r.fuse, r.source, r.l1_a, r.l2_a, r.l3_a) for r in stored] == [
        ("main", "mqtt", 10.0, 4.25, 0.0),
        ("main", "mqtt", 12.0, 4.0, 0.0),
    ]
    assert stored[0].read_at == datetime.fromtimestamp(clock.time(), UTC).replace(tzinfo=None)
