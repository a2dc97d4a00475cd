"""Retrying transient failures: capped exponential backoff with full jitter, on a Clock.

Only :class:`ApiUnavailable` (5xx, 429, timeouts, connection errors) is retried; every other
error goes straight to the caller.  A 429's ``Retry-After`` is honoured (the wait is the larger
of it and the backoff).  With a deadline, no wait ever crosses it: when the next wait would,
the caller gets the last failure at once instead of a late answer.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from charged.chargeamps.errors import ApiUnavailable
from charged.clock import Clock

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    max_attempts: int = 4
    base: float = 0.5
    cap: float = 8.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(f"backoff needs 0 < base <= max, got base={self.base} max={self.cap}")

    def delay(self, failed_attempts: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base·2^(n-1))] after the n-th failure."""
        ceiling = min(self.cap, self.base * 2.0 ** min(failed_attempts - 1, 30))
        return rng.uniform(0.0, ceiling)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, ApiUnavailable) and exc.retryable


class _Schedule:
    """Stop and wait strategies of one call, sharing the wait they agreed on.

    tenacity asks ``stop`` and ``wait`` separately (the order differs between versions);
    both go through :meth:`_next_wait`, computed once per attempt, so the deadline check
    judges the very wait that will be slept.
    """

    def __init__(
        self, policy: BackoffPolicy, clock: Clock, deadline: float | None, rng: random.Random
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._deadline = deadline
        self._rng = rng
        self._waits: dict[int, float] = {}
        self.stopped_by_deadline = False

    def _next_wait(self, state: RetryCallState) -> float:
        n = state.attempt_number
        if n not in self._waits:
            wait = self._policy.delay(n, self._rng)
            exc = state.outcome.exception() if state.outcome is not None else None
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                wait = max(wait, float(retry_after))
            self._waits[n] = wait
        return self._waits[n]

    def stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self._policy.max_attempts:
            return True
        deadline = self._deadline
        if deadline is not None and self._clock.monotonic() + self._next_wait(state) >= deadline:
            self.stopped_by_deadline = True
            return True
        return False

    def wait(self, state: RetryCallState) -> float:
        return self._next_wait(state)


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    policy: BackoffPolicy,
    clock: Clock,
    rng: random.Random,
    deadline: float | None = None,
    on_retry: Callable[[], None] | None = None,
    first_failure: Exception | None = None,
) -> T:
    """Run ``attempt`` until it succeeds, fails for good, or time/attempts run out.

    ``first_failure``: the caller made the first attempt itself, and it failed so; it counts
    as attempt 1 (what is retried, the backoff and the attempt count stay the policy's).
    Giving up raises ApiUnavailable naming ``what``, the attempts made and the last reason.
    """
    schedule = _Schedule(policy, clock, deadline, rng)

    def before_sleep(_: RetryCallState) -> None:
        if on_retry is not None:
            on_retry()

    retrying = AsyncRetrying(
        sleep=clock.sleep,
        stop=schedule.stop,
        wait=schedule.wait,
        retry=retry_if_exception(_is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    attempts = 0
    try:
        async for try_ in retrying:
            with try_:
                attempts += 1
                if attempts == 1 and first_failure is not None:
                    raise first_failure
                return await attempt()
    except ApiUnavailable as exc:
        if not exc.retryable:  # deadline, or a failure that has had its own retries
            raise
        why = "deadline reached" if schedule.stopped_by_deadline else "gave up"
        raise ApiUnavailable(
            f"{what}: {why} after {attempts} attempt(s): {exc}",
            endpoint=exc.endpoint,
            status=exc.status,
            retry_after=exc.retry_after,
        ) from exc
    raise AssertionError("unreachable: tenacity neither returned nor raised")
