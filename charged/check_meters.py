"""`charged check`'s meter lines: each site meter reached once, one line each.

MQTT: one connection to the ``mqtt:`` broker for every topic, then a wait (the check's time
limit) for a message on each topic, whose payload must give the three phases by the meter's
``fields``.  A retained message proves the topic and the fields but not that the meter is
alive (the daemon does not take it): a warning unless a live one comes too.  HTTP: one GET of
``http_url`` (TLS verified), whose answer must give the three phases.  A meter that cannot be
reached fails with 69 (unavailable); an answer the ``fields`` do not fit fails with 78 (the
config); nothing is stored.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import aiomqtt

from charged.check_result import CheckResult, Status
from charged.check_time import CheckTimeout, within
from charged.clock import Clock
from charged.config import Settings
from charged.config_site import MeterSettings
from charged.exits import EXIT_CONFIG, EXIT_UNAVAILABLE
from charged.meters.configured import broker_of
from charged.meters.http import MAX_BODY_BYTES
from charged.meters.payload import PayloadError, PayloadSpec, decode, phase_currents

CHECK = "meter"


async def check_meters(
    settings: Settings,
    *,
    clock: Clock,
    time_limit: float,
    subscribed: asyncio.Event | None = None,
    received: asyncio.Event | None = None,
) -> list[CheckResult]:
    """One line per meter of ``site.meters``, in the config's order (for tests: ``subscribed``
    is set once the broker has taken the subscriptions, ``received`` at every message)."""
    meters = settings.site.meters
    topics = {name: m for name, m in meters.items() if m.mqtt_topic is not None}
    urls = {name: m for name, m in meters.items() if m.http_url is not None}
    listening = asyncio.ensure_future(
        _mqtt(settings, topics, clock, time_limit, subscribed, received)
    )
    try:
        http = await asyncio.gather(
            *(_http(name, m, clock, time_limit) for name, m in urls.items())
        )
    finally:
        mqtt = await listening
    found = {**mqtt, **dict(zip(urls, http, strict=True))}
    return [found[name] for name in meters]


def _spec(meter: MeterSettings) -> PayloadSpec:
    return PayloadSpec.of(meter.fields, meter.unit, meter.voltage)


def _amps(amps: tuple[float, float, float]) -> str:
    return ", ".join(f"L{p + 1} {a:.1f} A" for p, a in enumerate(amps))


def _bad_fields(name: str, where: str, exc: PayloadError) -> CheckResult:
    return CheckResult(
        CHECK,
        Status.FAIL,
        f"{name} ({where}): {exc}; check site.meters.{name}.fields (and unit) against what "
        "the meter sends",
        EXIT_CONFIG,
    )


# ---------------------------------------------------------------- MQTT


@dataclass
class _Heard:
    live: tuple[float, float, float] | PayloadError | None = None
    retained: tuple[float, float, float] | PayloadError | None = None


async def _mqtt(
    settings: Settings,
    meters: Mapping[str, MeterSettings],
    clock: Clock,
    time_limit: float,
    subscribed: asyncio.Event | None,
    received: asyncio.Event | None,
) -> dict[str, CheckResult]:
    if not meters:
        return {}
    broker = broker_of(settings.mqtt)
    at = f"{broker.host}:{broker.port}"
    heard = {name: _Heard() for name in meters}
    by_topic: dict[str, list[str]] = {}
    for name, m in meters.items():
        assert m.mqtt_topic is not None
        by_topic.setdefault(m.mqtt_topic, []).append(name)
    connected = False

    def take(name: str, payload: object, retained: bool) -> None:
        text = payload if isinstance(payload, bytes | bytearray | str) else str(payload)
        try:
            value: tuple[float, float, float] | PayloadError = phase_currents(
                decode(text), _spec(meters[name])
            )
        except PayloadError as exc:
            value = exc
        slot = heard[name]
        if retained:
            slot.retained = slot.retained or value
        elif slot.live is None:
            slot.live = value

    async def listen() -> None:
        nonlocal connected
        async with aiomqtt.Client(
            broker.host,
            broker.port,
            username=broker.username,
            password=broker.password,
            identifier=broker.client_id,
            keepalive=broker.keepalive,
            tls_context=ssl.create_default_context() if broker.tls else None,
            timeout=time_limit,
        ) as client:
            for topic in by_topic:
                await client.subscribe(topic, qos=0)
            connected = True
            if subscribed is not None:
                subscribed.set()
            async for message in client.messages:
                for name in by_topic.get(message.topic.value, []):
                    take(name, message.payload, bool(message.retain))
                if received is not None:
                    received.set()
                if all(h.live is not None for h in heard.values()):
                    return

    failure: str | None = None
    try:
        await within(clock, time_limit, listen())
    except CheckTimeout:
        if not connected:
            failure = f"the MQTT broker {at} gave no answer within {time_limit:g} s"
    except aiomqtt.MqttError as exc:
        failure = f"the MQTT broker {at} cannot be reached: {exc}"
    out: dict[str, CheckResult] = {}
    for name, m in meters.items():
        where = f"mqtt {m.mqtt_topic} on {at}"
        if failure is not None:
            out[name] = CheckResult(
                CHECK,
                Status.FAIL,
                f"{name} ({where}): {failure}; check mqtt.host, mqtt.port and that the broker runs",
                EXIT_UNAVAILABLE,
            )
            continue
        slot = heard[name]
        value = slot.live if slot.live is not None else slot.retained
        if isinstance(value, PayloadError):
            out[name] = _bad_fields(name, where, value)
        elif slot.live is not None:
            out[name] = CheckResult(CHECK, Status.OK, f"{name} ({where}): {_amps(value)}")  # type: ignore[arg-type]
        elif value is not None:
            out[name] = CheckResult(
                CHECK,
                Status.WARN,
                f"{name} ({where}): only a retained message within {time_limit:g} s "
                f"({_amps(value)}); the daemon takes live messages only: check that the "
                "meter still publishes",
            )
        else:
            out[name] = CheckResult(
                CHECK,
                Status.FAIL,
                f"{name} ({where}): no message within {time_limit:g} s; check that the meter "
                f"publishes on that topic (site.meters.{name}.mqtt_topic)",
                EXIT_UNAVAILABLE,
            )
    return out


# ---------------------------------------------------------------- HTTP


async def _http(name: str, meter: MeterSettings, clock: Clock, time_limit: float) -> CheckResult:
    assert meter.http_url is not None
    where = f"http {meter.http_url}"

    async def get() -> tuple[float, float, float]:
        timeout = aiohttp.ClientTimeout(total=time_limit)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(meter.http_url, headers={"Accept": "application/json"}) as resp,  # type: ignore[arg-type]
        ):
            if resp.status != 200:
                raise _Unavailable(f"the URL answered HTTP {resp.status}")
            body = await resp.content.read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                raise PayloadError(f"the answer is larger than {MAX_BODY_BYTES} bytes")
            return phase_currents(decode(body), _spec(meter))

    try:
        amps = await within(clock, time_limit, get())
    except PayloadError as exc:
        return _bad_fields(name, where, exc)
    except (CheckTimeout, TimeoutError):
        why = f"no answer within {time_limit:g} s"
    except _Unavailable as exc:
        why = str(exc)
    except aiohttp.ClientError as exc:
        why = f"cannot be reached: {type(exc).__name__}: {exc}"[:200]
    else:
        return CheckResult(CHECK, Status.OK, f"{name} ({where}): {_amps(amps)}")
    return CheckResult(
        CHECK,
        Status.FAIL,
        f"{name} ({where}): {why}; check site.meters.{name}.http_url and that the meter answers",
        EXIT_UNAVAILABLE,
    )


class _Unavailable(Exception):
    """The meter answered, but not with a reading (an HTTP error status)."""
