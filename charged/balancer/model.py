"""The balancer's vocabulary: the site, what each connector is doing, and what was decided.

Everything here is a frozen value.  The allocation (:func:`charged.balancer.allocate.allocate`)
and the guarantee (:func:`charged.balancer.plan.plan`) are pure functions of these values;
the runtime, the evaluation engine and the tests build them from their own sources (polls,
a simulated fleet, a hand-written site) and call the same two functions.

Conventions
-----------
* **Phases.**  A *site phase* is an index 0, 1, 2 for the garage's L1, L2, L3.  A *terminal*
  is an index 0, 1, 2 for a charger's own L1, L2, L3 terminals; the charger's
  :class:`Rotation` maps terminals to site phases.  A one-phase car draws on terminal 0.
* **Amperes.**  Every current is A per phase.  A connector's limit (the vendor's
  ``maxCurrent``) is an integer 0 (pause) or 6–32 and applies to every terminal its car uses.
* **Time.**  Seconds since the epoch (``Clock.time()``); the functions never read a clock.
* **Keys.**  A connector is ``(charge_point_id, connector_id)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, NamedTuple

PHASE_NAMES: tuple[str, str, str] = ("L1", "L2", "L3")
ALL_TERMINALS: frozenset[int] = frozenset({0, 1, 2})
MIN_CURRENT = 6.0  # below this a car stops charging: a limit is 0 or at least this
MAX_CURRENT = 32.0  # what an Aura connector allows at most

ConnectorKey = tuple[str, int]
PhaseCurrents = tuple[float, float, float]
FusePhase = tuple[str, int]  # (fuse name, site phase)


# ---------------------------------------------------------------- the site


@dataclass(frozen=True, slots=True)
class Rotation:
    """Which site phase each of a charger's terminals L1, L2, L3 is wired to.

    ``Rotation((1, 2, 0))`` is written ``L2L3L1``: terminal L1 on site L2, terminal L2 on
    site L3, terminal L3 on site L1.  Any of the 6 permutations.
    """

    site_phases: tuple[int, int, int] = (0, 1, 2)

    def __post_init__(self) -> None:
        if sorted(self.site_phases) != [0, 1, 2]:
            raise ValueError(f"a rotation is a permutation of the three phases, got {self}")

    @classmethod
    def parse(cls, text: str) -> Rotation:
        """``"L1L2L3"``, ``"L2L3L1"``, … (case and separators ``-``, `` ``, ``,`` ignored)."""
        compact = "".join(ch for ch in text.upper() if ch not in " -,/")
        names = [compact[i : i + 2] for i in range(0, len(compact), 2)]
        if len(names) != 3 or any(name not in PHASE_NAMES for name in names):
            raise ValueError(
                f"rotation {text!r}: write the site phase of terminals L1, L2, L3, "
                f"e.g. L1L2L3 or L2L3L1"
            )
        try:
            return cls(tuple(PHASE_NAMES.index(name) for name in names))  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(
                f"rotation {text!r}: each of L1, L2, L3 must appear once "
                f"(one of {', '.join(str(r) for r in all_rotations())})"
            ) from None

    def __str__(self) -> str:
        return "".join(PHASE_NAMES[p] for p in self.site_phases)

    def site_phase(self, terminal: int) -> int:
        return self.site_phases[terminal]

    def to_site(self, terminals: frozenset[int]) -> frozenset[int]:
        """The site phases a car drawing on these terminals loads."""
        return frozenset(self.site_phases[t] for t in terminals)

    def currents_to_site(self, per_terminal: PhaseCurrents) -> PhaseCurrents:
        """Currents per terminal → the same currents per site phase."""
        out = [0.0, 0.0, 0.0]
        for terminal, amps in enumerate(per_terminal):
            out[self.site_phases[terminal]] += amps
        return (out[0], out[1], out[2])


IDENTITY = Rotation()


def all_rotations() -> tuple[Rotation, ...]:
    return tuple(Rotation(p) for p in itertools.permutations((0, 1, 2)))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ChargerSpec:
    """One charger as wired in the site.

    ``installation_current`` caps each of its connectors (the vendor reports it per charger
    and per connector; the simulator and the charger apply it to each connector).  A supply
    fuse shared by the charger's connectors is a :class:`Fuse` of its own holding the charger.
    ``vendor_balancing_off``: the operator states that the vendor's cloud load balancing is
    not set up for this charger, so a charger reporting ``isLoadbalanced: true`` may still be
    driven (otherwise the balancer only shadows it).
    """

    id: str
    rotation: Rotation = IDENTITY
    installation_current: float = MAX_CURRENT
    connectors: tuple[int, ...] = (1, 2)
    vendor_balancing_off: bool = False

    @property
    def connector_max(self) -> float:
        """The highest limit any of its connectors can be given."""
        return min(MAX_CURRENT, self.installation_current)

    def connector_keys(self) -> tuple[ConnectorKey, ...]:
        return tuple((self.id, c) for c in self.connectors)


@dataclass(frozen=True, slots=True)
class Fuse:
    """A fuse (or any per-phase current limit: a cable, a transformer), with what it feeds.

    ``limit`` is in A per *site* phase.  ``chargers`` are the ids of chargers fed directly by
    this fuse, ``children`` the sub-distributions below it.
    """

    name: str
    limit: PhaseCurrents
    children: tuple[Fuse, ...] = ()
    chargers: tuple[str, ...] = ()

    def walk(self) -> Iterator[Fuse]:
        """This fuse and every fuse below it, parents before children."""
        yield self
        for child in self.children:
            yield from child.walk()

    def all_chargers(self) -> Iterator[str]:
        """The ids of every charger this fuse feeds, directly or below."""
        for fuse in self.walk():
            yield from fuse.chargers


@dataclass(frozen=True, slots=True)
class Site:
    """The fuse tree, the chargers it places, and the margin kept below every fuse.

    ``margin`` is subtracted from every fuse's limit on every phase (A), and so is the
    fuse's ``other_load``, what else flows through it besides the chargers (the building's
    own load, from a site meter): the allocation and the guarantee work against
    ``limit - margin - other load``.  ``other_load`` holds (fuse name, A per site phase)
    pairs, each fuse's own total; :meth:`with_other_load` builds it from meter readings.
    ``caps`` holds (fuse name, A per site phase) pairs the chargers under a fuse may take at
    most (a power target's cap, :meth:`with_caps`).
    Validation (one charger in one branch, unique fuse names, every placed charger
    described) is :func:`charged.balancer.configured.site_from_settings`'s job; the
    constructor only indexes.
    """

    root: Fuse
    chargers: tuple[ChargerSpec, ...]
    margin: float = 0.0
    other_load: tuple[tuple[str, PhaseCurrents], ...] = ()
    caps: tuple[tuple[str, PhaseCurrents], ...] = ()
    _by_id: Mapping[str, ChargerSpec] = field(init=False, repr=False, compare=False)
    _path: Mapping[str, tuple[Fuse, ...]] = field(init=False, repr=False, compare=False)
    _other: Mapping[str, PhaseCurrents] = field(init=False, repr=False, compare=False)
    _caps: Mapping[str, PhaseCurrents] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {c.id: c for c in self.chargers})
        object.__setattr__(self, "_other", dict(self.other_load))
        object.__setattr__(self, "_caps", dict(self.caps))
        paths: dict[str, tuple[Fuse, ...]] = {}

        def visit(fuse: Fuse, above: tuple[Fuse, ...]) -> None:
            here = (*above, fuse)
            for cp_id in fuse.chargers:
                paths[cp_id] = here
            for child in fuse.children:
                visit(child, here)

        visit(self.root, ())
        object.__setattr__(self, "_path", paths)

    def charger(self, cp_id: str) -> ChargerSpec | None:
        return self._by_id.get(cp_id)

    def fuses_of(self, cp_id: str) -> tuple[Fuse, ...]:
        """The fuses a charger's current flows through, root first (empty: not placed)."""
        return self._path.get(cp_id, ())

    def fuses(self) -> tuple[Fuse, ...]:
        return tuple(self.root.walk())

    def capacity(self, fuse: Fuse) -> PhaseCurrents:
        """What the balancer may use of ``fuse`` on each phase: limit minus margin minus the
        other load through it, >= 0, and no more than the fuse's cap (a power target's)."""
        other = self._other.get(fuse.name, (0.0, 0.0, 0.0))
        a, b, c = (max(0.0, x - self.margin - o) for x, o in zip(fuse.limit, other, strict=True))
        cap = self._caps.get(fuse.name)
        if cap is not None:
            a, b, c = min(a, cap[0]), min(b, cap[1]), min(c, cap[2])
        return (a, b, c)

    def with_caps(self, caps: Mapping[str, PhaseCurrents]) -> Site:
        """This site with the chargers under each fuse named in ``caps`` held to that many A
        per phase (a power target's cap on the top fuse): :meth:`capacity` is the lower of
        the two, so the fuse guarantee holds as before."""
        return replace(self, caps=tuple(caps.items()))

    def other_load_of(self, fuse: Fuse) -> PhaseCurrents:
        """What else flows through ``fuse`` besides the chargers (A per site phase)."""
        return self._other.get(fuse.name, (0.0, 0.0, 0.0))

    def with_other_load(self, metered: Mapping[str, PhaseCurrents]) -> Site:
        """This site with the building's load subtracted from its fuses.

        ``metered`` is, per metered fuse, what its meter says the fuse feeds besides the
        chargers, everything below it included (a meter sees what flows at its point).
        What flows through a fuse also flows through every fuse above it, so a fuse counts
        the higher, per phase, of its own meter and the sum of what its children count: a
        fuse with no meter carries its metered children's loads, and a meter above that
        reads less than the meters below it (readings taken at other moments) is not
        believed.  Negative values (a building exporting) count as 0: the export may stop
        before the next reading.
        """

        def total(fuse: Fuse, out: dict[str, PhaseCurrents]) -> PhaseCurrents:
            below = [0.0, 0.0, 0.0]
            for child in fuse.children:
                for phase, amps in enumerate(total(child, out)):
                    below[phase] += amps
            own = metered.get(fuse.name, (0.0, 0.0, 0.0))
            a, b, c = (max(0.0, own[p], below[p]) for p in range(3))
            if a or b or c:
                out[fuse.name] = (a, b, c)
            return (a, b, c)

        loads: dict[str, PhaseCurrents] = {}
        total(self.root, loads)
        return replace(self, other_load=tuple(loads.items()))

    def with_limits(self, limits: Mapping[str, PhaseCurrents]) -> Site:
        """This site with the fuses named in ``limits`` at those limits (a schedule's limits
        in force); the same object when nothing changes."""

        def rebuilt(fuse: Fuse) -> Fuse:
            children = tuple(rebuilt(child) for child in fuse.children)
            limit = limits.get(fuse.name, fuse.limit)
            if limit == fuse.limit and children == fuse.children:
                return fuse
            return replace(fuse, limit=limit, children=children)

        root = rebuilt(self.root)
        return self if root is self.root else replace(self, root=root)

    def connector_keys(self) -> tuple[ConnectorKey, ...]:
        return tuple(key for c in self.chargers for key in c.connector_keys())

    def with_installation_current(self, cp_id: str, amps: float) -> Site:
        """The same site with charger ``cp_id`` capped at ``amps`` (the vendor reports it)."""
        chargers = tuple(
            replace(c, installation_current=amps) if c.id == cp_id else c for c in self.chargers
        )
        return replace(self, chargers=chargers)


# ---------------------------------------------------------------- what a connector is doing


@dataclass(frozen=True, slots=True)
class ConnectorState:
    """One connector as the balancer sees it at a tick (from the poll and from learn.py).

    Limits:
    ``limit`` is the setting the charger holds, confirmed by a read-back (None: not read yet,
    counted at the connector's full limit).  ``pending`` is a value sent but not confirmed yet.
    ``previous_limit`` / ``limit_since``: the value before the last confirmed change and when
    it was confirmed; while a confirmed *decrease* is younger than ``BalancerParams.settle_s``
    (and no later reading shows the car below the new limit) the car may still draw the old
    value, so the guarantee keeps counting it.

    Car:
    ``terminals`` are the charger terminals the car draws on (learned; None: unknown, counted
    on all three).  ``car_max`` is the most the car has been seen to draw while its limit
    allowed more (None: no evidence it cannot use its limit).  ``follows_limit``: the car's
    draw tracks its limit (None: not known yet).  ``measured`` is A per *terminal* from the
    last poll, ``measured_at`` its time.
    """

    key: ConnectorKey
    online: bool = True  # its charger answered the last poll
    plugged: bool = False  # a car is connected (a session is open)
    wants_current: bool = False  # plugged and not full: it would charge if allowed
    terminals: frozenset[int] | None = None
    measured: PhaseCurrents = (0.0, 0.0, 0.0)
    measured_at: float | None = None
    car_max: float | None = None
    follows_limit: bool | None = None
    limit: float | None = None
    pending: float | None = None
    previous_limit: float | None = None
    limit_since: float | None = None
    pinned: float | None = None  # a person's limit: a fixed load the balancer never changes
    plugged_since: float | None = None
    session_energy_kwh: float = 0.0
    writable: bool = True  # False: the balancer must not drive it (vendor balancing, 403)

    @property
    def drawing_terminals(self) -> frozenset[int]:
        """The terminals counted for this connector: the learned ones, else all three."""
        return ALL_TERMINALS if self.terminals is None else self.terminals


# ---------------------------------------------------------------- parameters


FairnessUnit = Literal["current", "power"]
Mode = Literal["guarantee", "measured"]


@dataclass(frozen=True, slots=True)
class BalancerParams:
    """How the allocation and the guarantee behave (``balancer:`` in the config).

    ``fairness``: ``current`` (default) shares amperes per phase equally, whatever the number
    of phases a car uses; ``power`` shares amperes x phases (a three-phase car gets a third
    of the amperes of a one-phase car at the same bottleneck).
    """

    mode: Mode = "guarantee"
    fairness: FairnessUnit = "current"
    min_current: float = MIN_CURRENT
    max_current: float = MAX_CURRENT
    # what an idle connector is offered from spare room, so that an arriving car starts at
    # once; 0: arrivals wait for the next tick
    arrival_limit: float = 0.0
    # a change smaller than this (A) is not sent
    hysteresis: float = 2.0
    # an increase of a connector changed less than this long ago waits (a start from 0 does not)
    hold_s: float = 300.0
    # a running car keeps its slot at least this long before a waiting car can take it
    min_run_s: float = 1800.0
    # a paused car waiting this long takes the slot of a running car (past min_run_s); as
    # long as min_run_s, so that under a full fuse waits and runs take turns evenly
    max_wait_s: float = 1800.0
    # room given above a car's highest observed draw (A)
    car_max_headroom: float = 2.0
    # a confirmed decrease counts as the old value for this long (the car following it)
    settle_s: float = 60.0
    max_writes_per_tick: int = 20


DEFAULT_PARAMS = BalancerParams()


# ---------------------------------------------------------------- what was decided


class Reason(StrEnum):
    """Why a connector got its target (stored in balancer_decision.reason)."""

    FAIR_SHARE = "fair_share"  # limited by a fuse phase shared with others (see bottleneck)
    CAR_MAX = "car_max"  # the car draws less than this; more would be room wasted
    CONNECTOR_MAX = "connector_max"  # 32 A or the charger's installation current
    PAUSED_FLOOR = "paused_floor"  # no room for 6 A: paused, waits its turn
    ARRIVAL = "arrival"  # idle: holds the arrival limit so a car can start at once
    IDLE = "idle"  # idle (or full) and no spare room: 0
    PINNED = "pinned"  # a person's limit: left alone
    OFFLINE = "offline"  # its charger does not answer: counted at full limits, not written
    NOT_WRITABLE = "not_writable"  # vendor balancing or a refused write: left as it is
    HELD = "held"  # hysteresis or hold time: the limit in force is kept


class Decision(NamedTuple):
    """The allocation's answer for one connector.

    A named tuple, not a frozen dataclass: a tick builds one per car, and a frozen
    dataclass's ``__init__`` costs six times as much (3.4 against 0.5 us; bench/allocation.py).
    """

    target: float  # A per phase; 0 = pause.  For PINNED/OFFLINE/NOT_WRITABLE: what is counted
    reason: Reason
    site_phases: frozenset[int]  # the site phases this connector is counted on
    bottleneck: FusePhase | None = None  # the fuse phase that stopped it (FAIR_SHARE, PAUSED)
    fair_share: float | None = None  # the unrounded max-min share before hysteresis


@dataclass(frozen=True, slots=True)
class BalancerMemory:
    """What the allocation carries from one tick to the next (no globals).

    ``running_since``: when each connector last started charging under the balancer (a
    limit >= 6 A in force); ``waiting_since``: when each connector that wants current was
    last paused (or plugged in without room), kept until a limit >= 6 A is in force, not
    merely decided; ``changed_at``: when each connector's target last changed.
    A fresh ``BalancerMemory()`` is a valid start (after a restart everyone is equal).
    """

    running_since: Mapping[ConnectorKey, float] = field(default_factory=dict)
    waiting_since: Mapping[ConnectorKey, float] = field(default_factory=dict)
    changed_at: Mapping[ConnectorKey, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Allocation:
    """The targets of one tick: what every connector should hold, and why."""

    decisions: Mapping[ConnectorKey, Decision]
    memory: BalancerMemory
    paused: tuple[ConnectorKey, ...] = ()  # wanting current but given 0 (the floor)

    @property
    def targets(self) -> dict[ConnectorKey, float]:
        return {key: d.target for key, d in self.decisions.items()}


# ---------------------------------------------------------------- what goes out this tick


class WriteKind(StrEnum):
    DECREASE = "decrease"
    INCREASE = "increase"


@dataclass(frozen=True, slots=True)
class Write:
    key: ConnectorKey
    limit: float  # the maxCurrent to send (0 pauses)
    previous: float | None  # what was in force (None: unknown)
    kind: WriteKind


@dataclass(frozen=True, slots=True)
class Plan:
    """What the guarantee lets out this tick.

    ``writes``: decreases first, then increases that fit the envelope.  ``deferred``: the
    connectors whose target is not sent this tick, with why.  ``envelope``: per fuse, the
    worst-case current per site phase once these writes are out (each limit not yet confirmed
    counted at the higher of old and new).  ``over``: fuse phases whose envelope already
    exceeds the capacity before any write (at start, an adopted state): decreases are all
    that goes out until it fits.
    """

    writes: tuple[Write, ...]
    deferred: Mapping[ConnectorKey, str]
    envelope: Mapping[str, PhaseCurrents]
    over: tuple[FusePhase, ...] = ()
