"""Site meters read from MQTT topics: one connection to the broker for every topic.

The broker may go away (a restart, the network): the connection is then made again after
``reconnect_min_s``, doubling up to ``reconnect_max_s`` while it keeps failing, without a
restart of charged; the meters meanwhile go stale and their fuses count their fallbacks.
The first failure of an outage is logged as a warning, the reconnection once.

A *retained* message (one the broker replays on subscribing) is not taken: nobody knows how
old it is, and a stale meter must not look fresh because the broker kept its last word.
A live message reaches a subscriber with the retain flag cleared (MQTT 3.1.1, 3.3.1.3).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog

from charged.clock import Clock, sleep_or_stop
from charged.meters.book import MeterBook
from charged.meters.payload import PayloadError, PayloadSpec, decode, phase_currents
from charged.metrics import Metrics
from charged.storage.writes import RowBatch
from charged.tasks import cancel_and_wait

Put = Callable[[RowBatch], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Broker:
    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    keepalive: int = 30
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0


@dataclass(frozen=True, slots=True)
class TopicMeter:
    fuse: str
    topic: str
    payload: PayloadSpec


class MqttMeters:
    def __init__(
        self,
        broker: Broker,
        meters: Sequence[TopicMeter],
        book: MeterBook,
        *,
        put: Put,
        clock: Clock,
        metrics: Metrics | None = None,
        logger: Any = None,
    ) -> None:
        self._broker = broker
        self._by_topic: dict[str, list[TopicMeter]] = {}
        for meter in meters:
            self._by_topic.setdefault(meter.topic, []).append(meter)
        self._book = book
        self._put = put
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._log = logger or structlog.get_logger("charged.meters")
        self.connects = 0  # connections made (subscribed) so far
        self._connected: list[tuple[int, asyncio.Future[None]]] = []

    async def run(self, stop: asyncio.Event) -> None:
        """Read the topics until ``stop`` is set, connecting again whenever the broker is lost."""
        reading = asyncio.ensure_future(self._connect_and_read(stop))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(reading)
            await cancel_and_wait(stopping)

    async def wait_connected(self, count: int) -> None:
        """Return once ``count`` connections have been made (tests, ``charged check``)."""
        if self.connects >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._connected.append((count, future))
        await future

    async def _connect_and_read(self, stop: asyncio.Event) -> None:
        b = self._broker
        backoff = b.reconnect_min_s
        outage = False
        while not stop.is_set():
            try:
                async with self._client() as client:
                    for topic in self._by_topic:
                        await client.subscribe(topic, qos=0)
                    self._on_connected(reconnected=outage)
                    outage = False
                    backoff = b.reconnect_min_s
                    async for message in client.messages:
                        await self._on_message(message)
            except aiomqtt.MqttError as exc:
                self._metrics.mqtt_connected.set(0)
                if not outage:
                    self._log.warning(
                        "MQTT broker lost; trying again",
                        host=b.host,
                        port=b.port,
                        error=str(exc),
                        retry_s=backoff,
                    )
                outage = True
            await sleep_or_stop(self._clock, backoff, stop)
            backoff = min(b.reconnect_max_s, backoff * 2)

    def _client(self) -> aiomqtt.Client:
        b = self._broker
        return aiomqtt.Client(
            b.host,
            b.port,
            username=b.username,
            password=b.password,
            identifier=b.client_id,
            keepalive=b.keepalive,
            # verification on: the system's CAs, the host name checked
            tls_context=ssl.create_default_context() if b.tls else None,
            timeout=10.0,
        )

    def _on_connected(self, *, reconnected: bool) -> None:
        self.connects += 1
        self._metrics.mqtt_connects.inc()
        self._metrics.mqtt_connected.set(1)
        if reconnected:
            self._log.info("MQTT broker reconnected", host=self._broker.host)
        waiting, self._connected = self._connected, []
        for count, future in waiting:
            if future.done():
                continue
            if self.connects >= count:
                future.set_result(None)
            else:
                self._connected.append((count, future))

    async def _on_message(self, message: aiomqtt.Message) -> None:
        meters = self._by_topic.get(message.topic.value, [])
        if message.retain or not meters:
            return
        now = self._clock.time()
        for meter in meters:
            try:
                amps = phase_currents(decode(message.payload), meter.payload)
            except PayloadError as exc:
                self._book.failed(meter.fuse, "bad_payload", str(exc))
                continue
            rows = self._book.record(meter.fuse, now, amps)
            if rows:
                await self._put({"meter_reading": rows})
