"""Process-wide politeness towards the vendor: at most N requests in flight and R per second.

The rate is a token bucket on the injected :class:`Clock` (not the event loop's time), so
tests drive it with a fake clock.  Waiters are served in arrival order.
"""

from __future__ import annotations

import asyncio

from charged.chargeamps.errors import DeadlineExceeded
from charged.clock import Clock


class TokenBucket:
    """``rate`` requests per second on average, bursts of at most ``burst``."""

    def __init__(self, clock: Clock, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError(
                f"requests per second must be positive, got {rate}; use None for no limit"
            )
        self._clock = clock
        self._rate = rate
        self._burst = max(1.0, burst if burst is not None else rate)
        self._tokens = self._burst
        self._stamp = clock.monotonic()
        # One waiter at a time: the one at the head sleeps, the rest queue behind it (FIFO).
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    async def acquire(self, deadline: float | None = None) -> None:
        """Take one token, waiting for it; past ``deadline`` raise DeadlineExceeded instead."""
        async with self._lock:
            self._refill()
            if self._tokens < 1.0:
                wait = (1.0 - self._tokens) / self._rate
                if deadline is not None and self._clock.monotonic() + wait > deadline:
                    raise DeadlineExceeded(
                        "request rate limit: no slot before the deadline; "
                        "raise api.max_requests_per_second or poll less often"
                    )
                await self._clock.sleep(wait)
                self._refill()
            self._tokens -= 1.0


class RateLimiter:
    """Concurrency cap plus optional requests-per-second cap, used as ``async with``."""

    def __init__(
        self, clock: Clock, *, max_concurrency: int, max_requests_per_second: float | None
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._bucket = (
            TokenBucket(clock, max_requests_per_second)
            if max_requests_per_second is not None
            else None
        )

    async def acquire(self, deadline: float | None = None) -> None:
        """Take one request's turn (release it with :meth:`release`, in a ``finally``).

        The client's request path calls this pair directly: one coroutine less per request
        than ``async with slot()``."""
        await self._semaphore.acquire()
        # Take the rate token after the concurrency slot so the rate measures real sends.
        if self._bucket is not None:
            try:
                await self._bucket.acquire(deadline)
            except BaseException:
                self._semaphore.release()
                raise

    def release(self) -> None:
        self._semaphore.release()

    def slot(self, deadline: float | None = None) -> _Slot:
        """``async with limiter.slot(deadline):`` one request's turn.

        A small class rather than ``@asynccontextmanager``: every request passes here, and
        profiling a 10,000-charger tick showed the generator machinery in the top ten.
        """
        return _Slot(self, deadline)


class _Slot:
    __slots__ = ("_deadline", "_limiter")

    def __init__(self, limiter: RateLimiter, deadline: float | None) -> None:
        self._limiter = limiter
        self._deadline = deadline

    async def __aenter__(self) -> None:
        await self._limiter.acquire(self._deadline)

    async def __aexit__(self, *exc_info: object) -> None:
        self._limiter.release()
