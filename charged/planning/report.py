"""What the electrician gets: per charger today's rotation, the plan and what moves; per fuse
and site phase the peak and 95th percentile before and after; the unbalance; and what the
balancer delivers under the same fuses with each wiring.

Figures are taken over every step of a period (not the planner's reduced ones), each step
weighted by the seconds it stands for.  The unbalance of a fuse is, as in ``charged balance
evaluate``, the time-weighted mean of its highest minus its lowest phase current over the
steps where any current flows through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from charged.balancer.model import PHASE_NAMES, Rotation
from charged.planning.problem import Array, Problem
from charged.planning.scoring import fuse_currents


@dataclass(frozen=True)
class Move:
    charger: str
    today: Rotation
    plan: Rotation

    @property
    def changed(self) -> bool:
        return self.today != self.plan

    def describe(self) -> str:
        """Each terminal whose site phase changes, with the site phase it goes to:
        ``terminal L1 to site L2 (was L1), L2 to L3 (was L2)``."""
        if not self.changed:
            return "keep"
        parts = [
            f"{PHASE_NAMES[k]} to {PHASE_NAMES[b]} (was {PHASE_NAMES[a]})"
            for k, (a, b) in enumerate(
                zip(self.today.site_phases, self.plan.site_phases, strict=True)
            )
            if a != b
        ]
        return "terminal " + ", ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "charger": self.charger,
            "today": str(self.today),
            "plan": str(self.plan),
            "rewire": self.changed,
            "terminals": [
                {"terminal": PHASE_NAMES[k], "today": PHASE_NAMES[a], "plan": PHASE_NAMES[b]}
                for k, (a, b) in enumerate(
                    zip(self.today.site_phases, self.plan.site_phases, strict=True)
                )
            ],
        }


@dataclass(frozen=True)
class FuseFigures:
    """One fuse over one period under one wiring."""

    fuse: str
    limit: tuple[float, float, float]
    peak: tuple[float, float, float]  # A per site phase
    p95: tuple[float, float, float]
    unbalance_a: float  # mean of highest − lowest phase while loaded

    def as_json(self) -> dict[str, Any]:
        return {
            "fuse": self.fuse,
            "limitA": list(self.limit),
            "peakA": [round(v, 2) for v in self.peak],
            "p95A": [round(v, 2) for v in self.p95],
            "unbalanceA": round(self.unbalance_a, 2),
        }


def weighted_percentile(values: Array, weights: Array, q: float) -> float:
    """The smallest value at or below which ``q`` of the weight lies."""
    if values.size == 0 or float(weights.sum()) <= 0:
        return 0.0
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    return float(values[order][min(index, len(values) - 1)])


def fuse_figures(problem: Problem, rotations: Sequence[Rotation]) -> tuple[FuseFigures, ...]:
    currents = fuse_currents(problem, rotations)  # (fuses, steps, 3)
    weights = problem.loads.seconds
    out = []
    for f, fuse in enumerate(problem.fuses):
        series = currents[f]
        if series.shape[0] == 0:
            zero = (0.0, 0.0, 0.0)
            out.append(FuseFigures(fuse.name, fuse.limit, zero, zero, 0.0))
            continue
        peak = series.max(axis=0)
        p95 = [weighted_percentile(series[:, p], weights, 0.95) for p in range(3)]
        loaded = series.sum(axis=1) > 1e-9
        spread = series.max(axis=1) - series.min(axis=1)
        w = weights[loaded]
        unbalance = float(spread[loaded] @ w / w.sum()) if w.sum() > 0 else 0.0
        out.append(
            FuseFigures(
                fuse.name,
                fuse.limit,
                (float(peak[0]), float(peak[1]), float(peak[2])),
                (p95[0], p95[1], p95[2]),
                unbalance,
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class BalancerFigures:
    """The evaluation engine's ``charged`` policy on a period's visits under one wiring."""

    energy_kwh: float
    asked_kwh: float
    fully_served_pct: float
    ampere_seconds_above: float

    @property
    def energy_pct(self) -> float:
        return 100.0 * self.energy_kwh / self.asked_kwh if self.asked_kwh > 0 else 100.0

    def as_json(self) -> dict[str, Any]:
        return {
            "energyKwh": round(self.energy_kwh, 2),
            "askedKwh": round(self.asked_kwh, 2),
            "energyPct": round(self.energy_pct, 2),
            "fullyServedPct": round(self.fully_served_pct, 2),
            "ampereSecondsAbove": round(self.ampere_seconds_above, 1),
        }


@dataclass(frozen=True)
class PeriodReport:
    """One period (fit or check) before and after."""

    name: str
    start: float
    end: float
    steps: int
    today: tuple[FuseFigures, ...]
    plan: tuple[FuseFigures, ...]
    balancer_today: BalancerFigures | None = None
    balancer_plan: BalancerFigures | None = None
    visits: int = 0

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "period": self.name,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "steps": self.steps,
            "today": [f.as_json() for f in self.today],
            "plan": [f.as_json() for f in self.plan],
        }
        if self.balancer_today is not None and self.balancer_plan is not None:
            out["balancer"] = {
                "visits": self.visits,
                "today": self.balancer_today.as_json(),
                "plan": self.balancer_plan.as_json(),
            }
        return out


def _iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def period_report(
    name: str, problem: Problem, plan: Sequence[Rotation], start: float, end: float
) -> PeriodReport:
    return PeriodReport(
        name=name,
        start=start,
        end=end,
        steps=problem.loads.steps,
        today=fuse_figures(problem, problem.today),
        plan=fuse_figures(problem, plan),
    )


def moves(problem: Problem, plan: Sequence[Rotation]) -> list[Move]:
    return [
        Move(cp, today, new)
        for cp, today, new in zip(problem.loads.chargers, problem.today, plan, strict=True)
    ]


# ---------------------------------------------------------------- text


def _table(rows: Sequence[Sequence[str]], *, numbers: bool = True) -> list[str]:
    """Aligned columns: the first and last to the left, the others to the right when they
    hold ``numbers``."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if numbers and 0 < i < len(r) - 1 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]


def moves_table(all_moves: Sequence[Move]) -> list[str]:
    rows = [["CHARGER", "TODAY", "PLAN", "WHAT MOVES"]]
    rows += [[m.charger, str(m.today), str(m.plan), m.describe()] for m in all_moves]
    return _table(rows, numbers=False)


def figures_table(report: PeriodReport) -> list[str]:
    rows = [["FUSE", "PHASE", "LIMIT", "PEAK TODAY", "PEAK PLAN", "P95 TODAY", "P95 PLAN", ""]]
    for before, after in zip(report.today, report.plan, strict=True):
        for p in range(3):
            rows.append(
                [
                    before.fuse,
                    PHASE_NAMES[p],
                    f"{before.limit[p]:g} A",
                    f"{before.peak[p]:.1f} A",
                    f"{after.peak[p]:.1f} A",
                    f"{before.p95[p]:.1f} A",
                    f"{after.p95[p]:.1f} A",
                    "",
                ]
            )
        rows.append(
            [
                before.fuse,
                "max",
                "",
                f"{max(before.peak):.1f} A",
                f"{max(after.peak):.1f} A",
                f"{max(before.p95):.1f} A",
                f"{max(after.p95):.1f} A",
                f"unbalance {before.unbalance_a:.1f} → {after.unbalance_a:.1f} A",
            ]
        )
    return _table(rows)


def balancer_lines(report: PeriodReport) -> list[str]:
    before, after = report.balancer_today, report.balancer_plan
    if before is None or after is None:
        return []
    gain = after.energy_kwh - before.energy_kwh
    return [
        f"the balancer (charged policy, same fuses) on the {report.visits} visits of this "
        f"period, {before.asked_kwh:,.1f} kWh asked:",
        f"  today's wiring: {before.energy_kwh:,.1f} kWh ({before.energy_pct:.1f} %), "
        f"{before.fully_served_pct:.1f} % of sessions fully served, "
        f"{before.ampere_seconds_above:,.0f} A·s above a fuse",
        f"  planned wiring: {after.energy_kwh:,.1f} kWh ({after.energy_pct:.1f} %), "
        f"{after.fully_served_pct:.1f} % of sessions fully served, "
        f"{after.ampere_seconds_above:,.0f} A·s above a fuse",
        f"  gain: {gain:+,.1f} kWh ({after.energy_pct - before.energy_pct:+.1f} points)",
    ]
