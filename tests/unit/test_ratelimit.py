"""RateLimiter: at most N requests in flight, R per second on the injected clock, and a slot
given back whatever happens inside it or while waiting for the rate."""

from __future__ import annotations

import asyncio

import pytest

from charged.chargeamps.errors import DeadlineExceeded
from charged.chargeamps.ratelimit import RateLimiter
from charged.clock import FakeClock


async def test_never_more_in_flight_than_the_concurrency() -> None:
    limiter = RateLimiter(FakeClock(), max_concurrency=3, max_requests_per_second=None)
    in_flight = peak = 0

    async def request() -> None:
        nonlocal in_flight, peak
        async with limiter.slot():
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0)
            in_flight -= 1

    await asyncio.gather(*(request() for _ in range(20)))
    assert (peak, in_flight) == (3, 0)


async def test_rate_spaces_requests_on_the_clock() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, max_concurrency=10, max_requests_per_second=2.0)
    started = clock.monotonic()
    sent: list[float] = []
    for _ in range(6):
        async with limiter.slot():
            sent.append(clock.monotonic() - started)
    # a burst of 2, then one every half second
    assert sent == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.5, 2.0])


async def test_slot_is_given_back_after_an_error_and_a_missed_deadline() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, max_concurrency=1, max_requests_per_second=1.0)
    with pytest.raises(RuntimeError):
        async with limiter.slot():
            raise RuntimeError("the request failed")
    # the bucket is empty now: a deadline before the next token is refused at once
    with pytest.raises(DeadlineExceeded):
        async with limiter.slot(deadline=clock.monotonic() + 0.1):
            pass

    async def take_again() -> None:
        async with limiter.slot():
            pass

    # the one slot is free again (a leaked one would wait forever: fail instead)
    await asyncio.wait_for(take_again(), timeout=5)
