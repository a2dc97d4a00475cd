"""The site's power target: the mean power of a window, chargers plus building, kept under a
target by capping what the chargers may take for the rest of the window (pure).

Windows are fixed slices of the clock, ``window_s`` long (15 or 60 minutes), aligned to the
epoch — the quarter-hours and hours a network operator bills, wherever the site's offset is a
whole number of hours.  At every tick the runtime hands :func:`advance` the site's measured
power (the chargers' measured currents and the building's meter, in W); the energy between two
ticks is the trapezoid of their powers, split at a window's end.  :func:`charger_cap` then
plans the rest of the window from the energy already used:

    budget left  = target x window - energy used so far            (Wh)
    allowed mean = budget left / time left                          (W, over the rest)
    chargers     = allowed mean - the building's power now          (W)
    cap          = chargers / (3 x voltage), at least 0             (A on each site phase)

A cap that outlives the window (less than ``horizon_s``, the time to the next tick, is left)
also starts the next window: it is at most the target then.  The cap is per phase on the top
fuse (:meth:`~charged.balancer.model.Site.with_caps`), and :func:`split` shares the allowed
chargers' current over the three phases so that the caps' power is the allowed power: in
proportion to what the chargers draw on each phase now (:func:`drawn`, the tick's measured
currents), each phase given at least a car's minimum current.  The allocation then keeps the
window under the target whatever the cars' phases, and the fuse guarantee is untouched (a
lower capacity is all the allocation sees).

Why in proportion to the draw: the same amps on each phase leave the phases without the
one-phase cars short of their caps (a three-phase car is held by its fullest phase), so the
site stays under the target by what those phases do not use.  The draw shows where the
allocation can put current: a phase whose chargers fill their cap keeps its share, one whose
chargers take less gives the difference to the others at the next tick.  What the waiting
cars could draw (their installation current; all three phases while a paused car's phases
are not known) is no guide: with many cars waiting it is more than the fuse on every phase,
and the split comes out nearly even (on bench/sites/garage-building-target.yaml's day the
highest quarter-hour mean was 86.0 kW with even caps, 86.2 split by that demand, 88.5 split
by the draw, against the 90 kW target).  The floor is room for a car that arrives on a phase
that draws nothing now; what it leaves unused stays in the window's budget, and the next
tick plans with it.

Monthly mode: the network tariff bills the month's highest window mean, so staying under a
peak the month already has costs nothing: the target in force is the higher of the configured
target and the highest mean of the month's finished windows (months in the site's time zone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from charged.balancer.model import ConnectorState, PhaseCurrents, Site

WINDOWS_S = (900.0, 3600.0)  # 15 and 60 minutes
MAX_GAP_S = 600.0  # ticks further apart than this: the power in between is not known


@dataclass(frozen=True, slots=True)
class TargetSpec:
    target_w: float  # the window's mean power to stay under (W)
    window_s: float = 900.0
    monthly: bool = False
    voltage: float = 230.0  # V per phase: A <-> W
    timezone: str = "UTC"  # the month's bounds
    max_gap_s: float = MAX_GAP_S

    def __post_init__(self) -> None:
        if self.window_s not in WINDOWS_S:
            raise ValueError(f"a window is 900 or 3600 s, got {self.window_s:g}")
        if self.target_w <= 0 or self.voltage <= 0:
            raise ValueError("the target and the voltage are positive")


@dataclass(frozen=True, slots=True)
class WindowState:
    """The window in progress and the month's peak so far (all a restart needs back)."""

    window_start: float  # epoch s
    energy_wh: float  # used in this window so far (chargers + building)
    time: float  # the last tick's time (epoch s)
    power_w: float  # the site's power at that tick
    month: str  # 'YYYY-MM' of the window, local time
    month_peak_w: float = 0.0  # the highest mean of this month's finished windows
    last_mean_w: float | None = None  # the mean of the window finished last (None: none yet)
    gap: bool = False  # the last advance skipped a gap longer than max_gap_s


def window_start(spec: TargetSpec, now: float) -> float:
    return math.floor(now / spec.window_s) * spec.window_s


def month_of(spec: TargetSpec, moment: float) -> str:
    return datetime.fromtimestamp(moment, ZoneInfo(spec.timezone)).strftime("%Y-%m")


def start(spec: TargetSpec, now: float, power_w: float) -> WindowState:
    """The state at the first tick: nothing known of the window before it."""
    begin = window_start(spec, now)
    return WindowState(begin, 0.0, now, power_w, month_of(spec, begin))


def advance(spec: TargetSpec, state: WindowState | None, now: float, power_w: float) -> WindowState:
    """The state once the tick at ``now`` measured ``power_w`` (W, chargers + building)."""
    if state is None:
        return start(spec, now, power_w)
    if now <= state.time:
        return replace(state, power_w=power_w) if now == state.time else state
    if now - state.time > spec.max_gap_s:
        # a restart or an outage: what was drawn meanwhile is not known and not guessed at.
        # The same window keeps the energy known; a later one starts empty, and the window
        # left unfinished counts in the month's peak with what it is known to have used.
        if window_start(spec, now) == state.window_start:
            return replace(state, time=now, power_w=power_w, gap=True)
        fresh = start(spec, now, power_w)
        if fresh.month == state.month:
            known = state.energy_wh * 3600 / spec.window_s
            fresh = replace(fresh, month_peak_w=max(state.month_peak_w, known))
        return replace(fresh, gap=True)
    t0, p0, s = state.time, state.power_w, replace(state, gap=False)
    while True:
        end = s.window_start + spec.window_s
        if now < end:
            energy = (p0 + power_w) / 2 * (now - t0) / 3600
            return replace(s, energy_wh=s.energy_wh + energy, time=now, power_w=power_w)
        # the window ends before this tick: its share of the interval, then a new window
        p_end = p0 + (power_w - p0) * (end - t0) / (now - t0)
        energy = s.energy_wh + (p0 + p_end) / 2 * (end - t0) / 3600
        mean = energy * 3600 / spec.window_s
        month = month_of(spec, end)
        peak = max(s.month_peak_w, mean)
        s = WindowState(
            end,
            0.0,
            end,
            p_end,
            month,
            month_peak_w=peak if month == s.month else 0.0,
            last_mean_w=mean,
        )
        t0, p0 = end, p_end


def target_in_force(spec: TargetSpec, state: WindowState) -> float:
    """The configured target, or in monthly mode the month's peak when that is higher."""
    return max(spec.target_w, state.month_peak_w) if spec.monthly else spec.target_w


@dataclass(frozen=True, slots=True)
class Cap:
    """What the chargers may take this tick, and how it was worked out."""

    amps: float  # A on each site phase of the top fuse, >= 0
    target_w: float  # the target in force
    allowed_w: float  # the mean power allowed over the rest of the window (all loads)
    budget_wh: float  # what is left of the window's energy
    left_s: float  # time left in the window


def charger_cap(
    spec: TargetSpec, state: WindowState, now: float, building_w: float, horizon_s: float
) -> Cap:
    """The cap on the chargers at ``now`` (``state`` advanced to ``now``); ``building_w``:
    the building's power now, ``horizon_s``: how long the cap stays in force (a tick)."""
    target = target_in_force(spec, state)
    left = state.window_start + spec.window_s - now
    budget = target * spec.window_s / 3600 - state.energy_wh
    if budget <= 0:
        allowed = 0.0
    elif left >= horizon_s:
        allowed = budget * 3600 / left
    else:
        # the cap outlives the window: the next one must not start above the target
        allowed = min(budget * 3600 / left, target)
    amps = max(0.0, allowed - max(0.0, building_w)) / (3 * spec.voltage)
    return Cap(amps, target, allowed, budget, left)


def drawn(site: Site, states: Sequence[ConnectorState]) -> PhaseCurrents:
    """What the site's chargers were measured drawing on each site phase (A), from the
    tick's states (an offline charger's last reading is not counted)."""
    out = [0.0, 0.0, 0.0]
    for state in states:
        spec = site.charger(state.key[0])
        if spec is None or not state.online:
            continue
        for phase, amps in enumerate(spec.rotation.currents_to_site(state.measured)):
            out[phase] += max(0.0, amps)
    return (out[0], out[1], out[2])


def split(
    total_a: float, wanted: PhaseCurrents, room: PhaseCurrents, floor_a: float
) -> PhaseCurrents:
    """The chargers' ``total_a`` (A summed over the three phases: the allowed power over the
    voltage) as a cap per phase, the three adding up to ``total_a``.

    Each phase first gets ``floor_a`` (no more than its ``room``, the fuse's capacity; all
    three scaled down alike when ``total_a`` is less); the rest goes to the phases in
    proportion to what they want beyond the floor (``wanted``: what each draws now, no more
    than its room); what is left once every phase has that goes in proportion to the room left
    over, else alike (the fuse then binds, not the cap)."""
    if total_a <= 0:
        return (0.0, 0.0, 0.0)
    floors = [min(max(0.0, floor_a), max(0.0, r)) for r in room]
    if sum(floors) >= total_a:
        scale = total_a / sum(floors)
        a, b, c = (f * scale for f in floors)
        return (a, b, c)
    caps = list(floors)
    rest = total_a - sum(floors)
    extra = [max(0.0, min(w, r) - f) for w, r, f in zip(wanted, room, floors, strict=True)]
    if sum(extra) >= rest:
        caps = [f + rest * e / sum(extra) for f, e in zip(floors, extra, strict=True)]
        return (caps[0], caps[1], caps[2])
    caps = [f + e for f, e in zip(floors, extra, strict=True)]
    rest -= sum(extra)
    spare = [max(0.0, r - c) for r, c in zip(room, caps, strict=True)]
    if sum(spare) >= rest:
        caps = [c + rest * s / sum(spare) for c, s in zip(caps, spare, strict=True)]
    else:
        caps = [c + s + (rest - sum(spare)) / 3 for c, s in zip(caps, spare, strict=True)]
    return (caps[0], caps[1], caps[2])


def phase_caps(
    cap: Cap, site: Site, states: Sequence[ConnectorState], floor_a: float
) -> PhaseCurrents:
    """The caps for the top fuse this tick: ``cap``'s power split over the phases by what
    the chargers in ``states`` draw there and the fuse has room for (``site`` before any
    cap), each rounded down to 0.1 A (the same site while the load is steady)."""
    shares = split(cap.amps * 3, drawn(site, states), site.capacity(site.root), floor_a)
    a, b, c = (math.floor(x * 10) / 10 for x in shares)
    return (a, b, c)
