"""The evaluation's figure: per-phase current at every fuse against its limit, one row of
panels per policy, the same axes for every policy (matplotlib's object API, no pyplot).

Runs of up to two days draw the ground truth of every simulated second; longer runs the
highest current of every 30-s tick (so a spike between two polls still shows).  ``optimal``
has no run in the engine and no panel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from charged.balancer.evaluate.engine import RunResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PHASE_COLOURS = ("#8c564b", "#222222", "#9a9a9a")  # IEC L1 brown, L2 black, L3 grey
LIMIT_COLOUR = "#d62728"


def fuse_figure(runs: Sequence[RunResult]) -> Figure:
    from matplotlib.figure import Figure

    if not runs:
        raise ValueError("no engine run to draw (optimal alone has no time series)")
    fuses = [t.fuse for t in runs[0].traces]
    figure = Figure(figsize=(4.0 * len(fuses) + 1, 2.2 * len(runs) + 1), layout="constrained")
    axes = figure.subplots(len(runs), len(fuses), sharex=True, sharey="col", squeeze=False)
    start = runs[0].start
    for r, result in enumerate(runs):
        for c, trace in enumerate(result.traces):
            ax = axes[r][c]
            hours = [(t - start) / 3600 for t in trace.times]
            for p, values in enumerate(trace.values):
                ax.plot(
                    hours,
                    values,
                    drawstyle="steps-post",
                    color=PHASE_COLOURS[p],
                    lw=0.8,
                    label=f"L{p + 1}",
                )
            for p, limit in enumerate(trace.limit):
                ax.axhline(limit, color=LIMIT_COLOUR, lw=0.8, ls="--" if p else "-")
            if r == 0:
                ax.set_title(f"fuse {trace.fuse} (limit {max(trace.limit):g} A)")
            if c == 0:
                ax.set_ylabel(f"{result.policy}\nA per phase")
            if r == len(runs) - 1:
                ax.set_xlabel("hours from the start")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=3)
    return figure
