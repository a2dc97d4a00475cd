"""The evaluation engine: a scenario's cars on the simulator's physics, driven by one policy.

No HTTP and no wall clock: the simulator's own vehicle and grid physics
(:mod:`charged.simulator.physics`, :mod:`charged.simulator.grid`) run on a simulated clock.
Every ``tick`` seconds (30, as the cloud API is polled) the policy is shown what the API would
show and returns the limits it wants; the engine writes those that differ from what the
connector holds, and each write takes effect ``limit_delay`` seconds later (drawn per write by
the physics within the range, 30–60 s by default).  The ground truth is the grid's: the current
through every fuse on every site phase at every simulated second, the ampere-seconds and the
seconds above each limit.

With a meter series (:mod:`.meterseries`) the building's own load flows through the fuses too:
the ground truth counts it in every fuse's current from the second each reading starts, and
the policies are shown what the meters read at each poll (``Telemetry.building``; each policy
subtracts it from the fuses as it sees fit, charged as the daemon's ``Site.other_load``).
The energy through the root is kept per 15-minute slot of the clock, the building's apart,
for the power-peak and cost figures of :mod:`.metrics`.

The physics steps by events on whole seconds (a load changes only when a car arrives, leaves,
gets full or starts tapering, or a limit acts), so a month of 60 connectors costs what its
86,400 ticks cost, not 2.6 million seconds × 60 cars.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from charged.balancer.evaluate.measuring import MeasuringGrid, grid_spec
from charged.balancer.evaluate.meterseries import MeterSeries, through_fuses
from charged.balancer.evaluate.power import SLOT_S
from charged.balancer.evaluate.scenario import Scenario, Visit, assign_connectors
from charged.balancer.evaluate.telemetry import (
    AVAILABLE,
    CHARGING,
    CONNECTED,
    NO_METERS,
    ConnectorTelemetry,
    Policy,
    Telemetry,
)
from charged.balancer.model import MIN_CURRENT, PHASE_NAMES, ConnectorKey, PhaseCurrents, Site
from charged.simulator import grid as simgrid
from charged.simulator.physics import NOMINAL_VOLTAGE, Car, Physics, Plug, SessionRecord
from charged.simulator.physics import Visit as PhysicsVisit

TICK_S = 30
LIMIT_DELAY_S = (30, 60)
# the cars of a scenario taper (draw at most 3.5 A) over the last part of what they take,
# as the field study saw: 5 % of energy_kwh, at most this much
TAPER_SHARE = 0.05
TAPER_MAX_KWH = 0.3
# a run keeps the per-second current of every fuse for figures up to this horizon; longer
# runs keep one sample per tick
PER_SECOND_TRACE_MAX_S = 2 * 86400


@dataclass(frozen=True, slots=True)
class EngineParams:
    tick_s: int = TICK_S
    limit_delay_s: tuple[int, int] = LIMIT_DELAY_S
    seed: int = 1
    trace: bool = False  # keep fuse currents over time (figures)

    def validate(self) -> None:
        if self.tick_s < 1:
            raise ValueError(f"the tick must be at least 1 s, got {self.tick_s}")
        low, high = self.limit_delay_s
        if not 0 <= low <= high:
            raise ValueError(f"limit delay must be 0 <= min <= max seconds, got {low}-{high}")


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """What one visit got."""

    visit: Visit
    delivered_kwh: float
    first_6a_s: float | None  # plug-in to the first limit in force >= 6 A (None: never)
    pauses: int  # times its limit went from >= 6 A to < 6 A while the car was not full
    room_at_arrival: bool  # every car present could have had 6 A on every fuse phase
    # with every car present drawing all it can, 6 A more for this one fits every fuse phase
    # it loads: nobody needs lowering for it
    room_free: bool = False

    @property
    def ratio(self) -> float:
        """Delivered ÷ asked, at most 1 (a car that asked for nothing got all of it)."""
        if self.visit.energy_kwh <= 0:
            return 1.0
        return min(1.0, self.delivered_kwh / self.visit.energy_kwh)

    @property
    def fully_served(self) -> bool:
        return self.delivered_kwh >= self.visit.energy_kwh * (1 - 1e-6) - 1e-9


@dataclass(frozen=True, slots=True)
class FuseTrace:
    """A fuse's current per site phase over time: ``values[p][k]`` from ``times[k]`` on."""

    fuse: str
    limit: tuple[float, float, float]
    times: Sequence[int]
    values: tuple[Sequence[float], Sequence[float], Sequence[float]]


@dataclass(frozen=True, slots=True)
class RunResult:
    policy: str
    scenario: str
    start: int
    end: int
    connectors: int
    truth: simgrid.GroundTruth
    sessions: tuple[SessionOutcome, ...]
    writes: int
    plugged_connector_s: float
    tick_cpu_ns: array[int]  # the policy's CPU time at every tick
    wall_s: float  # the whole run, engine and policy
    root_unbalance_as: float = 0.0  # ∫ (max − min phase current) dt at the root fuse, A·s
    root_mean_as: float = 0.0  # ∫ mean phase current dt at the root fuse, A·s
    root_loaded_s: int = 0  # seconds with any current through the root fuse
    root_energy_kwh: float = 0.0  # through the root fuse at the nominal voltage
    traces: tuple[FuseTrace, ...] = ()
    # the energy through the root fuse from the start to each tick (kWh; figures only): what
    # the cars have taken so far, every car being below the root
    energy_times: Sequence[int] = ()
    energy_kwh: Sequence[float] = ()
    # the energy through the root fuse (nominal voltage) per whole SLOT_S slot of the clock
    # in the run, all of it and the building's part (the rest is the chargers'), kWh
    slot_times: Sequence[int] = ()
    slot_root_kwh: Sequence[float] = ()
    slot_building_kwh: Sequence[float] = ()

    @property
    def ticks(self) -> int:
        return len(self.tick_cpu_ns)


def physics_car(visit: Visit) -> Car:
    return Car(
        phases=visit.phases,
        max_current=visit.max_current,
        energy_kwh=visit.energy_kwh,
        follows_limit=visit.follows_limit,
        taper_kwh=min(TAPER_MAX_KWH, TAPER_SHARE * visit.energy_kwh),
    )


def run(
    scenario: Scenario,
    site: Site,
    policy: Policy,
    params: EngineParams | None = None,
    *,
    wiring: simgrid.GridSpec | None = None,
    meters: MeterSeries | None = None,
) -> RunResult:
    """Play the scenario through ``policy`` on ``site``; the visits must fit the site.

    ``wiring`` is the ground truth's fuse tree (fuses, limits, rotations) when it was read by the
    simulator's own parser from the same file as ``site`` (a parsing bug of either then shows
    as a difference); None: converted from ``site``.  ``meters``: the building's load on the
    metered fuses over time (ScenarioError if it names a fuse the site does not have)."""
    params = params or EngineParams()
    params.validate()
    wall_start = time.perf_counter()
    keys = list(site.connector_keys())
    scenario = assign_connectors(scenario, keys)
    tick = params.tick_s
    if scenario.visits:
        start = (math.floor(scenario.start) // tick) * tick - tick
        end = (math.ceil(scenario.end) // tick + 2) * tick
    else:
        start, end = 0, tick
    spec = wiring if wiring is not None else grid_spec(site)
    per_second = params.trace and end - start <= PER_SECOND_TRACE_MAX_S
    grid = MeasuringGrid(spec, start, record=per_second)
    physics = Physics(grid, limit_delay=params.limit_delay_s)
    steps: list[tuple[int, dict[str, PhaseCurrents]]] = []
    if meters is not None:
        meters.check(site)
        steps = meters.steps()
    shown: Mapping[str, PhaseCurrents] = NO_METERS  # what the meters read now
    step_at = 0
    while step_at < len(steps) and steps[step_at][0] <= start:
        shown = steps[step_at][1]
        step_at += 1
    if shown:
        grid.set_building(through_fuses(site, shown))
    by_key: dict[ConnectorKey, list[Visit]] = {k: [] for k in keys}
    for v in scenario.visits:
        by_key[v.key].append(v)
    delivered: dict[tuple[ConnectorKey, int], float] = {}

    def listener(key: ConnectorKey) -> Callable[[SessionRecord], None]:
        def ended(record: SessionRecord) -> None:
            delivered[(key, record.number)] = record.energy_kwh

        return ended

    plugs: list[Plug] = []
    settings: dict[ConnectorKey, float] = {}
    timeline: dict[ConnectorKey, list[tuple[float, float]]] = {}
    caps: dict[ConnectorKey, float] = {}
    for key in keys:
        charger = site.charger(key[0])
        assert charger is not None
        caps[key] = charger.connector_max
        initial = _clamp(policy.initial_limit(key), caps[key])
        visits = [
            PhysicsVisit(math.ceil(v.arrival), math.ceil(v.departure), physics_car(v))
            for v in by_key[key]
        ]
        plugs.append(
            physics.add_plug(
                key[0],
                key[1],
                limit=initial,
                visits=visits,
                seed=f"{params.seed}",
                on_session_end=listener(key),
            )
        )
        settings[key] = initial
        timeline[key] = [(-math.inf, initial)]
    pauses: dict[tuple[ConnectorKey, int], int] = {}
    writes = 0
    plugged_s = 0.0
    cpu = array("q")
    tick_times = array("q")
    tick_values: list[array[int]] = [array("q") for _ in grid.limits_ma]
    idle_cache: dict[ConnectorKey, ConnectorTelemetry] = {}
    energy_mas = array("q")  # ∫ root current dt at every tick (trace only)
    slot_times = array("q")
    slot_root = array("q")  # ∫ root current dt at every slot boundary, mA·s
    slot_building = array("q")
    for t in range(start, end + 1, tick):
        while step_at < len(steps) and steps[step_at][0] <= t:
            at, shown = steps[step_at]
            step_at += 1
            physics.advance_to(at)
            grid.set_building(through_fuses(site, shown))
        physics.advance_to(t)
        if t % SLOT_S == 0:
            slot_times.append(t)
            slot_root.append(grid.root_mas)
            slot_building.append(grid.building_mas)
        readings: dict[ConnectorKey, ConnectorTelemetry] = {}
        plugged = 0
        for plug in plugs:
            key = plug.key
            setting = settings[key]
            if plug.visit is None:
                cached = idle_cache.get(key)
                if cached is None or cached.setting != setting:
                    cached = ConnectorTelemetry(key, AVAILABLE, None, setting, 0.0, None)
                    idle_cache[key] = cached
                readings[key] = cached
                continue
            plugged += 1
            readings[key] = _reading(plug, key, setting, t)
        plugged_s += plugged * tick
        if params.trace:
            energy_mas.append(grid.root_mas)
        if not per_second and params.trace:
            tick_times.append(t - tick)  # the window [t - tick, t)
            # the highest current of the tick just ended (spikes between polls show)
            for column, value in enumerate(grid.window_peaks()):
                tick_values[column].append(value)
        began = time.thread_time_ns()
        wanted = policy.decide(Telemetry(float(t), readings, shown))
        cpu.append(time.thread_time_ns() - began)
        for key, amps in wanted.items():
            amps = _clamp(amps, caps[key])
            old = settings[key]
            if amps == old:
                continue
            plug = physics.plug(*key)
            acts_at = physics.set_limit(key[0], key[1], amps)
            writes += 1
            settings[key] = amps
            timeline[key].append((float(acts_at), amps))
            if (
                old >= MIN_CURRENT
                and amps < MIN_CURRENT
                and plug.visit is not None
                and not plug.full
            ):
                number = plug.sessions_started - 1
                pauses[(key, number)] = pauses.get((key, number), 0) + 1
    physics.advance_to(end)
    outcomes = _outcomes(scenario, site, by_key, delivered, timeline, pauses, steps)
    traces = _traces(grid, per_second, tick_times, tick_values) if params.trace else ()
    return RunResult(
        policy=policy.name,
        scenario=scenario.name,
        start=start,
        end=end,
        connectors=len(keys),
        truth=grid.truth(),
        sessions=outcomes,
        writes=writes,
        plugged_connector_s=plugged_s,
        tick_cpu_ns=cpu,
        wall_s=time.perf_counter() - wall_start,
        root_unbalance_as=grid.unbalance_mas / 1000,
        root_mean_as=grid.mean_mas / 1000,
        root_loaded_s=grid.loaded_s,
        root_energy_kwh=grid.root_mas / 1000 * NOMINAL_VOLTAGE / 3.6e6,
        traces=traces,
        energy_times=range(start, start + tick * len(energy_mas), tick),
        energy_kwh=[mas / 1000 * NOMINAL_VOLTAGE / 3.6e6 for mas in energy_mas],
        slot_times=slot_times[:-1],
        slot_root_kwh=_differences(slot_root),
        slot_building_kwh=_differences(slot_building),
    )


def _differences(marks: Sequence[int]) -> list[float]:
    """kWh between consecutive integrals of mA·s (three phases) at the nominal voltage."""
    return [(b - a) / 1000 * NOMINAL_VOLTAGE / 3.6e6 for a, b in itertools.pairwise(marks)]


def _reading(plug: Plug, key: ConnectorKey, setting: float, t: int) -> ConnectorTelemetry:
    """What the API shows of a plugged connector at ``t`` (the physics is advanced to t)."""
    session = plug.session
    if session is None:  # a car plugged in whose session was stopped
        return ConnectorTelemetry(key, CONNECTED, None, setting, 0.0, None)
    energy = session.energy_kwh
    if plug.draw_ma > 0:
        assert plug.visit is not None
        # what the session took since the physics last settled this plug
        energy += min(plug.energy_at(t), plug.visit.car.energy_kwh) - plug.energy_kwh
        return ConnectorTelemetry(key, CHARGING, plug.currents(), setting, energy, session.start)
    return ConnectorTelemetry(key, CONNECTED, None, setting, energy, session.start)


def _clamp(amps: float, cap: float) -> float:
    """What the charger holds for a requested limit: at most its cap, never negative."""
    if not math.isfinite(amps) or amps <= 0:
        return 0.0
    return float(min(amps, cap))


def _outcomes(
    scenario: Scenario,
    site: Site,
    by_key: Mapping[ConnectorKey, Sequence[Visit]],
    delivered: Mapping[tuple[ConnectorKey, int], float],
    timeline: Mapping[ConnectorKey, Sequence[tuple[float, float]]],
    pauses: Mapping[tuple[ConnectorKey, int], int],
    steps: Sequence[tuple[int, Mapping[str, PhaseCurrents]]],
) -> tuple[SessionOutcome, ...]:
    room = room_at_arrival(scenario, site, steps)
    free = room_free_at_arrival(scenario, site, steps)
    index_of = {id(v): i for i, v in enumerate(scenario.visits)}
    out: list[SessionOutcome] = []
    for key, visits in by_key.items():
        changes = timeline[key]
        acts = [at for at, _ in changes]
        for number, v in enumerate(visits):
            out.append(
                SessionOutcome(
                    visit=v,
                    delivered_kwh=delivered.get((key, number), 0.0),
                    first_6a_s=_first_6a(changes, acts, v.arrival, v.departure),
                    pauses=pauses.get((key, number), 0),
                    room_at_arrival=room[index_of[id(v)]],
                    room_free=free[index_of[id(v)]],
                )
            )
    out.sort(key=lambda o: (o.visit.arrival, o.visit.key))
    return tuple(out)


def _first_6a(
    changes: Sequence[tuple[float, float]], acts: Sequence[float], arrival: float, departure: float
) -> float | None:
    i = bisect.bisect_right(acts, arrival) - 1  # the change in force at arrival
    for at, amps in changes[max(i, 0) :]:
        if at >= departure:
            return None
        if amps >= MIN_CURRENT:
            return max(0.0, at - arrival)
    return None


Steps = Sequence[tuple[int, Mapping[str, PhaseCurrents]]]


def room_at_arrival(scenario: Scenario, site: Site, steps: Steps = ()) -> dict[int, bool]:
    """Per visit (by its index in the scenario): could every car present when it arrived
    (itself included) have had 6 A on every fuse phase it loads, beside the building's load
    then (``steps``: the meter series' :meth:`~.meterseries.MeterSeries.steps`)?  A fact of
    the scenario, the same for every policy."""
    return _room(scenario, site, steps, lambda v: MIN_CURRENT, free=False)


def room_free_at_arrival(scenario: Scenario, site: Site, steps: Steps = ()) -> dict[int, bool]:
    """Per visit: with every other car present drawing all it can (its ``max_current``, or
    its share of its connector's full limit), do 6 A more fit on every fuse phase this car
    loads, beside the building's load then?  Then nobody has to be lowered for it, and the
    time to its first 6 A is the policy's own delay.  A fact of the scenario (a car present
    counts until it leaves, full or not), the same for every policy."""
    full = {key: c.connector_max for c in site.chargers for key in c.connector_keys()}
    return _room(
        scenario, site, steps, lambda v: min(v.max_current, v.follows_limit * full[v.key]), True
    )


def _room(
    scenario: Scenario, site: Site, steps: Steps, amps: Callable[[Visit], float], free: bool
) -> dict[int, bool]:
    """Each car present counts ``amps(visit)`` on its fuse phases.  ``free`` False: does the
    load with the newcomer fit every fuse phase?  True: do the others' load and 6 A fit the
    newcomer's fuse phases?"""
    loads: dict[tuple[ConnectorKey, int], tuple[tuple[str, int], ...]] = {}
    for charger in site.chargers:
        fuses = [f.name for f in site.fuses_of(charger.id)]
        for key in charger.connector_keys():
            for phases in (1, 3):
                site_phases = charger.rotation.to_site(frozenset(range(phases)))
                loads[(key, phases)] = tuple((f, p) for f in fuses for p in site_phases)

    def capacities(at: Site) -> dict[tuple[str, int], float]:
        return {(f.name, p): cap for f in at.fuses() for p, cap in enumerate(at.capacity(f))}

    capacity = capacities(site)
    step_times = [t for t, _ in steps]
    load: dict[tuple[str, int], float] = dict.fromkeys(capacity, 0.0)
    leaving: list[tuple[float, int]] = []  # (departure, visit index), a heap
    out: dict[int, bool] = {}
    shown = -1
    for index, v in enumerate(scenario.visits):
        step = bisect.bisect_right(step_times, math.floor(v.arrival)) - 1
        if step != shown:
            shown = step
            capacity = capacities(site.with_other_load(steps[step][1]) if step >= 0 else site)
        while leaving and leaving[0][0] <= v.arrival:
            _, gone = heapq.heappop(leaving)
            other = scenario.visits[gone]
            for fp in loads[(other.key, other.phases)]:
                load[fp] -= amps(other)
        mine = loads[(v.key, v.phases)]
        if free:
            out[index] = all(load[fp] + MIN_CURRENT <= capacity[fp] + 1e-9 for fp in mine)
        for fp in mine:
            load[fp] += amps(v)
        heapq.heappush(leaving, (v.departure, index))
        if not free:
            out[index] = all(a <= capacity[fp] + 1e-9 for fp, a in load.items())
    return out


def _traces(
    grid: simgrid.Grid,
    per_second: bool,
    tick_times: array[int],
    tick_values: Sequence[array[int]],
) -> tuple[FuseTrace, ...]:
    traces = []
    for index, fuse in enumerate(grid.fuses):
        if per_second:
            series = tuple(grid.samples(fuse.name, PHASE_NAMES[p]) for p in range(3))
            times: Sequence[int] = range(grid.start, grid.start + len(series[0]))
            values = series
        else:
            times = tick_times
            values = tuple([v / 1000 for v in tick_values[index * 3 + p]] for p in range(3))
        traces.append(
            FuseTrace(
                fuse=fuse.name,
                limit=fuse.limit,
                times=times,
                values=(values[0], values[1], values[2]),
            )
        )
    return tuple(traces)
