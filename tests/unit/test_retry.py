"""call_with_retries on a fake clock: a first attempt the caller already made counts as one."""

from __future__ import annotations

import random

import pytest

from charged.chargeamps.errors import ApiUnavailable, PayloadError
from charged.chargeamps.retry import BackoffPolicy, call_with_retries
from charged.clock import FakeClock

POLICY = BackoffPolicy(max_attempts=4, base=0.5, cap=8.0)


async def test_a_first_failure_counts_as_attempt_one_and_the_rest_follow_the_policy() -> None:
    calls = 0
    retries = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        raise ApiUnavailable("HTTP 503", endpoint="/status", status=503)

    def count() -> None:
        nonlocal retries
        retries += 1

    with pytest.raises(ApiUnavailable, match=r"GET /status: gave up after 4 attempt\(s\)"):
        await call_with_retries(
            attempt,
            what="GET /status",
            policy=POLICY,
            clock=FakeClock(),
            rng=random.Random(1),
            on_retry=count,
            first_failure=ApiUnavailable("HTTP 502", endpoint="/status", status=502),
        )
    assert calls == 3  # the first of the four was the caller's
    assert retries == 3


async def test_after_a_first_failure_a_success_is_returned() -> None:
    async def attempt() -> str:
        return "ok"

    result = await call_with_retries(
        attempt,
        what="GET /status",
        policy=POLICY,
        clock=FakeClock(),
        rng=random.Random(1),
        first_failure=ApiUnavailable("HTTP 503", endpoint="/status", status=503),
    )
    assert result == "ok"


async def test_a_first_failure_that_is_not_transient_is_raised_as_it_is() -> None:
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        return "never"

    bad = PayloadError("status is not JSON", charge_point_id="CP1", endpoint="status")
    with pytest.raises(PayloadError) as raised:
        await call_with_retries(
            attempt,
            what="GET /status",
            policy=POLICY,
            clock=FakeClock(),
            rng=random.Random(1),
            first_failure=bad,
        )
    assert raised.value is bad and calls == 0
