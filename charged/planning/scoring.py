"""How good a choice of rotations is: the current through every fuse under it, and its
:class:`Score` (the summed peak share of each fuse's limit first, then the time-weighted
unbalance plus a small cost per rewired charger).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from charged.balancer.model import Rotation
from charged.planning.problem import Array, Problem

REWIRE_COST_A = 0.01  # a rewiring must lower the mean unbalance by at least this (A)
PEAK_TOLERANCE = 1e-7  # a share of a fuse's limit: ties within this are ties


def _inverse(rotation: Rotation) -> list[int]:
    """For each site phase p, the terminal wired to it."""
    inv = [0, 0, 0]
    for terminal, phase in enumerate(rotation.site_phases):
        inv[phase] = terminal
    return inv


def rotated(current: Array, rotation: Rotation) -> Array:
    """Per-terminal currents (..., 3) as per-site-phase currents under ``rotation``."""
    return current[..., _inverse(rotation)]


def fuse_currents(
    problem: Problem, rotations: Sequence[Rotation], current: Array | None = None
) -> Array:
    """(fuses, steps, site phases): the current through every fuse under ``rotations``."""
    current = problem.loads.current if current is None else current
    site = (
        np.stack([rotated(current[c], r) for c, r in enumerate(rotations)])
        if len(rotations)
        else np.zeros((0, current.shape[1], 3))
    )
    out: Array = np.einsum("fc,ctp->ftp", problem.membership, site)
    return out


@dataclass(frozen=True)
class Score:
    peak: float  # Σ over fuses of the highest share of the limit
    unbalance_a: float  # Σ over fuses of the mean of highest phase − mean phase (A)
    rewired: int

    @property
    def key(self) -> tuple[float, float]:
        """What is minimised, in order (peak at PEAK_TOLERANCE)."""
        return (round(self.peak / PEAK_TOLERANCE), self.unbalance_a + REWIRE_COST_A * self.rewired)

    def better_than(self, other: Score) -> bool:
        if self.peak < other.peak - PEAK_TOLERANCE:
            return True
        if self.peak > other.peak + PEAK_TOLERANCE:
            return False
        return self.unbalance_a + REWIRE_COST_A * self.rewired < (
            other.unbalance_a + REWIRE_COST_A * other.rewired - 1e-9
        )


def score_from(
    peak_currents: Array, limits: Array, bal_currents: Array, weights: Array, rewired: int
) -> Score:
    peak = (
        float(np.sum(np.max(peak_currents / limits[:, None, :], axis=(1, 2))))
        if len(peak_currents)
        else 0.0
    )
    total = float(np.sum(weights))
    if total > 0 and bal_currents.size:
        excess = np.max(bal_currents, axis=2) - np.mean(bal_currents, axis=2)  # (fuses, steps)
        unbalance = float(np.sum(excess @ weights) / total)
    else:
        unbalance = 0.0
    return Score(peak, unbalance, rewired)


def rewired(problem: Problem, rotations: Sequence[Rotation]) -> int:
    return sum(1 for a, b in zip(problem.today, rotations, strict=True) if a != b)


def score(problem: Problem, rotations: Sequence[Rotation]) -> Score:
    """The plan's score on every step of the problem's loads."""
    currents = fuse_currents(problem, rotations)
    return score_from(
        currents, problem.limits, currents, problem.loads.seconds, rewired(problem, rotations)
    )
