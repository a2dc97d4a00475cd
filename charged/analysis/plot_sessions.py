"""The figures of charging sessions.

(a) :func:`energy_power_figure` — sessions of a charger (or one session): energy in kWh on the
    left axis, power in W on the right, one colour per session, start ▲ and end ■ marked.
(b) :func:`phase_currents_figure` — L1/L2/L3 currents of one session with the max-current
    limit from the control_action audit overlaid.

Gaps of the polls are shaded (:mod:`charged.analysis.plot_base`); the time the charger was
offline (charge_point_availability) is hatched over them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from charged.analysis.availability import OfflineSpan
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
from charged.analysis.plot_data import SessionSeries
from charged.sessions.derive import GAP_FACTOR, PHASES, usual_spacing_of

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LIMIT_COLOUR = "#d62728"
IDLE_COLOUR = "#7f7f7f"
HEADROOM = 1.3  # room above the data for the limit's labels
# A label inside a span of the limit (its value, "no limit") only where the span is at least
# this share of the time axis: in a narrower one it would run over its neighbours.
MIN_LABEL_SHARE = 0.12
OFFLINE_COLOUR = "#555555"


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
    fig, (ax,) = new_figure()
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
        gap_labelled = shade_gaps(ax, s.times, spacing, gap_labelled)
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
    time_axis(ax)
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
    fig, (ax,) = new_figure()
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
            **phase_style(phase, len(t)),
        )
    row = series.session
    labelled = shade_gaps(ax, series.times, spacing, False)
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
    time_axis(ax)
    handles, _ = ax.get_legend_handles_labels()
    legend_below(fig, [*handles, *extra], columns=3)
    ax.set_title(title + _rollup_note([series]))
    return fig


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
    legend_below(figure, [*handles, *keys], columns=3)  # type: ignore[arg-type]
