"""The site meters as the config describes them (``site.meters``, ``mqtt``), and installed in
the daemon: one MQTT connection for every topic, one poll loop per HTTP meter, one book."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from charged.clock import Clock
from charged.config_service import MqttSettings
from charged.config_site import FuseSettings, MeterSettings, SiteSettings
from charged.meters.book import MeterBook, MeterSpec
from charged.meters.http import HttpMeter, UrlMeter
from charged.meters.mqtt import Broker, MqttMeters, TopicMeter
from charged.meters.payload import PayloadSpec
from charged.meters.recall import run_recall
from charged.metrics import Metrics
from charged.storage.writes import RowBatch


class MeterDaemon(Protocol):
    """What the meters need of the daemon (charged.daemon.Daemon)."""

    clock: Clock
    metrics: Metrics
    queue: asyncio.Queue[Any]
    engine: AsyncEngine | None  # set once the daemon has started

    def add_task(
        self, name: str, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
    ) -> None: ...


@dataclass
class SiteMeters:
    book: MeterBook
    mqtt: MqttMeters | None = None
    http: list[HttpMeter] = field(default_factory=list)


def meter_specs(site: SiteSettings, *, reaction_s: float) -> list[MeterSpec]:
    """``reaction_s``: how long a rise of the building goes unanswered (the collector's interval
    plus the balancer's settle_s)."""
    limits = {f.name: _highest_limits(f) for f in _fuses(site.fuse)}
    return [
        MeterSpec(
            fuse=name,
            source="mqtt" if m.mqtt_topic is not None else "http",
            max_age_s=m.max_age_s,
            # no fallback configured: the building may take the whole fuse (its highest
            # limit, scheduled ones included)
            fallback=m.fallback() or limits[name],
            headroom=m.headroom_a,
            learn_window_s=m.headroom_learn_h * 3600.0,
            reaction_s=reaction_s,
        )
        for name, m in site.meters.items()
    ]


def site_meters(
    site: SiteSettings,
    mqtt: MqttSettings,
    *,
    put: Callable[[RowBatch], Awaitable[None]],
    clock: Clock,
    reaction_s: float,
    metrics: Metrics | None = None,
    logger: Any = None,
    recalling: bool = False,
) -> SiteMeters | None:
    """The book and the sources of ``site.meters``; None when there is none (``recalling``:
    the stored readings are read back at start, :mod:`charged.meters.recall`)."""
    if not site.meters:
        return None
    specs = meter_specs(site, reaction_s=reaction_s)
    book = MeterBook(specs, metrics=metrics, logger=logger, recalling=recalling)
    out = SiteMeters(book)
    topics = [
        TopicMeter(name, m.mqtt_topic, _payload(m))
        for name, m in site.meters.items()
        if m.mqtt_topic is not None
    ]
    if topics:
        assert mqtt.host is not None  # the config refuses topics without a broker
        out.mqtt = MqttMeters(
            broker_of(mqtt), topics, book, put=put, clock=clock, metrics=metrics, logger=logger
        )
    for name, m in site.meters.items():
        if m.http_url is not None:
            url = UrlMeter(name, m.http_url, m.http_interval_s, _payload(m))
            out.http.append(HttpMeter(url, book, put=put, clock=clock))
    return out


def broker_of(mqtt: MqttSettings) -> Broker:
    assert mqtt.host is not None
    return Broker(
        host=mqtt.host,
        port=mqtt.port,
        tls=mqtt.tls,
        username=mqtt.username,
        password=mqtt.password,
        client_id=mqtt.client_id,
        keepalive=mqtt.keepalive,
        reconnect_min_s=mqtt.reconnect_min_s,
        reconnect_max_s=mqtt.reconnect_max_s,
    )


def install_meters(
    daemon: MeterDaemon, site: SiteSettings, mqtt: MqttSettings, *, reaction_s: float
) -> MeterBook | None:
    """Add the meters' loops to ``daemon``; → the book the balancer reads (None: no meters)."""
    meters = site_meters(
        site,
        mqtt,
        put=daemon.queue.put,
        clock=daemon.clock,
        reaction_s=reaction_s,
        metrics=daemon.metrics,
        recalling=True,
    )
    if meters is None:
        return None
    book = meters.book

    async def recall(stop: asyncio.Event) -> None:
        # the tasks start once the daemon has its database
        await run_recall(daemon.engine, book, daemon.clock, stop)

    daemon.add_task("charged-meters-recall", recall)
    if meters.mqtt is not None:
        daemon.add_task("charged-meters-mqtt", meters.mqtt.run)
    for http in meters.http:
        daemon.add_task(f"charged-meter-{http.meter.fuse}", http.run)
    return meters.book


def _payload(meter: MeterSettings) -> PayloadSpec:
    return PayloadSpec.of(meter.fields, meter.unit, meter.voltage)


def _highest_limits(fuse: FuseSettings) -> tuple[float, float, float]:
    limits = [fuse.limits(), *(entry.limits() for entry in fuse.schedule)]
    a, b, c = (max(limit[p] for limit in limits) for p in range(3))
    return (a, b, c)


def _fuses(fuse: FuseSettings | None) -> list[FuseSettings]:
    if fuse is None:
        return []
    out = [fuse]
    for child in fuse.children:
        out.extend(_fuses(child))
    return out
