"""The rows a balancer step leaves in the database (``balancer_decision``, ``balancer_fuse``).

Pure: built from the step's report; the runtime puts them on the batch writer's queue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from charged.balancer.model import PHASE_NAMES, Site

if TYPE_CHECKING:
    from charged.balancer.runtime import StepReport
    from charged.balancer.site_signals import PowerReport


def decision_rows(report: StepReport, mode: str) -> list[dict[str, Any]]:
    """One ``balancer_decision`` row per connector of the step."""
    tick_time = datetime.fromtimestamp(round(report.time), UTC).replace(tzinfo=None)
    writes = {w.key: w for w in report.plan.writes}
    outcomes = {r.write.key: r.sent.value for r in report.results}
    rows = []
    for state in report.states:
        decision = report.allocation.decisions.get(state.key)
        write = writes.get(state.key)
        if mode == "shadow":
            result = "shadow" if write is not None else None
        else:
            result = outcomes.get(state.key) if write is not None else None
        phases = (
            ""
            if decision is None
            else "".join(PHASE_NAMES[p] for p in sorted(decision.site_phases))
        )
        bottleneck = None
        if decision is not None and decision.bottleneck is not None:
            bottleneck = f"{decision.bottleneck[0]}/{PHASE_NAMES[decision.bottleneck[1]]}"
        rows.append(
            {
                "tick_time": tick_time,
                "charge_point_id": state.key[0],
                "connector_id": state.key[1],
                "mode": mode,
                "phases": phases or None,
                "measured_a": round(max(state.measured), 3),
                "allocated_a": None if decision is None else decision.target,
                "limit_in_force_a": state.limit,
                "limit_sent_a": None if write is None else write.limit,
                "write_result": result,
                "reason": None if decision is None else decision.reason.value,
                "deferred": (report.plan.deferred.get(state.key) or None),
                "bottleneck": bottleneck,
            }
        )
    return rows


def fuse_rows(report: StepReport, site: Site, mode: str) -> list[dict[str, Any]]:
    """One ``balancer_fuse`` row per fuse and phase of the step."""
    tick_time = datetime.fromtimestamp(round(report.time), UTC).replace(tzinfo=None)
    rows = []
    parents = {c.name: f.name for f in site.fuses() for c in f.children}
    for fuse in report.site.fuses():  # the limits in force at the step (a schedule's)
        capacity = report.site.capacity(fuse)  # (less the building's load)
        envelope = report.plan.envelope.get(fuse.name, (0.0, 0.0, 0.0))
        measured = report.measured.get(fuse.name, (0.0, 0.0, 0.0))
        for phase, name in enumerate(PHASE_NAMES):
            rows.append(
                {
                    "tick_time": tick_time,
                    "mode": mode,
                    "fuse": fuse.name,
                    "parent": parents.get(fuse.name),
                    "phase": name,
                    "limit_a": fuse.limit[phase],
                    "capacity_a": capacity[phase],
                    "envelope_a": round(envelope[phase], 3),
                    "measured_a": round(measured[phase], 3),
                }
            )
    return rows


def power_window_row(time: float, power: PowerReport, mode: str) -> dict[str, Any]:
    """The ``power_window`` row of a step with a power target."""
    window = power.window
    return {
        "tick_time": datetime.fromtimestamp(round(time), UTC).replace(tzinfo=None),
        "mode": mode,
        "window_start": datetime.fromtimestamp(window.window_start, UTC).replace(tzinfo=None),
        "window_s": round(power.window_s),
        "month": window.month,
        "energy_wh": round(window.energy_wh, 3),
        "power_w": round(window.power_w, 1),
        "building_w": round(power.building_w, 1),
        "target_w": round(power.cap.target_w, 1),
        "month_peak_w": round(window.month_peak_w, 1),
        "cap_a": power.cap_a,
    }
