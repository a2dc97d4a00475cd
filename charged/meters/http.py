"""A site meter read by polling an HTTP JSON URL (TLS verified, as aiohttp does by default).

Each poll is one GET with a timeout within the interval; a body larger than
:data:`MAX_BODY_BYTES` is refused unread.  An answer that is not 200, not JSON or lacks a
field gives no reading (counted, logged once until the meter reads again), and the meter goes
stale in its own time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from charged.clock import Clock, sleep_or_stop
from charged.meters.book import MeterBook
from charged.meters.payload import PayloadError, PayloadSpec, decode, phase_currents
from charged.storage.writes import RowBatch

Put = Callable[[RowBatch], Awaitable[None]]
MAX_BODY_BYTES = 256 * 1024  # a meter's JSON is small; more is not a meter answering


@dataclass(frozen=True, slots=True)
class UrlMeter:
    fuse: str
    url: str
    interval_s: float
    payload: PayloadSpec


class HttpMeter:
    def __init__(self, meter: UrlMeter, book: MeterBook, *, put: Put, clock: Clock) -> None:
        self.meter = meter
        self._book = book
        self._put = put
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval_s`` until ``stop`` is set."""
        timeout = aiohttp.ClientTimeout(total=min(10.0, self.meter.interval_s))
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                await self.poll_once(session)
                await sleep_or_stop(self._clock, self.meter.interval_s, stop)

    async def poll_once(self, session: aiohttp.ClientSession) -> bool:
        """One GET; → whether it gave a reading."""
        fuse = self.meter.fuse
        try:
            document = await self._get(session)
            amps = phase_currents(document, self.meter.payload)
        except PayloadError as exc:
            self._book.failed(fuse, "bad_payload", str(exc))
            return False
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._book.failed(fuse, "unreachable", f"{type(exc).__name__}: {exc}"[:200])
            return False
        rows = self._book.record(fuse, self._clock.time(), amps)
        if rows:
            await self._put({"meter_reading": rows})
        return True

    async def _get(self, session: aiohttp.ClientSession) -> Any:
        async with session.get(self.meter.url, headers={"Accept": "application/json"}) as resp:
            if resp.status != 200:
                raise PayloadError(f"the URL answered HTTP {resp.status}")
            body = await resp.content.read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                raise PayloadError(f"the answer is larger than {MAX_BODY_BYTES} bytes")
            return decode(body)
