"""Fewer steps for the planner's programs, with the same answer: for the peak only the
steps no other step dominates, for the unbalance the distinct steps at a resolution of
:data:`UNBALANCE_QUANTUM_A` A, at most :data:`MAX_UNBALANCE_STEPS` of them, weighted by the
seconds they stand for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charged.planning.problem import Array, Loads

UNBALANCE_QUANTUM_A = 0.5
MAX_UNBALANCE_STEPS = 400


@dataclass(frozen=True)
class Reduced:
    """The steps the programs see: ``peak`` (chargers, steps, 3) the steps no other step
    dominates; ``balance`` (chargers, steps, 3) representative steps for the unbalance,
    ``weights`` the seconds each stands for."""

    peak: Array
    balance: Array
    weights: Array


def reduce_steps(loads: Loads, max_balance_steps: int = MAX_UNBALANCE_STEPS) -> Reduced:
    c = len(loads.chargers)
    flat = loads.current.transpose(1, 0, 2).reshape(loads.steps, c * 3)  # (steps, c*3)
    if loads.steps == 0:
        empty = np.zeros((c, 0, 3))
        return Reduced(empty, empty, np.zeros(0))
    distinct = np.unique(flat, axis=0)
    peak = _undominated(distinct)
    quantised = np.round(flat / UNBALANCE_QUANTUM_A) * UNBALANCE_QUANTUM_A
    rows, inverse = np.unique(quantised, axis=0, return_inverse=True)
    weights = np.bincount(inverse.ravel(), weights=loads.seconds, minlength=len(rows))
    if len(rows) > max_balance_steps:
        kept = np.argsort(-weights, kind="stable")[:max_balance_steps]
        merged = weights[kept].copy()
        dropped = np.setdiff1d(np.arange(len(rows)), kept)
        for start in range(0, len(dropped), 256):
            chunk = dropped[start : start + 256]
            distance = np.abs(rows[chunk][:, None, :] - rows[kept][None, :, :]).sum(axis=2)
            np.add.at(merged, np.argmin(distance, axis=1), weights[chunk])
        rows, weights = rows[kept], merged

    def unflat(a: Array) -> Array:
        return a.reshape(len(a), c, 3).transpose(1, 0, 2).copy()

    return Reduced(unflat(peak), unflat(rows), np.asarray(weights, dtype=float))


def _undominated(rows: Array, chunk: int = 512) -> Array:
    """The rows no other row dominates (>= in every column); distinct rows in.

    In order of decreasing sum a row can only be dominated by one before it, and a dominated
    row by one kept (domination is transitive): each chunk is checked against the rows kept
    so far at once, the few left one by one."""
    rows = rows[np.argsort(-rows.sum(axis=1), kind="stable")]
    kept = np.zeros((0, rows.shape[1]))
    for start in range(0, len(rows), chunk):
        block = rows[start : start + chunk]
        if len(kept):
            dominated = np.any(np.all(kept[None, :, :] >= block[:, None, :], axis=2), axis=1)
            block = block[~dominated]
        for row in block:
            if len(kept) and bool(np.any(np.all(kept >= row, axis=1))):
                continue
            kept = np.vstack([kept, row[None, :]])
    return kept
