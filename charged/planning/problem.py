"""The rotation planner's problem: what each charger's terminals drew (:class:`Loads`), the
site's fuses as index sets over those chargers, today's rotations and the candidates (the 3
cyclic rotations, or all 6).  The planner itself is :mod:`charged.planning.rotation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from charged.balancer.model import Rotation, Site, all_rotations

Array = npt.NDArray[np.float64]

CYCLIC: tuple[Rotation, ...] = tuple(
    Rotation(p)
    for p in ((0, 1, 2), (1, 2, 0), (2, 0, 1))  # L1L2L3, L2L3L1, L3L1L2
)
ALL: tuple[Rotation, ...] = all_rotations()


class PlanningError(ValueError):
    """Loads and a site that do not fit together; one line."""


@dataclass(frozen=True)
class Loads:
    """Current per charger terminal at each step: ``current[c, t, k]`` A on terminal k of
    ``chargers[c]`` from ``times[t]`` for ``seconds[t]`` seconds."""

    chargers: tuple[str, ...]
    times: Array
    seconds: Array
    current: Array

    def __post_init__(self) -> None:
        c, t = len(self.chargers), len(self.times)
        if self.current.shape != (c, t, 3) or self.seconds.shape != (t,):
            raise ValueError(
                f"loads: current must be {c} chargers x {t} steps x 3 terminals, "
                f"got {self.current.shape} (seconds {self.seconds.shape})"
            )

    @property
    def steps(self) -> int:
        return len(self.times)

    def between(self, start: float | None, end: float | None) -> Loads:
        """The steps from ``start`` (inclusive) to ``end`` (exclusive); None: unbounded."""
        keep = np.ones(self.steps, dtype=bool)
        if start is not None:
            keep &= self.times >= start
        if end is not None:
            keep &= self.times < end
        return Loads(self.chargers, self.times[keep], self.seconds[keep], self.current[:, keep])


@dataclass(frozen=True)
class FuseLoad:
    """A fuse of the site as the planner sees it: its limit per site phase and the indices
    (into :attr:`Loads.chargers`) of every charger it feeds, directly or below."""

    name: str
    limit: tuple[float, float, float]
    members: tuple[int, ...]


@dataclass(frozen=True)
class Problem:
    loads: Loads
    fuses: tuple[FuseLoad, ...]
    today: tuple[Rotation, ...]  # per charger
    candidates: tuple[Rotation, ...]
    membership: Array = field(init=False, repr=False, compare=False)  # (fuses, chargers) 0/1

    def __post_init__(self) -> None:
        m = np.zeros((len(self.fuses), len(self.loads.chargers)))
        for f, fuse in enumerate(self.fuses):
            m[f, list(fuse.members)] = 1.0
        object.__setattr__(self, "membership", m)

    @property
    def limits(self) -> Array:
        return np.array([f.limit for f in self.fuses], dtype=float)  # (fuses, 3)

    def on(self, loads: Loads) -> Problem:
        """The same site and choice on other steps (the check period)."""
        return Problem(loads, self.fuses, self.today, self.candidates)


def problem_for(site: Site, loads: Loads, candidates: Sequence[Rotation] = CYCLIC) -> Problem:
    """The planner's problem for ``loads`` on ``site``: every charger of the loads must be
    placed under a fuse; today's rotations are the site's."""
    index = {cp: i for i, cp in enumerate(loads.chargers)}
    for cp in loads.chargers:
        if not site.fuses_of(cp):
            raise PlanningError(
                f"charger {cp} drew current but is under no fuse of the site; "
                "add it to a fuse's chargers"
            )
    fuses = tuple(
        FuseLoad(
            f.name,
            f.limit,
            tuple(sorted(index[cp] for cp in f.all_chargers() if cp in index)),
        )
        for f in site.fuses()
    )
    today = []
    for cp in loads.chargers:
        spec = site.charger(cp)
        today.append(spec.rotation if spec is not None else Rotation())
    return Problem(loads, fuses, tuple(today), tuple(candidates))
