"""The figures, drawn with matplotlib's object API (no pyplot: no global figure state).

(a) :func:`energy_power_figure` — sessions of a charger (or one session): energy in kWh on the
    left axis, power in W on the right, one colour per session, start ▲ and end ■ marked.
(b) :func:`phase_currents_figure` — L1/L2/L3 currents of one session with the max-current
    limit from the control_action audit overlaid.
(c) :func:`garage_figure` — the whole garage over a day: total power and per-phase current.

Lines are broken where polling had a gap (never drawn across it), and gaps are shaded; the
time the charger was offline (charge_point_availability) is hatched over them.
Legends sit below the axes, never over the data.  Written as PNG, SVG or PDF; the size (in
inches) and the resolution can be chosen when saving (:func:`save`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charged.analysis.availability import OfflineSpan
from charged.analysis.plot_data import GarageSeries, SessionSeries
from charged.sessions.derive import GAP_FACTOR, PHASES, gap_spans, usual_spacing_of

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
LIMIT_COLOUR = "#d62728"
IDLE_COLOUR = "#7f7f7f"
HEADROOM = 1.3  # room above the data for the limit's labels
# A label inside a span of the limit (its value, "no limit") only where the span is at least
# this share of the time axis: in a narrower one it would run over its neighbours.
MIN_LABEL_SHARE = 0.12
GAP_COLOUR = "#d62728"
OFFLINE_COLOUR = "#555555"
SIZE = (10.0, 5.4)
DPI = 100


class PlotError(Exception):
    """A figure that cannot be drawn: one line saying what to do."""


def _figure(rows: int = 1) -> tuple[Figure, list[Axes]]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError(MATPLOTLIB_MISSING) from None
    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, list(axes)


def _time_axis(ax: Axes) -> None:
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


def _shade_gaps(ax: Axes, times: Sequence[datetime], spacing: float, labelled: bool) -> bool:
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


def _shade_unseen(
    ax: Axes, start: datetime | None, times: Sequence[datetime], spacing: float, labelled: bool
) -> bool:
    """A session begun before the collector saw it: that time is marked like any other gap."""
    if start is None or not times or (times[0] - start).total_seconds() <= GAP_FACTOR * spacing:
        return labelled
    ax.axvspan(
        x(start), x(times[0]), color=GAP_COLOUR, alpha=0.12, lw=0,
        label=None if labelled else "not polled (gap)",
    )  # fmt: skip
    return True


def _shade_offline(ax: Axes, spans: Sequence[OfflineSpan], begin: datetime, end: datetime) -> None:
    """The charger's offline spans within [begin, end] (the time the figure shows), hatched:
    a gap of the polls shaded beneath it then says why nothing was read."""
    labelled = False
    for span in spans:
        a, b = max(span.start, begin), min(span.end or end, end)
        if b <= a:
            continue
        ax.axvspan(
            x(a), x(b), facecolor="none", edgecolor=OFFLINE_COLOUR, hatch="//", lw=0,
            label=None if labelled else "charger offline",
        )  # fmt: skip
        labelled = True


def _rollup_note(series: Sequence[SessionSeries]) -> str:
    """Said in the title when a session's raw polls are gone and the rollups are drawn."""
    if any(s.from_rollups for s in series):
        return "\nper quarter hour, from the rollups (the raw polls are past retention.raw_days)"
    return ""


def _session_label(row: dict[str, Any]) -> str:
    phases = {1: "1-phase", 2: "2-phase", 3: "3-phase"}.get(row["phases"] or 0, "phases ?")
    energy = row["energy_kwh"]
    kwh = "?" if energy is None else f"{energy:.2f}"
    return f"session {row['session_id']} (conn. {row['connector_id']}, {phases}): {kwh} kWh"


def energy_power_figure(
    series: Sequence[SessionSeries], title: str, offline: Sequence[OfflineSpan] = ()
) -> Figure:
    """(a) Energy (kWh, left, solid) and power (W, right, dashed), one colour per session;
    ``offline``: the charger's offline spans, hatched where they meet the sessions' time."""
    if not series:
        raise PlotError(
            "no sessions in that range; widen --date or --since/--until, check --charger"
        )
    fig, (ax,) = _figure()
    power_ax = ax.twinx()
    colours = _colours(len(series))
    gap_labelled = False
    for s, colour in zip(series, colours, strict=True):
        row = s.session
        spacing = usual_spacing_of(s.times)
        t, e = broken(s.times, s.energy_kwh, spacing)
        ax.plot(t, e, color=colour, lw=2, label=_session_label(row))
        t, p = broken(s.times, s.power_w, spacing)
        power_ax.step(t, p, where="post", color=colour, lw=1, ls="--", alpha=0.8)
        gap_labelled = _shade_gaps(ax, s.times, spacing, gap_labelled)
        start, end = row["start_time"], row["end_time"]
        gap_labelled = _shade_unseen(ax, start, s.times, spacing, gap_labelled)
        # markers on the axis line: drawn whole, not cut in half by the plot's edge
        if start is not None:
            ax.plot(
                [x(start)], [0.0], marker="^", ms=9, color=colour, ls="none", clip_on=False,
                zorder=5,
            )  # fmt: skip
        if end is not None:
            final = row["energy_kwh"] if row["energy_kwh"] is not None else _last(s.energy_kwh)
            ax.plot(
                [x(end)], [final or 0.0], marker="s", ms=8, color=colour, ls="none",
                clip_on=False, zorder=5,
            )  # fmt: skip
    moments = [t for s in series for t in s.times]
    moments += [m for s in series for m in (s.session["start_time"], s.session["end_time"]) if m]
    if moments:
        _shade_offline(ax, offline, min(moments), max(moments))
    ax.set_ylabel("energy of the session (kWh)")
    power_ax.set_ylabel("power, ∑ current × voltage (W)")
    ax.set_ylim(0, 1.05 * _top(v for s in series for v in s.energy_kwh))
    power_ax.set_ylim(0, 1.05 * _top(v for s in series for v in s.power_w))
    _time_axis(ax)
    _legend_with_styles(ax)
    ax.set_title(title + _rollup_note(series))
    return fig


def phase_currents_figure(
    series: SessionSeries,
    limits: Sequence[tuple[datetime | None, float | None]],
    title: str,
    offline: Sequence[OfflineSpan] = (),
) -> Figure:
    """(b) L1/L2/L3 currents of one session, the audited max-current limit overlaid.

    The limit is drawn above the currents (a capped car draws just under it, so its line
    would otherwise hide in theirs), the time a limit was in force is shaded, and a stretch
    without a limit says so.  The time the car stayed plugged in after charging is marked.
    """
    if not series.times:
        raise PlotError(
            f"session {series.session['session_id']} has no polls stored (only the vendor "
            "knows it); pick another session"
        )
    fig, (ax,) = _figure()
    spacing = usual_spacing_of(series.times)
    for phase in PHASES:
        t, i = broken(series.times, series.phase_currents[phase], spacing)
        ax.step(
            t,
            i,
            where="post",
            color=PHASE_COLOURS[phase],
            label=f"{phase} (A)",
            solid_capstyle="butt",
            **_phase_style(phase, len(t)),
        )
    row = series.session
    labelled = _shade_gaps(ax, series.times, spacing, False)
    _shade_unseen(ax, row["start_time"], series.times, spacing, labelled)
    begin = series.times[0]
    end = max(series.times[-1], row["end_time"] or series.times[-1])
    steps = _limit_steps(limits, begin, end)
    extra = []
    if steps:
        _draw_limit(ax, steps)
    else:
        from matplotlib.lines import Line2D

        extra.append(
            Line2D([], [], ls="none", label="max-current limit: no change audited (control_action)")
        )
    _shade_offline(ax, offline, min(begin, row["start_time"] or begin), end)
    _mark_idle_after(ax, row, series.times[-1])
    for moment, mark in ((row["start_time"], "session start"), (row["end_time"], "session end")):
        if moment is not None:
            ax.axvline(x(moment), color="#1f77b4", lw=1, ls="--")
            ax.annotate(
                mark,
                (x(moment), 0.5),
                xycoords=("data", "axes fraction"),
                rotation=90,
                ha="right",
                va="center",
                color="#1f77b4",
            )
    ax.set_ylabel("current per phase (A)")
    limit_values = [v for _, v in steps if v is not None]
    ax.set_ylim(
        0,
        HEADROOM * _top([*(v for c in series.phase_currents.values() for v in c), *limit_values]),
    )
    _time_axis(ax)
    handles, _ = ax.get_legend_handles_labels()
    _legend_below(fig, [*handles, *extra], columns=3)
    ax.set_title(title + _rollup_note([series]))
    return fig


def _legend_below(fig: Figure, handles: Sequence[Any], columns: int) -> None:
    """One legend for the figure, below its axes: inside, it would cover the data."""
    fig.legend(handles=list(handles), loc="outside lower center", ncols=columns, fontsize="small")


def _phase_style(phase: str, points: int, scale: float = 1.0) -> dict[str, Any]:
    style = {**PHASE_STYLES[phase], "lw": PHASE_STYLES[phase]["lw"] * scale}
    if "marker" in style:
        style["markevery"] = max(1, points // PHASE_MARKS)
    return style


def _draw_limit(ax: Axes, steps: Sequence[tuple[datetime, float | None]]) -> None:
    """The limit as a step line on top, its spans shaded, "no limit" written where none."""
    t = [x(s[0]) for s in steps]
    v = [math.nan if s[1] is None else s[1] for s in steps]
    ax.step(
        t, v, where="post", color=LIMIT_COLOUR, lw=2.2, ls=(0, (4, 2)), zorder=6,
        label="max-current limit (A)",
    )  # fmt: skip
    shaded = False
    total = (steps[-1][0] - steps[0][0]).total_seconds()
    labelled = _labelled_spans(steps, total)
    for index, ((a, value), (b, _)) in enumerate(itertools.pairwise(steps)):
        if b <= a:
            continue
        if value is None:
            if index not in labelled:
                continue
            ax.annotate(
                "no limit",
                ((x(a) + x(b)) / 2, 0.97),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="top",
                color=LIMIT_COLOUR,
                fontsize="small",
            )
        else:
            ax.axvspan(
                x(a), x(b), color=LIMIT_COLOUR, alpha=0.07, lw=0, zorder=0,
                label=None if shaded else "limit in force",
            )  # fmt: skip
            shaded = True
            if index not in labelled:
                continue
            ax.annotate(
                f"limit {value:g} A",
                ((x(a) + x(b)) / 2, value),
                xytext=(0, 6),
                textcoords="offset points",
                ha="center",
                va="bottom",
                color=LIMIT_COLOUR,
                fontsize="small",
                zorder=7,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
            )


def _labelled_spans(steps: Sequence[tuple[datetime, float | None]], total: float) -> set[int]:
    """Which spans get a label: those wide enough to hold one.

    A short session whose limit changed twice has spans of a poll or two: labelled each, the
    texts ran into one another; the legend and the axis say what they hold."""
    return {
        index
        for index, ((a, _), (b, _)) in enumerate(itertools.pairwise(steps))
        if total > 0 and (b - a).total_seconds() >= MIN_LABEL_SHARE * total
    }


def _mark_idle_after(ax: Axes, row: dict[str, Any], last_poll: datetime) -> None:
    """Shade the time the car stayed plugged in without charging at the session's end."""
    idle = row.get("idle_after_s") or 0.0
    until = row["end_time"] or last_poll
    if idle < 60 or until is None:
        return
    since = until - timedelta(seconds=idle)
    ax.axvspan(x(since), x(until), color=IDLE_COLOUR, alpha=0.10, lw=0, zorder=0)
    ax.annotate(
        f"plugged in, not charging\n{_duration(idle)}",
        ((x(since) + x(until)) / 2, 0.5),
        xycoords=("data", "axes fraction"),
        ha="center",
        va="center",
        color="#555555",
    )


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def garage_figure(garage: GarageSeries, title: str) -> Figure:
    """(c) Total power (kW) of every connector and the current on each phase (A).

    At a tick where a charger was not read the totals are unknown: the lines break there, the
    tick is shaded, and what the chargers that were read drew is marked as a partial total.
    """
    if not garage.times:
        raise PlotError("no polls in that range; check --date (UTC) against the data")
    fig, (power_ax, amps_ax) = _figure(rows=2)
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
            solid_capstyle="butt", **_phase_style(phase, len(t), scale=0.75),
        )  # fmt: skip
    amps_ax.set_ylabel("current per phase,\nall connectors (A)")
    labelled = False
    for ax in (power_ax, amps_ax):
        labelled = _shade_gaps(ax, garage.times, spacing, labelled and ax is amps_ax)
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
    _legend_below(fig, handles, columns=3)
    _time_axis(amps_ax)
    power_ax.set_title(title)
    return fig


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


def _limit_steps(
    limits: Sequence[tuple[datetime | None, float | None]], begin: datetime, end: datetime
) -> list[tuple[datetime, float | None]]:
    """The limit as steps over [begin, end]: the value in force at begin, then each change."""
    if not limits:
        return []
    current = limits[0][1]
    steps: list[tuple[datetime, float | None]] = []
    for when, value in limits[1:]:
        assert when is not None
        if when <= begin:
            current = value
        elif when <= end:
            steps.append((when, value))
    return [(begin, current), *steps, (end, steps[-1][1] if steps else current)]


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _top(values: Iterable[float | None]) -> float:
    """The largest value (1 when there is none), for the axis range."""
    found = [v for v in values if v is not None and not math.isnan(v)]
    return max(found) if found and max(found) > 0 else 1.0


def _last(values: Sequence[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


def _legend_with_styles(ax: Axes) -> None:
    from matplotlib.lines import Line2D

    handles, _ = ax.get_legend_handles_labels()
    keys = [
        Line2D([], [], color="black", lw=2, label="energy (kWh, left)"),
        Line2D([], [], color="black", lw=1, ls="--", label="power (W, right)"),
        Line2D([], [], color="black", marker="^", ls="none", label="start"),
        Line2D([], [], color="black", marker="s", ls="none", label="end"),
    ]
    # below the axes: inside, it would hide the lines of a busy morning
    figure = ax.get_figure()
    assert figure is not None
    _legend_below(figure, [*handles, *keys], columns=3)  # type: ignore[arg-type]
