"""What the baseline policies learn from the polls (charged's own learning is balancer.learn).

Kept deliberately simple, as a controller of their kind would: a car's phases are the
terminals it has drawn more than :data:`DRAWING_A` on in this session (unknown until it
draws: all three); a car that shows no current for :data:`FULL_AFTER_S` while its connector
holds at least 6 A is taken to be full (until it is unplugged).
"""

from __future__ import annotations

from dataclasses import dataclass

from charged.balancer.evaluate.telemetry import AVAILABLE, CHARGING, ConnectorTelemetry
from charged.balancer.model import ALL_TERMINALS, MIN_CURRENT, ConnectorKey

DRAWING_A = 1.0  # above this a terminal carries the car's current (idle terminals read ~0)
FULL_AFTER_S = 90.0  # a limit acts within a minute; a car idle this long under 6 A+ is full


@dataclass(slots=True)
class CarView:
    plugged_since: float
    terminals: frozenset[int] | None = None
    setting: float = 0.0
    setting_since: float = 0.0
    full: bool = False

    @property
    def counted_terminals(self) -> frozenset[int]:
        return ALL_TERMINALS if self.terminals is None else self.terminals


class CarObserver:
    """One :class:`CarView` per plugged connector, updated from each poll."""

    def __init__(self) -> None:
        self._views: dict[ConnectorKey, CarView] = {}

    def update(self, now: float, reading: ConnectorTelemetry) -> CarView | None:
        key = reading.key
        if reading.status == AVAILABLE:
            self._views.pop(key, None)
            return None
        view = self._views.get(key)
        if view is None:
            start = reading.session_start if reading.session_start is not None else now
            view = CarView(plugged_since=start, setting=reading.setting, setting_since=now)
            self._views[key] = view
        if reading.setting != view.setting:
            view.setting, view.setting_since = reading.setting, now
        if reading.status == CHARGING and reading.currents is not None:
            drawn = frozenset(t for t, a in enumerate(reading.currents) if a > DRAWING_A)
            if drawn:
                view.terminals = drawn if view.terminals is None else view.terminals | drawn
            view.full = False
        elif view.setting >= MIN_CURRENT and now - view.setting_since >= FULL_AFTER_S:
            view.full = True
        return view

    def view(self, key: ConnectorKey) -> CarView | None:
        return self._views.get(key)
