"""The newest reading of every site meter, and what the balancer subtracts for each fuse.

:meth:`MeterBook.loads` is asked once per balancer tick with the tick's time.  A meter whose
newest reading is at most ``max_age_s`` old counts at that reading plus its headroom (what the
building may rise by before the balancer can answer: the floor ``headroom``, or the largest
rise the meter showed in the last ``learn_window_s``, :mod:`charged.meters.headroom`), each
phase at least 0 (a building exporting power may stop exporting at any moment).  A meter with
no reading that fresh is *stale* and counts at its ``fallback``, the conservative assumption
the operator configured.  Each transition between fresh and stale is logged once and counted;
a meter with no reading yet at the first tick is stale from the start.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from charged.meters.headroom import RiseHeadroom
from charged.meters.payload import PhaseCurrents
from charged.metrics import Metrics

PHASES = ("L1", "L2", "L3")
Source = Literal["mqtt", "http"]


@dataclass(frozen=True, slots=True)
class MeterSpec:
    fuse: str  # the fuse whose other load it measures
    source: Source
    max_age_s: float
    fallback: PhaseCurrents  # A per phase assumed while stale
    headroom: float = 0.0  # A added to every fresh reading, at least
    # how long the largest rise a reading showed is remembered (0: the headroom stays the floor)
    learn_window_s: float = 0.0
    # how long a rise goes unanswered: the collector's interval plus the balancer's settle_s
    reaction_s: float = 90.0


@dataclass(frozen=True, slots=True)
class Reading:
    time: float  # epoch seconds, when it was received
    amps: PhaseCurrents  # as read, A per site phase


class MeterBook:
    def __init__(
        self,
        specs: Iterable[MeterSpec],
        *,
        metrics: Metrics | None = None,
        logger: Any = None,
        recalling: bool = False,
    ) -> None:
        """``recalling``: the readings stored before the start are coming (:meth:`recall`);
        until :meth:`recalled`, the live ones are kept to be learned again after them."""
        self.specs: dict[str, MeterSpec] = {s.fuse: s for s in specs}
        self._metrics = metrics or Metrics()
        self._log = logger or structlog.get_logger("charged.meters")
        self._latest: dict[str, Reading] = {}
        self._rises = {fuse: self._new_rises(fuse) for fuse in self.specs}
        self._live: dict[str, list[Reading]] | None = (
            {fuse: [] for fuse in self.specs} if recalling else None
        )
        self._stale: dict[str, bool] = {}  # absent: not asked yet
        self._failing: dict[str, str] = {}  # fuse -> why its last attempt gave no reading
        self._stored_second: dict[str, int] = {}
        self.received: dict[str, int] = dict.fromkeys(self.specs, 0)
        self._waiters: list[tuple[str, int, asyncio.Future[None]]] = []

    # ------------------------------------------------------------ readings in

    def record(self, fuse: str, time: float, amps: PhaseCurrents) -> list[dict[str, Any]]:
        """Keep a reading; → the ``meter_reading`` rows to store (none for a second already
        stored: the table keeps one reading per meter and second)."""
        spec = self.specs[fuse]
        self._latest[fuse] = Reading(time, amps)
        self._rises[fuse].observe(time, amps)
        if self._live is not None:
            self._live[fuse].append(Reading(time, amps))
        self.received[fuse] += 1
        self._metrics.meter_readings.labels(fuse, "ok").inc()
        for phase, name in enumerate(PHASES):
            self._metrics.meter_current.labels(fuse, name).set(amps[phase])
        why = self._failing.pop(fuse, None)
        if why is not None:
            self._log.info("site meter reads again", fuse=fuse, source=spec.source)
        self._notify()
        second = math.floor(time)
        if self._stored_second.get(fuse) == second:
            return []
        self._stored_second[fuse] = second
        read_at = datetime.fromtimestamp(second, UTC).replace(tzinfo=None)
        row = {"read_at": read_at, "fuse": fuse, "source": spec.source}
        row.update({f"{name.lower()}_a": round(amps[p], 3) for p, name in enumerate(PHASES)})
        return [row]

    def failed(self, fuse: str, result: str, why: str) -> None:
        """An attempt that gave no reading (``result``: bad_payload, unreachable, …); logged
        once until the meter reads again."""
        self._metrics.meter_readings.labels(fuse, result).inc()
        if fuse not in self._failing:
            self._log.warning(
                "site meter gives no reading", fuse=fuse, source=self.specs[fuse].source, why=why
            )
        self._failing[fuse] = why

    def latest(self, fuse: str) -> Reading | None:
        return self._latest.get(fuse)

    def _new_rises(self, fuse: str) -> RiseHeadroom:
        spec = self.specs[fuse]
        return RiseHeadroom(spec.headroom, reaction_s=spec.reaction_s, window_s=spec.learn_window_s)

    def recall(self, fuse: str, past: Iterable[tuple[float, PhaseCurrents]]) -> int:
        """Learn the rises of readings stored before the start (oldest first), then again those
        received since; → how many stored readings were taken."""
        live = [] if self._live is None else self._live.get(fuse, [])
        first_live = live[0].time if live else math.inf
        rises = self._new_rises(fuse)
        taken = 0
        for time, amps in past:
            if time < first_live:
                rises.observe(time, amps)
                taken += 1
        for reading in live:
            rises.observe(reading.time, reading.amps)
        self._rises[fuse] = rises
        return taken

    def recalled(self) -> None:
        """The stored readings are in (or could not be read): stop keeping the live ones."""
        self._live = None

    def headroom(self, fuse: str, now: float) -> PhaseCurrents:
        """The A per site phase added to ``fuse``'s fresh reading at ``now``."""
        return self._rises[fuse].headroom(now)

    # ------------------------------------------------------------ what the balancer subtracts

    def loads(self, now: float) -> dict[str, PhaseCurrents]:
        """Per metered fuse, the A per site phase the building counts at ``now``."""
        out: dict[str, PhaseCurrents] = {}
        for fuse, spec in self.specs.items():
            reading = self._latest.get(fuse)
            fresh = reading is not None and now - reading.time <= spec.max_age_s
            self._transition(spec, reading, now, stale=not fresh)
            if reading is not None and fresh:
                room = self.headroom(fuse, now)
                for phase, name in enumerate(PHASES):
                    self._metrics.meter_headroom.labels(fuse, name).set(room[phase])
                a, b, c = (max(0.0, amps) + r for amps, r in zip(reading.amps, room, strict=True))
                out[fuse] = (a, b, c)
            else:
                out[fuse] = spec.fallback
        return out

    def measured(self, now: float) -> dict[str, PhaseCurrents]:
        """Per metered fuse, what its meter reads at ``now`` without the headroom (each phase
        at least 0), or its fallback while stale: the building's power for the power target.
        Leaves the fresh/stale transitions to :meth:`loads`."""
        out: dict[str, PhaseCurrents] = {}
        for fuse, spec in self.specs.items():
            reading = self._latest.get(fuse)
            if reading is not None and now - reading.time <= spec.max_age_s:
                a, b, c = (max(0.0, amps) for amps in reading.amps)
                out[fuse] = (a, b, c)
            else:
                out[fuse] = spec.fallback
        return out

    def stale(self) -> Mapping[str, bool]:
        """Per meter, whether the last :meth:`loads` counted its fallback."""
        return dict(self._stale)

    def _transition(
        self, spec: MeterSpec, reading: Reading | None, now: float, *, stale: bool
    ) -> None:
        before = self._stale.get(spec.fuse)
        self._stale[spec.fuse] = stale
        self._metrics.meter_stale.labels(spec.fuse).set(1 if stale else 0)
        if before == stale or (before is None and not stale):
            return
        if stale:
            self._metrics.meter_stale_total.labels(spec.fuse).inc()
            self._log.warning(
                "site meter stale: counting its fallback",
                fuse=spec.fuse,
                source=spec.source,
                age_s=None if reading is None else round(now - reading.time, 1),
                max_age_s=spec.max_age_s,
                fallback_a=list(spec.fallback),
            )
        else:
            self._log.info("site meter fresh again", fuse=spec.fuse, source=spec.source)

    # ------------------------------------------------------------ waiting (tests, check)

    def _notify(self) -> None:
        waiting, self._waiters = self._waiters, []
        for fuse, count, future in waiting:
            if future.done():
                continue
            if self.received[fuse] >= count:
                future.set_result(None)
            else:
                self._waiters.append((fuse, count, future))

    async def wait_received(self, fuse: str, count: int) -> None:
        """Return once ``fuse``'s meter has delivered ``count`` readings in all."""
        if self.received[fuse] >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((fuse, count, future))
        await future
