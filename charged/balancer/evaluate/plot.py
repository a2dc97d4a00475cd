"""The evaluation's figures (matplotlib's object API, no pyplot), each for a paper:

- :func:`fuse_figure`: the current per site phase at every fuse against its limit, one row of
  panels per policy (``optimal`` too: its schedule's step means), a column per fuse, the same
  axes for every policy; each panel names its peak and its ampere-seconds above the limit.
- :func:`energy_figure`: energy served, the kWh delivered since the start per policy, with
  ``optimal`` and the energy asked by the cars arrived so far (what a policy could have
  delivered at most, had every car been full the moment it arrived).
- :func:`before_after_figure`: the README's garage figure (total power, each tick's mean, and
  the current per phase of the whole garage, here at its main fuse with the fuse's limit)
  under two policies side by side: before (``uncontrolled``) and after (``charged``).

Times are hours of the scenario's day in its own offset for runs of up to two days, days from
the first midnight beyond.  A run's ground truth of every second is drawn as the highest
current of each minute (of each 30-s tick for long runs, as the engine keeps it), so a spike
between two polls still shows and a vector file stays small.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timezone
from typing import TYPE_CHECKING

from charged.balancer.evaluate.engine import RunResult
from charged.balancer.evaluate.optimum import NOMINAL_VOLTAGE
from charged.balancer.evaluate.scenario import Scenario

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from charged.balancer.evaluate.optimum import Optimum

PHASES = ("L1", "L2", "L3")
# IEC L1 brown, L2 black, L3 grey; on a site wired L1L2L3 the three-phase cars put the same
# current on every phase, so the lines nest: L1 a wide pale band, L2 inside it, L3 dotted.
PHASE_STYLE = (
    {"color": "#8c564b", "lw": 2.4, "alpha": 0.55, "zorder": 2},
    {"color": "#222222", "lw": 1.0, "alpha": 1.0, "zorder": 3},
    {"color": "#9a9a9a", "lw": 1.0, "alpha": 1.0, "zorder": 4, "ls": (0, (1.5, 1.5))},
)
LIMIT_COLOUR = "#d62728"
POLICY_COLOURS = {
    "uncontrolled": "#7f7f7f",
    "equal-split": "#bcbd22",
    "evcc-like": "#ff7f0e",
    "round-robin": "#2ca02c",
    "charged": "#1f77b4",
    "charged-measured": "#17becf",
    "optimal": "#000000",
}
OPTIMAL = "optimal"
DRAW_WINDOW_S = 60  # per-second truth is drawn as the highest current of each minute
LONG_RUN_S = 2 * 86400


@dataclass(frozen=True, slots=True)
class Series:
    """One fuse's current per site phase over time, as drawn: values[p][k] from times[k]."""

    policy: str
    fuse: str
    limit: tuple[float, float, float]
    times: Sequence[float]
    values: tuple[Sequence[float], Sequence[float], Sequence[float]]
    peak: float  # the highest current of any phase (the truth's, not the drawn maximum)
    ampere_seconds_above: float


@dataclass(frozen=True, slots=True)
class TimeAxis:
    """Epoch seconds → the x value: hours of the day (runs up to two days), else days."""

    origin: float  # the first midnight in the scenario's offset
    tz: timezone
    long: bool

    @classmethod
    def of(cls, start: float, end: float, tz: timezone = UTC) -> TimeAxis:
        first = datetime.fromtimestamp(start, tz)
        midnight = first.replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(midnight.timestamp(), tz, end - start > LONG_RUN_S)

    def x(self, t: float) -> float:
        return (t - self.origin) / (86400.0 if self.long else 3600.0)

    def label(self) -> str:
        if self.long:
            return "day"
        offset = datetime.fromtimestamp(self.origin, self.tz).strftime("%z")
        name = "UTC" if offset in ("+0000", "") else f"UTC{offset[:3]}:{offset[3:]}"
        return f"time of day ({name}), h"

    def style(self, ax: Axes) -> None:
        from matplotlib.ticker import MultipleLocator

        if not self.long:
            ax.xaxis.set_major_locator(MultipleLocator(3))
        ax.grid(True, alpha=0.3)


# ---------------------------------------------------------------- series


def run_series(run: RunResult) -> list[Series]:
    """Every fuse of an engine run (traced), downsampled for drawing (peaks kept)."""
    out = []
    for trace in run.traces:
        truths = [run.truth.of(trace.fuse, p) for p in PHASES]
        times, values = _window_max(trace.times, trace.values)
        out.append(
            Series(
                policy=run.policy,
                fuse=trace.fuse,
                limit=trace.limit,
                times=times,
                values=values,
                peak=max(t.peak for t in truths),
                ampere_seconds_above=math.fsum(t.ampere_seconds_above for t in truths),
            )
        )
    return out


def optimum_series(optimum: Optimum) -> list[Series]:
    """Every fuse of the optimum's schedule: the mean current of each step."""
    fuses = list(dict.fromkeys(name for name, _ in optimum.columns))
    index = {fp: c for c, fp in enumerate(optimum.columns)}
    out = []
    for fuse in fuses:
        values = tuple([load[index[(fuse, p)]] for load in optimum.step_loads] for p in range(3))
        times, drawn = _with_gaps(optimum.step_times, optimum.step_s, values)
        out.append(
            Series(
                policy=OPTIMAL,
                fuse=fuse,
                limit=(
                    optimum.limits[(fuse, 0)],
                    optimum.limits[(fuse, 1)],
                    optimum.limits[(fuse, 2)],
                ),
                times=times,
                values=drawn,
                peak=max(optimum.peaks[(fuse, p)] for p in range(3)),
                ampere_seconds_above=0.0,
            )
        )
    return out


def _window_max(
    times: Sequence[int], values: tuple[Sequence[float], ...]
) -> tuple[list[float], tuple[list[float], list[float], list[float]]]:
    """Per-second samples → the highest of each DRAW_WINDOW_S; coarser samples as they are."""
    if len(times) < 2 or times[1] - times[0] >= DRAW_WINDOW_S:
        return [float(t) for t in times], (list(values[0]), list(values[1]), list(values[2]))
    step = DRAW_WINDOW_S // max(1, int(times[1] - times[0]))
    starts = [float(times[i]) for i in range(0, len(times), step)]
    maxima = tuple(
        [max(series[i : i + step]) for i in range(0, len(series), step)] for series in values
    )
    return starts, (maxima[0], maxima[1], maxima[2])


def _with_gaps(
    times: Sequence[int], step_s: int, values: tuple[list[float], ...]
) -> tuple[list[float], tuple[list[float], list[float], list[float]]]:
    """A step schedule with a 0 wherever no step was solved (nobody plugged in)."""
    out_t: list[float] = []
    out_v: tuple[list[float], list[float], list[float]] = ([], [], [])
    for k, t in enumerate(times):
        if out_t and t > out_t[-1] + step_s:
            out_t.append(out_t[-1] + step_s)
            for p in range(3):
                out_v[p].append(0.0)
        out_t.append(float(t))
        for p in range(3):
            out_v[p].append(values[p][k])
    if out_t:
        out_t.append(out_t[-1] + step_s)
        for p in range(3):
            out_v[p].append(0.0)
    return out_t, out_v


# ---------------------------------------------------------------- the figures


def fuse_figure(
    runs: Sequence[RunResult], optimum: Optimum | None = None, *, tz: timezone = UTC
) -> Figure:
    """Per-phase current at every fuse against its limit: a row per policy, same axes."""
    from matplotlib.figure import Figure

    rows = [run_series(r) for r in runs]
    if optimum is not None and optimum.step_loads:
        rows.append(optimum_series(optimum))
    if not rows:
        raise ValueError("nothing to draw: no policy run")
    axis = _axis(runs, optimum, tz)
    fuses = [s.fuse for s in rows[0]]
    top = 1.05 * max(max(max(s.peak, *s.limit) for s in row) for row in rows)
    figure = Figure(figsize=(3.6 * len(fuses) + 1.2, 1.7 * len(rows) + 1.0), layout="constrained")
    axes = figure.subplots(len(rows), len(fuses), sharex=True, sharey=True, squeeze=False)
    for r, row in enumerate(rows):
        for c, series in enumerate(row):
            ax = axes[r][c]
            _draw_phases(ax, axis, series)
            _draw_limit(ax, series.limit)
            above = f"{series.ampere_seconds_above:,.0f} A·s above"
            ax.text(
                0.01,
                0.97,
                f"peak {series.peak:.0f} A, {above}",
                transform=ax.transAxes,
                va="top",
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 1.5},
                fontsize=7,
                color=LIMIT_COLOUR if series.ampere_seconds_above > 0 else "#333333",
            )
            ax.set_ylim(0, top)
            axis.style(ax)
            if r == 0:
                ax.set_title(f"fuse {series.fuse}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{series.policy}\nA per phase", fontsize=8)
            if r == len(rows) - 1:
                ax.set_xlabel(axis.label(), fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8)
    return figure


def energy_figure(
    runs: Sequence[RunResult],
    scenario: Scenario,
    optimum: Optimum | None = None,
    *,
    tz: timezone = UTC,
) -> Figure:
    """Energy served: kWh delivered since the start per policy, with optimal and the ask."""
    from matplotlib.figure import Figure

    axis = _axis(runs, optimum, tz)
    asked = scenario.energy_asked_kwh or 1.0
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = figure.subplots()
    arrivals = sorted(scenario.visits, key=lambda v: v.arrival)
    xs, ys, total = [], [], 0.0
    for v in arrivals:
        xs.append(axis.x(v.arrival))
        ys.append(total)
        total += v.energy_kwh
        xs.append(axis.x(v.arrival))
        ys.append(total)
    if arrivals:
        xs.append(axis.x(scenario.end))
        ys.append(total)
    ax.plot(xs, ys, color="#555555", lw=1.0, ls="--", label="asked by the cars arrived")
    for run in runs:
        if not run.energy_kwh:
            continue
        final = run.energy_kwh[-1]
        ax.plot(
            [axis.x(t) for t in run.energy_times],
            run.energy_kwh,
            color=POLICY_COLOURS.get(run.policy),
            lw=2.0 if run.policy == "charged" else 1.2,
            label=f"{run.policy} ({100 * final / asked:.1f} %)",
        )
    if optimum is not None and optimum.step_loads:
        roots = [c for c, (fuse, _) in enumerate(optimum.columns) if fuse == optimum.columns[0][0]]
        per_step = optimum.step_s * NOMINAL_VOLTAGE / 3.6e6
        ox, oy, done = [], [], 0.0
        for t, load in zip(optimum.step_times, optimum.step_loads, strict=True):
            ox.append(axis.x(t))
            oy.append(done)
            done += sum(load[c] for c in roots) * per_step
        ox.append(axis.x(optimum.step_times[-1] + optimum.step_s))
        oy.append(done)
        ax.plot(
            ox,
            oy,
            color=POLICY_COLOURS[OPTIMAL],
            lw=1.0,
            ls=":",
            label=f"optimal ({100 * done / asked:.1f} %)",
        )
    ax.set_ylim(bottom=0)
    ax.set_ylabel("energy delivered since the start, kWh")
    ax.set_xlabel(axis.label())
    axis.style(ax)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{scenario.name}: energy served ({asked:,.1f} kWh asked)", fontsize=10)
    return figure


def before_after_figure(
    before: RunResult, after: RunResult, *, tz: timezone = UTC, fuse: str | None = None
) -> Figure:
    """The garage figure (total power; current per phase at the fuse, default the root,
    against its limit) under ``before`` and ``after``, side by side on the same axes."""
    from matplotlib.figure import Figure

    axis = _axis([before, after], None, tz)
    figure = Figure(figsize=(10.0, 5.4), layout="constrained")
    axes = figure.subplots(2, 2, sharex=True, sharey="row", squeeze=False)
    chosen = [_fuse_of(run_series(r), fuse) for r in (before, after)]
    top = 1.05 * max(max(s.peak, *s.limit) for s in chosen)
    for c, (run, series) in enumerate(zip((before, after), chosen, strict=True)):
        power_ax, amps_ax = axes[0][c], axes[1][c]
        # the mean power of every tick, from the energy through the root (exact, where the
        # drawn currents are each minute's highest)
        xs = [axis.x(t) for t in run.energy_times]
        kw = [
            (b - a) * 3600 / (t1 - t0)
            for (t0, a), (t1, b) in itertools.pairwise(
                zip(run.energy_times, run.energy_kwh, strict=True)
            )
        ]
        kw.append(0.0)
        power_ax.plot(xs, kw, drawstyle="steps-post", color="#1f77b4", lw=1.0)
        power_ax.fill_between(xs, kw, step="post", color="#1f77b4", alpha=0.15, lw=0)
        power_ax.set_ylim(bottom=0)
        word = "before" if c == 0 else "after"
        power_ax.set_title(f"{word}: {run.policy}", fontsize=10)
        _draw_phases(amps_ax, axis, series)
        _draw_limit(amps_ax, series.limit)
        amps_ax.set_ylim(0, top)
        amps_ax.text(
            0.01,
            0.97,
            f"peak {series.peak:.0f} A, {series.ampere_seconds_above:,.0f} A·s above",
            transform=amps_ax.transAxes,
            va="top",
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 1.5},
            fontsize=8,
            color=LIMIT_COLOUR if series.ampere_seconds_above > 0 else "#333333",
        )
        amps_ax.set_xlabel(axis.label())
        for ax in (power_ax, amps_ax):
            axis.style(ax)
    axes[0][0].set_ylabel("total power (kW)")
    for ax in axes[1]:
        ax.set_ylim(0, top)
    axes[1][0].set_ylabel(f"current per phase at\nfuse {chosen[0].fuse} (A)")
    handles, labels = axes[1][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=4)
    return figure


# ---------------------------------------------------------------- helpers


def _axis(runs: Sequence[RunResult], optimum: Optimum | None, tz: timezone) -> TimeAxis:
    if runs:
        return TimeAxis.of(runs[0].start, runs[0].end, tz)
    if optimum is not None and optimum.step_times:
        return TimeAxis.of(optimum.step_times[0], optimum.step_times[-1], tz)
    return TimeAxis.of(0, 0, tz)


def _fuse_of(series: list[Series], fuse: str | None) -> Series:
    if fuse is None:
        return series[0]
    for s in series:
        if s.fuse == fuse:
            return s
    raise ValueError(f"no fuse {fuse!r} in the run")


def _draw_phases(ax: Axes, axis: TimeAxis, series: Series) -> None:
    xs = [axis.x(t) for t in series.times]
    for p, values in enumerate(series.values):
        ax.plot(xs, values, drawstyle="steps-post", label=PHASES[p], **PHASE_STYLE[p])  # type: ignore[arg-type]


def _draw_limit(ax: Axes, limit: tuple[float, float, float]) -> None:
    if len(set(limit)) == 1:
        ax.axhline(limit[0], color=LIMIT_COLOUR, lw=0.9, label="fuse limit", zorder=5)
        return
    for p, amps in enumerate(limit):
        ax.axhline(
            amps, color=LIMIT_COLOUR, lw=0.9, ls=("-", "--", ":")[p], label=f"limit {PHASES[p]}"
        )
