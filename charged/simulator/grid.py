"""The simulated site's wiring: a fuse tree, each charger's phase rotation, and the ground truth.

This is the judge of every balancer test and benchmark, so it is written on its own and shares
nothing with ``charged.balancer``.  A fuse limits the current on each *site* phase (L1, L2, L3)
separately.  A charger's rotation says which site phase each of its terminals L1/L2/L3 lands
on: ``L2L3L1`` puts terminal L1 on site L2, terminal L2 on site L3 and terminal L3 on site L1.
A charger that the tree does not place hangs directly under the root: physically every charger
is behind the main fuse.

:class:`Grid` keeps the current through every fuse on every phase in integer milliamperes (sums
of loads added and removed stay exact, so "above the limit" never depends on rounding) and
integrates, for each fuse and phase, the ampere-seconds and the seconds above its limit.  Loads
only change on whole seconds (the physics sees to that), so integrating the piecewise-constant
currents is exactly sampling them every simulated second.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SITE_PHASES = ("L1", "L2", "L3")
ROTATIONS: dict[str, tuple[int, int, int]] = {
    "".join(SITE_PHASES[i] for i in perm): (perm[0], perm[1], perm[2])
    for perm in itertools.permutations(range(3))
}
DEFAULT_ROTATION = "L1L2L3"
# per charger terminal L1, L2, L3: the grid columns (fuse × site phase) a draw on it loads
Columns = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class Fuse:
    """A fuse (main, sub-distribution, a charger's own): a limit in A on each site phase."""

    name: str
    limit: tuple[float, float, float]
    children: tuple[Fuse, ...] = ()
    chargers: tuple[str, ...] = ()

    def walk(self) -> Iterator[Fuse]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class GridSpec:
    """The fuse tree and the rotation of every charger (``ROTATIONS`` keys; default L1L2L3)."""

    root: Fuse
    rotations: Mapping[str, str] = field(default_factory=dict)

    def validate(self, charger_ids: Iterable[str] | None = None) -> None:
        """Raise ValueError with one line naming the first impossible value."""
        names: set[str] = set()
        placed: dict[str, str] = {}
        for fuse in self.root.walk():
            if fuse.name in names:
                raise ValueError(f"fuse name {fuse.name!r} is used twice")
            names.add(fuse.name)
            if len(fuse.limit) != 3 or any(not a > 0 for a in fuse.limit):
                raise ValueError(
                    f"fuse {fuse.name}: limit must be three positive amperes, got {fuse.limit!r}"
                )
            for cp in fuse.chargers:
                if cp in placed:
                    raise ValueError(f"charger {cp} is under both {placed[cp]} and {fuse.name}")
                placed[cp] = fuse.name
        for cp, rotation in self.rotations.items():
            if rotation not in ROTATIONS:
                raise ValueError(
                    f"rotation of {cp}: {rotation!r} is not one of {', '.join(ROTATIONS)}"
                )
        if charger_ids is not None:
            known = set(charger_ids)
            for cp in [*placed, *self.rotations]:
                if cp not in known:
                    raise ValueError(f"charger {cp} in the site is not a simulated charger")

    def rotation(self, charger_id: str) -> tuple[int, int, int]:
        return ROTATIONS[self.rotations.get(charger_id, DEFAULT_ROTATION)]


def single_fuse(limit: float, name: str = "main") -> GridSpec:
    """A site with one fuse of ``limit`` A on every phase and every charger under it."""
    return GridSpec(Fuse(name, (limit, limit, limit)))


def grid_from_mapping(data: Mapping[str, Any], charger_ids: Sequence[str] = ()) -> GridSpec:
    """The simulator's own reading of a site description (plain data, e.g. from YAML)::

        fuse: {name: main, limit: 63, children: [{name: row-a, limit: [32, 32, 25],
               chargers: [2104894082C]}]}
        rotations: {2104894082C: L2L3L1}

    A ``limit`` is one number (every phase) or three.  With ``charger_ids`` (the fleet's, in
    order) a charger may also be given by its position, 1 for the first.  Raises ValueError
    naming the key.
    """
    unknown = set(data) - {"fuse", "rotations"}
    if unknown:
        raise ValueError(f"site: unknown key {sorted(unknown)[0]!r} (known: fuse, rotations)")
    if "fuse" not in data:
        raise ValueError("site: the root fuse is missing (site.fuse)")
    rotations = data.get("rotations") or {}
    if not isinstance(rotations, Mapping):
        raise ValueError("site.rotations must map charger ids to rotations like L2L3L1")

    def charger(name: object, where: str) -> str:
        if isinstance(name, int) and not isinstance(name, bool) and charger_ids:
            if not 1 <= name <= len(charger_ids):
                raise ValueError(f"{where}: charger position {name} is not 1–{len(charger_ids)}")
            return charger_ids[name - 1]
        return str(name)

    spec = GridSpec(
        _fuse(data["fuse"], "site.fuse", charger),
        {charger(k, "site.rotations"): str(v) for k, v in rotations.items()},
    )
    spec.validate()
    return spec


def _fuse(data: Any, where: str, charger: Callable[[object, str], str]) -> Fuse:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping with name and limit")
    # schedule: the operator's limits over time (the balancer's), not the physical fuse
    unknown = set(data) - {"name", "limit", "children", "chargers", "schedule"}
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    if "name" not in data or "limit" not in data:
        raise ValueError(f"{where} needs a name and a limit")
    raw = data["limit"]
    limits = raw if isinstance(raw, Sequence) and not isinstance(raw, str) else [raw] * 3
    try:
        limit = tuple(float(a) for a in limits)
    except (TypeError, ValueError):
        raise ValueError(f"{where}.limit: {raw!r} is not a number of amperes") from None
    if len(limit) != 3:
        raise ValueError(f"{where}.limit: give one number or three, got {raw!r}")
    children = data.get("children") or []
    chargers = data.get("chargers") or []
    if not isinstance(children, Sequence) or not isinstance(chargers, Sequence):
        raise ValueError(f"{where}: children and chargers must be lists")
    return Fuse(
        str(data["name"]),
        (limit[0], limit[1], limit[2]),
        tuple(_fuse(c, f"{where}.children[{i}]", charger) for i, c in enumerate(children)),
        tuple(charger(c, f"{where}.chargers") for c in chargers),
    )


@dataclass(frozen=True)
class PhaseTruth:
    """What one fuse carried on one site phase, from the start of the run to ``until``."""

    fuse: str
    phase: str
    limit: float
    current: float  # A now
    peak: float  # highest A seen
    ampere_seconds_above: float  # ∫ max(0, I − limit) dt
    seconds_above: int


@dataclass(frozen=True)
class GroundTruth:
    start: int
    until: int
    phases: tuple[PhaseTruth, ...]

    @property
    def ampere_seconds_above(self) -> float:
        return sum(p.ampere_seconds_above for p in self.phases)

    @property
    def seconds_above(self) -> int:
        """Seconds in which at least one phase of one fuse was above its limit is not tracked
        here; this is the sum over fuses and phases (0 exactly when nothing was ever above)."""
        return sum(p.seconds_above for p in self.phases)

    def of(self, fuse: str, phase: str) -> PhaseTruth:
        for p in self.phases:
            if p.fuse == fuse and p.phase == phase:
                return p
        raise KeyError(f"{fuse}/{phase}")

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "until": self.until,
            "ampereSecondsAbove": round(self.ampere_seconds_above, 3),
            "fuses": [
                {
                    "fuse": p.fuse,
                    "phase": p.phase,
                    "limit": p.limit,
                    "current": p.current,
                    "peak": p.peak,
                    "ampereSecondsAbove": round(p.ampere_seconds_above, 3),
                    "secondsAbove": p.seconds_above,
                }
                for p in self.phases
            ],
        }


class Grid:
    """Current per fuse and site phase, integrated over time (see the module docstring).

    Columns are (fuse, phase) pairs in tree order, three per fuse.  A load is identified by the
    charger it hangs on: :meth:`columns_of` gives, per charger terminal, the columns it loads.
    With ``record`` the value of every column is kept at every change, so per-second samples
    can be read back (:meth:`samples`): memory grows with the changes, not with the seconds.
    """

    def __init__(self, spec: GridSpec, start: int, *, record: bool = False) -> None:
        spec.validate()
        self.spec = spec
        self.fuses = list(spec.root.walk())
        self._index = {f.name: i for i, f in enumerate(self.fuses)}
        self._path_of_charger: dict[str, list[int]] = {}
        self._parent: dict[int, int | None] = {0: None}
        for i, fuse in enumerate(self.fuses):
            for child in fuse.children:
                self._parent[self._index[child.name]] = i
            for cp in fuse.chargers:
                self._path_of_charger[cp] = self._path(i)
        self.limits_ma = [round(f.limit[p] * 1000) for f in self.fuses for p in range(3)]
        n = len(self.limits_ma)
        self.current_ma = [0] * n
        self.peak_ma = [0] * n
        self.above_mas = [0] * n  # milliampere-seconds above the limit
        self.seconds_above = [0] * n
        self.start = start
        self.t = start
        self._record = record
        self._trace_t: array[int] = array("q")
        self._trace_v: array[int] = array("q")
        self._dirty = True

    def _path(self, index: int) -> list[int]:
        path: list[int] = []
        node: int | None = index
        while node is not None:
            path.append(node)
            node = self._parent[node]
        return path

    def columns_of(self, charger_id: str) -> Columns:
        """For terminals L1, L2, L3 of the charger: the columns (fuse × site phase) it loads."""
        path = self._path_of_charger.get(charger_id, [0])
        rotation = self.spec.rotation(charger_id)
        cols = [tuple(f * 3 + rotation[terminal] for f in path) for terminal in range(3)]
        return cols[0], cols[1], cols[2]

    def change(self, columns: Iterable[int], delta_ma: int) -> None:
        """Add ``delta_ma`` to each column, from the current time on."""
        if delta_ma == 0:
            return
        current, peak = self.current_ma, self.peak_ma
        for c in columns:
            value = current[c] + delta_ma
            current[c] = value
            if value > peak[c]:
                peak[c] = value
        self._dirty = True

    def advance(self, to: int) -> None:
        """Integrate the currents as they are from the last time up to ``to``."""
        dt = to - self.t
        if dt <= 0:
            return
        if self._record and self._dirty:
            self._trace_t.append(self.t)
            self._trace_v.extend(self.current_ma)
            self._dirty = False
        for c, (value, limit) in enumerate(zip(self.current_ma, self.limits_ma, strict=True)):
            if value > limit:
                self.above_mas[c] += (value - limit) * dt
                self.seconds_above[c] += dt
        self.t = to

    def truth(self) -> GroundTruth:
        phases = []
        for c, limit in enumerate(self.limits_ma):
            fuse, phase = divmod(c, 3)
            phases.append(
                PhaseTruth(
                    fuse=self.fuses[fuse].name,
                    phase=SITE_PHASES[phase],
                    limit=limit / 1000,
                    current=self.current_ma[c] / 1000,
                    peak=self.peak_ma[c] / 1000,
                    ampere_seconds_above=self.above_mas[c] / 1000,
                    seconds_above=self.seconds_above[c],
                )
            )
        return GroundTruth(self.start, self.t, tuple(phases))

    def samples(self, fuse: str, phase: str) -> list[float]:
        """The current (A) of one fuse and phase at every simulated second so far (needs
        ``record``): element k is the value during second start + k."""
        if not self._record:
            raise RuntimeError("the grid was not recording; create it with record=True")
        column = self._index[fuse] * 3 + SITE_PHASES.index(phase)
        width = len(self.limits_ma)
        out: list[float] = []
        times = [*self._trace_t, self.t]
        for k in range(len(self._trace_t)):
            value = self._trace_v[k * width + column] / 1000
            out.extend([value] * (times[k + 1] - times[k]))
        return out
