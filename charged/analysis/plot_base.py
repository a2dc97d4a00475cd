"""What every figure is drawn with: a matplotlib figure (the object API, no pyplot: no global
figure state), a time axis, lines broken and shaded where polling had a gap (never drawn across
it), the phases' styles, one legend below the axes (never over the data), and :func:`save`, which
writes a figure as PNG, SVG or PDF in the size (inches) and resolution asked for.

The figures themselves: :mod:`charged.analysis.plot_sessions` (a charger's sessions, one
session's phase currents) and :mod:`charged.analysis.plot_garage` (the whole garage over a day).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charged.sessions.derive import GAP_FACTOR, gap_spans

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS = (".png", ".svg", ".pdf")
EPOCH = datetime(1970, 1, 1)
MATPLOTLIB_MISSING = (
    "charged plot needs matplotlib: pip install matplotlib (in a checkout of charged: "
    "pip install '.[plot]')"
)
PHASE_COLOURS = {"L1": "#8c564b", "L2": "#222222", "L3": "#c8c8c8"}  # IEC brown, black, grey
# A three-phase car draws the same on each phase, and the garage's L2 and L3 carry the same
# three-phase cars: the lines are nested like a cable's cores, so equal lines stay visible.
# L1 is a wide pale band, L2 a black line inside it, L3 a grey dotted core on top of both,
# with a ring every few points (PHASE_MARKS along the line) that shows even when thin.
PHASE_STYLES: dict[str, dict[str, Any]] = {
    "L1": {"ls": "-", "lw": 6.0, "alpha": 0.5, "zorder": 2},
    "L2": {"ls": "-", "lw": 3.0, "alpha": 1.0, "zorder": 3},
    "L3": {
        "ls": (0, (1.2, 1.2)), "lw": 1.5, "alpha": 1.0, "zorder": 4,
        "marker": "o", "ms": 4.5, "mfc": "white", "mec": "#777777", "mew": 1.0,
    },
}  # fmt: skip
PHASE_MARKS = 40
GAP_COLOUR = "#d62728"
SIZE = (10.0, 5.4)
DPI = 100


class PlotError(Exception):
    """A figure that cannot be drawn: one line saying what to do."""


def new_figure(rows: int = 1) -> tuple[Figure, list[Axes]]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError(MATPLOTLIB_MISSING) from None
    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, list(axes)


def time_axis(ax: Axes) -> None:
    import matplotlib.dates as mdates

    # x values are date numbers (see x()); these read them as times.  Untyped in matplotlib.
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)")
    ax.grid(True, alpha=0.3)


def x(moment: datetime) -> float:
    """A time as matplotlib's date number (days since 1970-01-01)."""
    return (moment - EPOCH).total_seconds() / 86400.0


def broken(
    times: Sequence[datetime], values: Sequence[float | None], spacing: float
) -> tuple[list[float], list[float]]:
    """The series with a NaN put into every gap, so no line is drawn across it."""
    out_t: list[float] = []
    out_v: list[float] = []
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        if i and (t - times[i - 1]).total_seconds() > GAP_FACTOR * spacing:
            out_t.append(x(times[i - 1] + (t - times[i - 1]) / 2))
            out_v.append(math.nan)
        out_t.append(x(t))
        out_v.append(math.nan if v is None else v)
    return out_t, out_v


def shade_gaps(ax: Axes, times: Sequence[datetime], spacing: float, labelled: bool) -> bool:
    for a, b in gap_spans(times, spacing):
        ax.axvspan(
            x(a),
            x(b),
            color=GAP_COLOUR,
            alpha=0.12,
            lw=0,
            label=None if labelled else "not polled (gap)",
        )
        labelled = True
    return labelled


def legend_below(fig: Figure, handles: Sequence[Any], columns: int) -> None:
    """One legend for the figure, below its axes: inside, it would cover the data."""
    fig.legend(handles=list(handles), loc="outside lower center", ncols=columns, fontsize="small")


def phase_style(phase: str, points: int, scale: float = 1.0) -> dict[str, Any]:
    style = {**PHASE_STYLES[phase], "lw": PHASE_STYLES[phase]["lw"] * scale}
    if "marker" in style:
        style["markevery"] = max(1, points // PHASE_MARKS)
    return style


def save(
    fig: Figure,
    path: Path,
    *,
    size: tuple[float, float] | None = None,
    dpi: float | None = None,
) -> None:
    """Write ``fig`` as PNG, SVG or PDF (by the suffix); ``size`` in inches (width, height),
    ``dpi`` the resolution of a PNG (and of anything rasterised in a vector file)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise PlotError(f"cannot write {path.name}: name the file .png, .svg or .pdf")
    if size is not None:
        fig.set_size_inches(*size)
    if dpi is not None:
        fig.set_dpi(dpi)
    try:
        # dpi given as a number: "figure" would take the dpi the figure was created with
        fig.savefig(path, format=suffix[1:], dpi=fig.dpi)
    except OSError as exc:
        raise PlotError(f"cannot write {path}: {exc.strerror}; choose a writable path") from None
