"""The garage figure: the whole garage over a day, total power of every connector and the
current on each phase, with the ticks where a charger was not read marked.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from charged.analysis.plot_base import (
    GAP_COLOUR,
    PHASE_COLOURS,
    PlotError,
    broken,
    legend_below,
    new_figure,
    phase_style,
    shade_gaps,
    time_axis,
    x,
)
from charged.analysis.plot_data import GarageSeries
from charged.sessions.derive import PHASES, usual_spacing_of

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def garage_figure(garage: GarageSeries, title: str) -> Figure:
    """(c) Total power (kW) of every connector and the current on each phase (A).

    At a tick where a charger was not read the totals are unknown: the lines break there, the
    tick is shaded, and what the chargers that were read drew is marked as a partial total.
    """
    if not garage.times:
        raise PlotError("no polls in that range; check --date (UTC) against the data")
    fig, (power_ax, amps_ax) = new_figure(rows=2)
    spacing = usual_spacing_of(garage.times)
    kw = [None if w is None else w / 1000.0 for w in garage.power_w]
    t, p = broken(garage.times, kw, spacing)
    power_ax.plot(t, p, color="#1f77b4", lw=1.5, label="total power (kW)")
    power_ax.fill_between(t, p, color="#1f77b4", alpha=0.15, lw=0)
    power_ax.set_ylabel("total power (kW)")
    for phase in PHASES:
        t, a = broken(garage.times, list(garage.phase_currents[phase]), spacing)
        amps_ax.plot(
            t, a, color=PHASE_COLOURS[phase], label=f"{phase} total (A)",
            solid_capstyle="butt", **phase_style(phase, len(t), scale=0.75),
        )  # fmt: skip
    amps_ax.set_ylabel("current per phase,\nall connectors (A)")
    labelled = False
    for ax in (power_ax, amps_ax):
        labelled = shade_gaps(ax, garage.times, spacing, labelled and ax is amps_ax)
    if garage.failed_ticks:
        half = timedelta(seconds=spacing / 2)
        for ax in (power_ax, amps_ax):
            for i, tick in enumerate(garage.failed_ticks):
                ax.axvspan(
                    x(tick - half), x(tick + half), color=GAP_COLOUR, alpha=0.25, lw=0,
                    label="charger not read: total unknown" if i == 0 and ax is power_ax else None,
                )  # fmt: skip
        partial = [
            (x(t), w / 1000.0)
            for t, w in zip(garage.times, garage.partial_power_w, strict=False)
            if w is not None
        ]
        if partial:
            power_ax.plot(
                [a for a, _ in partial],
                [b for _, b in partial],
                marker="o",
                ms=4,
                mfc="none",
                color=GAP_COLOUR,
                ls="none",
                label="partial total (chargers read)",
            )
    for ax in (power_ax, amps_ax):
        ax.set_ylim(bottom=0, top=1.05 * (ax.get_ylim()[1] or 1.0))
        ax.grid(True, alpha=0.3)
    handles = [h for ax in (power_ax, amps_ax) for h in ax.get_legend_handles_labels()[0]]
    legend_below(fig, handles, columns=3)
    time_axis(amps_ax)
    power_ax.set_title(title)
    return fig
