"""The figure of ``charged plan rotation --plot``: every fuse's current per site phase over
the check period, with today's wiring (left) and with the plan (right), on the same axes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from charged.balancer.model import PHASE_NAMES, Rotation
from charged.planning.problem import Problem
from charged.planning.scoring import fuse_currents

COLOURS = ("tab:blue", "tab:orange", "tab:green")  # L1, L2, L3


def rotation_figure(problem: Problem, plan: Sequence[Rotation]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fuses = problem.fuses
    times = [datetime.fromtimestamp(t, UTC) for t in problem.loads.times]
    wirings = (("today's wiring", problem.today), ("planned wiring", plan))
    currents = [fuse_currents(problem, rotations) for _, rotations in wirings]
    fig, axes = plt.subplots(
        len(fuses), 2, figsize=(12, 2.6 * len(fuses) + 0.8), sharex=True, squeeze=False
    )
    for f, fuse in enumerate(fuses):
        top = max(float(c[f].max()) if c[f].size else 0.0 for c in currents)
        top = max(top, max(fuse.limit)) * 1.08
        for col, ((title, _), series) in enumerate(zip(wirings, currents, strict=True)):
            ax = axes[f][col]
            for p in range(3):
                ax.plot(times, series[f][:, p], lw=0.7, color=COLOURS[p], label=PHASE_NAMES[p])
            for p, limit in enumerate(fuse.limit):
                ax.axhline(
                    limit,
                    color=COLOURS[p] if len(set(fuse.limit)) > 1 else "black",
                    lw=0.8,
                    ls="--",
                    label="limit" if p == 0 else None,
                )
            ax.set_ylim(0, top)
            ax.set_title(f"{fuse.name}, {title}", fontsize=9)
            if col == 0:
                ax.set_ylabel("A")
    axes[0][0].legend(loc="upper left", ncols=3, fontsize=8, frameon=False)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
