"""FleetClock: wall time at the fleet's speed, durations and sleeps in the base clock's seconds."""

from __future__ import annotations

import pytest

from charged.clock import FakeClock
from charged.simulator.fleet_clock import FleetClock

START = 1_767_596_400.0  # 2026-01-05T07:00:00Z


async def test_wall_time_runs_at_the_fleet_speed_and_durations_do_not() -> None:
    base = FakeClock(1_000.0, auto_advance=False)
    clock = FleetClock(START, 60.0, base)
    mono = clock.monotonic()
    assert clock.time() == START
    await base.advance(5)
    assert clock.time() == START + 300  # five real seconds are five fleet minutes
    assert clock.monotonic() - mono == 5  # … and still five seconds to wait or time out
    assert clock.utcnow().strftime("%H:%M:%S") == "07:05:00"


async def test_sleep_is_in_real_seconds() -> None:
    base = FakeClock(1_000.0)
    clock = FleetClock(START, 120.0, base)
    await clock.sleep(2)
    assert clock.time() == START + 240


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speed must be positive"):
        FleetClock(START, 0)
