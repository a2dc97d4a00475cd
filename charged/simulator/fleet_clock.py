"""FleetClock: wall time that runs at the simulated fleet's speed, durations in real seconds.

The demo runs the fleet faster than real time (a morning in a few minutes).  Given to the
simulator and to the collector alike, this clock makes the collector stamp its rows with the
fleet's time, so poll times and the sessions' start and end times (which the simulator reports
in fleet time) lie on one time line, and tokens expire on it too.  Intervals, timeouts and
sleeps stay in real seconds: "poll every 5 s" still means 5 s of the user's time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from charged.clock import Clock, SystemClock


class FleetClock:
    def __init__(self, start_time: float, speed: float, base: Clock | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed:g}")
        self._base = base or SystemClock()
        self._start = start_time
        self._speed = speed
        self._mono_start = self._base.monotonic()

    def time(self) -> float:
        return self._start + self._speed * (self._base.monotonic() - self._mono_start)

    def monotonic(self) -> float:
        return self._base.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self._base.sleep(seconds)

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)
