"""The physics the balancer is judged by: cars on connectors, limits that act late, and the grid.

Pure and clock-driven: nothing here reads a clock or does I/O; :meth:`Physics.advance_to` is
told the time.  Shares no code with ``charged.balancer`` (it is the judge).

A **car** has a phase count (1: the charger's terminal L1; 2: L1 and L2; 3: all three), a
maximum current per phase, the energy it takes before it is full, and ``follows_limit``: the
share of its limit it actually draws (the field study saw a car draw about half).  It draws
``min(max_current, follows_limit × limit)`` on each of its phases, nothing while the limit in
force is below :data:`MIN_CURRENT` (a car stops under 6 A), at most :data:`TAPER_CURRENT` over
the last ``taper_kwh`` before full, and nothing once full.

A **limit** is what the connector's settings, its charge point's settings and the installation
current allow (0 when paused or mode Off).  A changed limit takes effect ``delay`` seconds after
it is set (drawn per change from the connector's own seeded stream within ``limit_delay``), in
the order changes were made: until then the car follows the old one.  That is the slow loop
a balancer must live with.

Time moves in whole seconds and loads change only at whole seconds (an event that falls
between two seconds — full, taper — happens at the next one), so the grid's integration of the
piecewise-constant currents is the same as sampling them every simulated second, at a cost per
*change* rather than per second: a simulated month of 60 connectors runs in seconds.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from charged.simulator.grid import Columns, Fuse, Grid, GridSpec

MIN_CURRENT = 6.0  # a car stops when its limit is below this
TAPER_CURRENT = 3.5  # what a car draws near full
NOMINAL_VOLTAGE = 230.0
DEFAULT_LIMIT_DELAY = (30, 60)  # seconds before a changed limit takes effect
UNLIMITED = 1_000_000.0  # A: the root fuse of a fleet that was given no site


@dataclass(frozen=True)
class Car:
    phases: int  # 1, 2 or 3 charger terminals, from L1
    max_current: float  # A per phase it draws when allowed
    energy_kwh: float  # what it takes before it is full
    follows_limit: float = 1.0  # share of its limit it draws
    taper_kwh: float = 0.0  # the last part of energy_kwh is drawn at TAPER_CURRENT

    def __post_init__(self) -> None:
        if self.phases not in (1, 2, 3):
            raise ValueError(f"a car has 1, 2 or 3 phases, got {self.phases}")
        if not self.max_current > 0 or not self.energy_kwh >= 0:
            raise ValueError("a car needs a positive max_current and energy_kwh >= 0")
        if not 0 < self.follows_limit <= 1:
            raise ValueError(f"follows_limit is a share in (0, 1], got {self.follows_limit}")


@dataclass(frozen=True)
class Visit:
    """A car plugged in from ``arrival`` to ``departure`` (epoch seconds)."""

    arrival: int
    departure: int
    car: Car
    delivered_kwh: float = 0.0  # already taken (a visit under way when the run starts)
    session_start: int | None = None  # its session's start, if before arrival


@dataclass
class SessionRecord:
    """A charging session as the physics saw it (energy is ∫ I·V dt of the car's draw)."""

    number: int  # sessions started on this connector before this one
    start: int
    phases: int
    end: int | None = None
    energy_kwh: float = 0.0
    charging_seconds: int = 0
    idle_seconds: int = 0
    first_draw: int | None = None  # the second the car first drew current in this session


@dataclass(frozen=True)
class PhysicsConfig:
    """How the simulated site is wired and how its cars behave.

    ``site`` None is one fuse without a limit (``site``) above every charger.  ``visits``, by
    (charge point id, connector id), replaces the sampled arrivals of those connectors (a
    scenario); the other connectors sample theirs.  ``record`` keeps every change of every
    fuse's current so that :meth:`~charged.simulator.grid.Grid.samples` can give per-second
    series (memory grows with the changes).
    """

    site: GridSpec | None = None
    limit_delay: tuple[int, int] = DEFAULT_LIMIT_DELAY
    half_follower_share: float = 0.0  # share of sampled cars drawing half their limit
    visits: Mapping[tuple[str, int], Sequence[Visit]] | None = None
    sample_arrivals: bool = True  # connectors without scenario visits sample theirs
    record: bool = False

    def validate(self, charger_ids: Sequence[str]) -> None:
        low, high = self.limit_delay
        if not 0 <= low <= high:
            raise ValueError(f"limit delay must be 0 <= min <= max seconds, got {low}–{high}")
        if not 0 <= self.half_follower_share <= 1:
            raise ValueError(f"half-follower share must be 0–1, got {self.half_follower_share:g}")
        if self.site is not None:
            self.site.validate(charger_ids)
        known = set(charger_ids)
        for cp_id, connector_id in self.visits or {}:
            if cp_id not in known or connector_id not in (1, 2):
                raise ValueError(f"visits for {cp_id}/{connector_id}: no such connector")

    def grid_spec(self) -> GridSpec:
        if self.site is not None:
            return self.site
        return GridSpec(Fuse("site", (UNLIMITED, UNLIMITED, UNLIMITED)))


SessionListener = Callable[[SessionRecord], None]


@dataclass
class Plug:
    """One connector: its place on the grid, the limit in force and its car, if any."""

    charger_id: str
    connector_id: int
    columns: Columns
    limit: float  # A in force
    visits: Iterator[Visit]
    rng: random.Random
    voltage: float = NOMINAL_VOLTAGE
    pending: deque[tuple[int, float]] = field(default_factory=deque)  # (takes effect at, A)
    visit: Visit | None = None
    upcoming: Visit | None = None
    session: SessionRecord | None = None
    energy_kwh: float = 0.0  # delivered to the car of this visit, as of ``mark``
    mark: int = 0
    draw_ma: int = 0  # per phase the car draws on
    loaded_phases: int = 0  # how many terminals (from L1) carry draw_ma on the grid
    version: int = 0
    sessions_started: int = 0
    on_session_end: SessionListener | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.charger_id, self.connector_id)

    def currents(self) -> tuple[float, float, float]:
        """A on the charger's terminals L1, L2, L3."""
        amps = self.draw_ma / 1000
        phases = self.loaded_phases
        return (
            amps if phases >= 1 else 0.0,
            amps if phases >= 2 else 0.0,
            amps if phases >= 3 else 0.0,
        )

    def energy_at(self, t: int) -> float:
        return self.energy_kwh + self._power_kw() * (t - self.mark) / 3600

    def _power_kw(self) -> float:
        if self.visit is None or self.draw_ma == 0:
            return 0.0
        return self.visit.car.phases * self.draw_ma / 1000 * self.voltage / 1000

    @property
    def full(self) -> bool:
        return self.visit is not None and self.energy_kwh >= self.visit.car.energy_kwh - 1e-9


class Physics:
    """All plugs of a site on one grid, stepped by events on whole seconds."""

    def __init__(
        self,
        grid: Grid,
        *,
        limit_delay: tuple[int, int] = DEFAULT_LIMIT_DELAY,
    ) -> None:
        low, high = limit_delay
        if not 0 <= low <= high:
            raise ValueError(f"limit_delay must be 0 <= min <= max seconds, got {limit_delay}")
        self.grid = grid
        self.limit_delay = (int(low), int(high))
        self.t = grid.t
        self.plugs: list[Plug] = []
        self._by_key: dict[tuple[str, int], int] = {}
        self._events: list[tuple[int, int, int]] = []  # (time, plug index, version)

    # ------------------------------------------------------------------ set-up

    def add_plug(
        self,
        charger_id: str,
        connector_id: int,
        *,
        limit: float,
        visits: Iterator[Visit] | Sequence[Visit] = (),
        seed: str | int = 0,
        voltage: float = NOMINAL_VOLTAGE,
        on_session_end: SessionListener | None = None,
    ) -> Plug:
        """A connector with ``limit`` A in force now and its visits in order of arrival."""
        key = (charger_id, connector_id)
        if key in self._by_key:
            raise ValueError(f"connector {charger_id}/{connector_id} is there twice")
        plug = Plug(
            charger_id=charger_id,
            connector_id=connector_id,
            columns=self.grid.columns_of(charger_id),
            limit=float(limit),
            visits=iter(visits),
            rng=random.Random(f"delay/{seed}/{charger_id}/{connector_id}"),
            voltage=voltage,
            mark=self.t,
            on_session_end=on_session_end,
        )
        self._by_key[key] = len(self.plugs)
        self.plugs.append(plug)
        plug.upcoming = next(plug.visits, None)
        self._update(len(self.plugs) - 1, self.t)
        return plug

    def plug(self, charger_id: str, connector_id: int) -> Plug:
        return self.plugs[self._by_key[(charger_id, connector_id)]]

    # ------------------------------------------------------------------ commands

    def set_limit(self, charger_id: str, connector_id: int, amps: float) -> int:
        """A new limit for a connector, set now: returns when the car will follow it."""
        index = self._by_key[(charger_id, connector_id)]
        plug = self.plugs[index]
        low, high = self.limit_delay
        at = self.t + (plug.rng.randint(low, high) if high > low else low)
        if plug.pending:
            at = max(at, plug.pending[-1][0])  # changes act in the order they were made
        plug.pending.append((at, float(amps)))
        self._update(index, self.t)
        return at

    def stop_session(self, charger_id: str, connector_id: int) -> bool:
        """End the running session now (remote stop); the car stays plugged in."""
        index = self._by_key[(charger_id, connector_id)]
        plug = self.plugs[index]
        if plug.session is None:
            return False
        self._settle(plug, self.t)
        self._close_session(plug, self.t)
        self._update(index, self.t)
        return True

    def start_session(self, charger_id: str, connector_id: int) -> bool:
        """Open a session for a plugged-in car (remote start).  False if no car is there."""
        index = self._by_key[(charger_id, connector_id)]
        plug = self.plugs[index]
        if plug.visit is None:
            return False
        if plug.session is None:
            self._settle(plug, self.t)
            car = plug.visit.car
            # what the car still wants is what a new session delivers
            remaining = max(car.taper_kwh, car.energy_kwh - plug.energy_kwh)
            plug.visit = Visit(
                plug.visit.arrival,
                plug.visit.departure,
                Car(car.phases, car.max_current, remaining, car.follows_limit, car.taper_kwh),
            )
            plug.energy_kwh = 0.0
            plug.session = self._open_session(plug, self.t, car.phases)
            self._update(index, self.t)
        return True

    # ------------------------------------------------------------------ time

    def advance_to(self, now: float) -> None:
        """Run every event up to the last whole second ≤ ``now``."""
        target = math.floor(now)
        events, grid = self._events, self.grid
        while events and events[0][0] <= target:
            at = events[0][0]
            grid.advance(at)
            self.t = at
            while events and events[0][0] == at:
                _, index, version = heapq.heappop(events)
                if self.plugs[index].version == version:
                    self._update(index, at)
        if target > self.t:
            grid.advance(target)
            self.t = target

    # ------------------------------------------------------------------ the model

    def _update(self, index: int, t: int) -> None:
        """Bring one plug's state to ``t`` and schedule its next event."""
        plug = self.plugs[index]
        self._settle(plug, t)
        while plug.pending and plug.pending[0][0] <= t:
            plug.limit = plug.pending.popleft()[1]
        if plug.visit is not None and t >= plug.visit.departure:
            self._close_session(plug, t)
            plug.visit = None
            plug.energy_kwh = 0.0
        while plug.visit is None and plug.upcoming is not None and plug.upcoming.arrival <= t:
            visit, plug.upcoming = plug.upcoming, next(plug.visits, None)
            if visit.departure <= t:
                continue  # came and went while nobody looked (or an empty visit)
            plug.visit = visit
            plug.energy_kwh = min(visit.delivered_kwh, visit.car.energy_kwh)
            start = visit.session_start if visit.session_start is not None else t
            plug.session = self._open_session(plug, start, visit.car.phases)
            plug.session.energy_kwh = plug.energy_kwh
        self._set_draw(plug, self._draw_ma(plug), plug.visit.car.phases if plug.visit else 0)
        plug.version += 1
        at = self._next_event(plug, t)
        if at is not None:
            heapq.heappush(self._events, (at, index, plug.version))

    def _draw_ma(self, plug: Plug) -> int:
        visit = plug.visit
        if visit is None or plug.session is None or plug.full or plug.limit < MIN_CURRENT:
            return 0
        car = visit.car
        amps = min(car.max_current, car.follows_limit * plug.limit)
        if plug.energy_kwh >= car.energy_kwh - car.taper_kwh - 1e-9:
            amps = min(amps, TAPER_CURRENT)
        return round(amps * 1000)

    def _set_draw(self, plug: Plug, draw_ma: int, phases: int) -> None:
        if draw_ma == 0:
            phases = 0
        if phases == plug.loaded_phases and draw_ma == plug.draw_ma:
            return
        change = self.grid.change
        for terminal in range(plug.loaded_phases):
            change(plug.columns[terminal], -plug.draw_ma)
        for terminal in range(phases):
            change(plug.columns[terminal], draw_ma)
        plug.draw_ma, plug.loaded_phases = draw_ma, phases
        if draw_ma > 0 and plug.session is not None and plug.session.first_draw is None:
            plug.session.first_draw = self.t

    def _settle(self, plug: Plug, t: int) -> None:
        """Account energy and session time up to ``t`` at the draw in force since ``mark``."""
        dt = t - plug.mark
        if dt <= 0:
            return
        if plug.visit is not None:
            energy = plug.energy_at(t)
            car = plug.visit.car
            if plug.draw_ma > 0:
                energy = min(energy, car.energy_kwh)  # a full car takes nothing more
            gained = energy - plug.energy_kwh
            plug.energy_kwh = energy
            if plug.session is not None:
                plug.session.energy_kwh += gained
                if plug.draw_ma > 0:
                    plug.session.charging_seconds += dt
                else:
                    plug.session.idle_seconds += dt
        plug.mark = t

    def _next_event(self, plug: Plug, t: int) -> int | None:
        times: list[int] = []
        if plug.pending:
            times.append(plug.pending[0][0])
        if plug.visit is not None:
            times.append(plug.visit.departure)
            power = plug._power_kw()
            if power > 0:
                car = plug.visit.car
                threshold = car.energy_kwh
                taper_from = car.energy_kwh - car.taper_kwh
                if plug.energy_kwh < taper_from - 1e-9:
                    threshold = taper_from
                seconds = (threshold - plug.energy_kwh) * 3600 / power
                times.append(t + max(1, math.ceil(seconds - 1e-9)))
        elif plug.upcoming is not None:
            times.append(max(t + 1, plug.upcoming.arrival))
        return min(times) if times else None

    def _open_session(self, plug: Plug, start: int, phases: int) -> SessionRecord:
        plug.sessions_started += 1
        return SessionRecord(number=plug.sessions_started - 1, start=start, phases=phases)

    def _close_session(self, plug: Plug, t: int) -> None:
        session, plug.session = plug.session, None
        if session is not None:
            session.end = t
            if plug.on_session_end is not None:
                plug.on_session_end(session)

    # ------------------------------------------------------------------ reading

    def status(self, plug: Plug) -> str:
        """Available (no car), Charging (drawing), Connected (plugged in, not drawing)."""
        if plug.visit is None:
            return "Available"
        return "Charging" if plug.draw_ma > 0 else "Connected"

    def session_now(self, plug: Plug) -> SessionRecord | None:
        """The running session as of now (energy and time counted up to this second)."""
        session = plug.session
        if session is None:
            return None
        dt = self.t - plug.mark
        gained = 0.0
        if plug.visit is not None and plug.draw_ma > 0:
            gained = min(plug.energy_at(self.t), plug.visit.car.energy_kwh) - plug.energy_kwh
        return SessionRecord(
            number=session.number,
            start=session.start,
            phases=session.phases,
            energy_kwh=session.energy_kwh + gained,
            charging_seconds=session.charging_seconds + (dt if plug.draw_ma > 0 else 0),
            idle_seconds=session.idle_seconds + (dt if plug.draw_ma == 0 else 0),
            first_draw=session.first_draw,
        )

    def energy_wanted(self) -> float:
        """kWh the cars plugged in now still want."""
        return sum(
            max(0.0, p.visit.car.energy_kwh - p.energy_at(self.t))
            for p in self.plugs
            if p.visit is not None
        )
