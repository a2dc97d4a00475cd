"""How much a building's load may rise before the balancer can answer it, learned from its meter.

The balancer subtracts a meter's newest reading from its fuse's limit, but the building keeps
changing after it: until the next tick has read the meter again and the lowered limits are in
force (one collector interval plus the balancer's ``settle_s``: the *reaction* time), only a
margin on top of the reading keeps the fuse safe.  A fixed margin is either too small for a
building that steps (a lift, a heat pump, the morning's ramp) or wasted on a quiet one.

:class:`RiseHeadroom` keeps, per site phase, the largest *rise* the meter showed within one
reaction time over a trailing window (a day by default): a reading's rise is how far it lies
above the lowest reading of the reaction time before it (or above the reading just before it,
when the meter reads less often than that).  The headroom counted on a fresh reading is that
largest rise, never less than the configured floor (``headroom_a``).  A building that once
jumped by 9 A within a minute and a half is assumed able to do so again, for as long as the
window remembers it.

Readings below 0 (a building exporting) count as 0, as :class:`~charged.meters.book.MeterBook`
counts them, so a rise out of export is measured from 0.  The history lives in memory; the
daemon learns the stored readings again at start (:mod:`charged.meters.recall`).

Each phase costs two monotonic deques: the lowest readings of the last reaction time, and the
falling sequence of rises in the window; both are amortised O(1) per reading.
"""

from __future__ import annotations

from collections import deque

from charged.meters.payload import PhaseCurrents


class _PhaseRise:
    __slots__ = ("_last", "_lows", "_rises")

    def __init__(self) -> None:
        # (time, reading), readings increasing from the left: the left one is the lowest of
        # the reaction time before the newest reading
        self._lows: deque[tuple[float, float]] = deque()
        # (time, rise), rises falling from the left: the left one is the window's largest
        self._rises: deque[tuple[float, float]] = deque()
        self._last: tuple[float, float] | None = None

    def observe(self, time: float, amps: float, reaction_s: float) -> None:
        lows = self._lows
        while lows and lows[0][0] < time - reaction_s:
            lows.popleft()
        if lows:
            base = lows[0][1]
        elif self._last is not None:
            base = self._last[1]  # the meter reads less often than the reaction time
        else:
            base = amps
        rise = amps - base
        if rise > 0.0:
            rises = self._rises
            while rises and rises[-1][1] <= rise:
                rises.pop()
            rises.append((time, rise))
        while lows and lows[-1][1] >= amps:
            lows.pop()
        lows.append((time, amps))
        self._last = (time, amps)

    def largest(self, since: float) -> float:
        rises = self._rises
        while rises and rises[0][0] < since:
            rises.popleft()
        return rises[0][1] if rises else 0.0


class RiseHeadroom:
    """The A per site phase a fresh reading of one meter is raised by (see the module)."""

    def __init__(self, floor: float, *, reaction_s: float, window_s: float) -> None:
        if reaction_s <= 0 or window_s < 0:
            raise ValueError("reaction_s must be positive and window_s at least 0")
        self.floor = floor
        self.reaction_s = reaction_s
        self.window_s = window_s  # 0: nothing is learned, the headroom is the floor
        self._phases = (_PhaseRise(), _PhaseRise(), _PhaseRise())

    def observe(self, time: float, amps: PhaseCurrents) -> None:
        """A reading, in the order they were received."""
        if self.window_s == 0:
            return
        for phase, reading in zip(self._phases, amps, strict=True):
            phase.observe(time, max(0.0, reading), self.reaction_s)

    def headroom(self, now: float) -> PhaseCurrents:
        """Per site phase: the largest rise of the window ending at ``now``, at least the floor."""
        if self.window_s == 0:
            return (self.floor, self.floor, self.floor)
        since = now - self.window_s
        a, b, c = (max(self.floor, phase.largest(since)) for phase in self._phases)
        return (a, b, c)
