"""``charged balance evaluate``: one scenario through several policies, the figures side by side.

The scenario is a CSV file (:mod:`.scenario`) or a generated garage (:mod:`.generate`) on the
site file's chargers; the site file is read for the policies by the balancer's own parser and
for the ground truth by the simulator's (:mod:`.sitefile`).  Every policy is run on the same
visits with the same seed (the same limit delays); ``optimal`` is the offline LP
(:mod:`.optimum`).  Prints the metrics of :mod:`.metrics`, one column per policy.

``--meters`` adds the building's own load (a meter series, :mod:`.meterseries`) and
``--prices`` a price series (:mod:`charged.prices.series`); ``generated`` for either takes the
garage's profile of :mod:`.generate` over the scenario's days.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from charged.balancer.evaluate.engine import EngineParams, RunResult, run
from charged.balancer.evaluate.generate import (
    building_load,
    garage_day,
    garage_month,
    price_series,
)
from charged.balancer.evaluate.meterseries import MeterSeries, read_meter_series
from charged.balancer.evaluate.metrics import Figures, figures
from charged.balancer.evaluate.optimum import Optimum, optimum_figures
from charged.balancer.evaluate.optimum_lp import Objective
from charged.balancer.evaluate.policies import POLICIES, PRICE_POLICY, make_policy
from charged.balancer.evaluate.power import PowerFigures
from charged.balancer.evaluate.scenario import Scenario, ScenarioError, read_scenario
from charged.balancer.evaluate.sitefile import SiteFile, differences, read_site_file
from charged.balancer.evaluate.target_policy import NAME as TARGET_POLICY
from charged.balancer.power_target import TargetSpec
from charged.exits import Fatal
from charged.prices.rule import DearHours
from charged.prices.series import PriceError, PriceSeries, read_price_file

OPTIMAL = "optimal"
# the offline optimum for each objective: the most energy (fairly), then at that energy the
# least cost or the lowest monthly hourly peak
OPTIMA: dict[str, Objective] = {OPTIMAL: "energy", "optimal-cost": "cost", "optimal-peak": "peak"}
NEED_PRICES = (PRICE_POLICY, "optimal-cost")
POLICY_NAMES = (*POLICIES, PRICE_POLICY, TARGET_POLICY, *OPTIMA)
GENERATED = ("garage", "garage-month")
EXIT_USAGE = 2
GENERATED_SERIES = "generated"


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a scenario runs against besides its visits."""

    meters: MeterSeries | None = None  # the building's own load
    prices: PriceSeries | None = None
    window_s: int = 3600  # the power-peak window


class EvaluateError(ValueError):
    """Bad input to ``balance evaluate``: one line, exit 2."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    scenario: Scenario
    site_file: SiteFile
    figures: tuple[Figures, ...]
    runs: tuple[RunResult, ...]  # the engine's runs (optimal has none)
    optimum: Optimum | None = None  # optimal's schedule, when it was asked for
    inputs: Inputs = Inputs()


def policy_list(text: str) -> list[str]:
    """``P[,P…]`` or ``all``: the names, in the order given, each once."""
    if text.strip() == "all":
        return list(POLICY_NAMES)
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if name not in POLICY_NAMES:
            raise EvaluateError(
                f"--policy: unknown policy {name!r}; choose from {', '.join(POLICY_NAMES)} or all"
            )
        if name not in names:
            names.append(name)
    return names


def limit_delay(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        pair = (int(low), int(high if sep else low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN-MAX seconds, e.g. 30-60") from None
    if not 0 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX seconds")
    return pair


def load_scenario(args: argparse.Namespace, site_file: SiteFile) -> Scenario:
    if args.scenario is not None:
        try:
            return read_scenario(args.scenario)
        except ScenarioError as exc:
            raise EvaluateError(str(exc)) from None
        except OSError as exc:
            raise EvaluateError(f"--scenario {args.scenario}: {exc.strerror or exc}") from None
    ids = [c.id for c in site_file.site.chargers]
    if not ids:
        raise EvaluateError("--generated: the site places no charger")
    if args.generated == "garage":
        return garage_day(ids, seed=args.seed)
    return garage_month(ids, seed=args.seed, days=args.days)


def load_inputs(args: argparse.Namespace, scenario: Scenario, site_file: SiteFile) -> Inputs:
    """--meters, --prices (a file, or ``generated``) and --peak-window."""
    meters: MeterSeries | None = None
    prices: PriceSeries | None = None
    if args.meters == GENERATED_SERIES:
        meters = building_load(scenario, site_file.site.root.name, seed=args.seed)
    elif args.meters is not None:
        try:
            meters = read_meter_series(args.meters)
            meters.check(site_file.site)
        except ScenarioError as exc:
            raise EvaluateError(f"--meters {exc}") from None
    if args.prices == GENERATED_SERIES:
        prices = price_series(scenario, seed=args.seed)
    elif args.prices is not None:
        try:
            prices = read_price_file(args.prices)
        except PriceError as exc:
            raise EvaluateError(f"--prices {exc}") from None
    return Inputs(meters=meters, prices=prices, window_s=args.peak_window * 60)


def evaluate(
    scenario: Scenario,
    site_file: SiteFile,
    names: Sequence[str],
    engine: EngineParams,
    *,
    inputs: Inputs | None = None,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    inputs = inputs or Inputs()
    results: list[Figures] = []
    runs: list[RunResult] = []
    optimum: Optimum | None = None
    for name in names:
        if progress is not None:
            progress(name)
        if name in OPTIMA:
            if name == "optimal-cost" and inputs.prices is None:
                raise EvaluateError("--policy optimal-cost needs a price series: --prices")
            found = _optimal(scenario, site_file, OPTIMA[name], inputs)
            if optimum is None or found.objective == "energy":
                optimum = found  # the figures draw the energy optimum's schedule
            results.append(
                optimum_figures(
                    found, window_s=inputs.window_s, tz=scenario.tz, prices=inputs.prices
                )
            )
            continue
        dear = None
        if name == PRICE_POLICY:
            if inputs.prices is None:
                raise EvaluateError(f"--policy {PRICE_POLICY} needs a price series: --prices")
            dear = DearHours(inputs.prices, site_file.price_rule)
        try:
            policy = make_policy(
                name, site_file.site, site_file.params, dear, target=site_file.target
            )
        except ValueError as exc:
            raise EvaluateError(f"--policy {name}: {exc}") from None
        try:
            result = run(
                scenario,
                site_file.site,
                policy,
                engine,
                wiring=site_file.grid,
                meters=inputs.meters,
            )
        except ScenarioError as exc:
            raise EvaluateError(str(exc)) from None
        runs.append(result)
        results.append(
            figures(result, window_s=inputs.window_s, tz=scenario.tz, prices=inputs.prices)
        )
    return Evaluation(scenario, site_file, tuple(results), tuple(runs), optimum, inputs)


def _optimal(
    scenario: Scenario, site_file: SiteFile, objective: Objective, inputs: Inputs
) -> Optimum:
    from charged.balancer.evaluate.optimum import OptimumUnavailable, solve

    try:
        return solve(
            scenario,
            site_file.site,
            objective=objective,
            meters=inputs.meters,
            prices=inputs.prices,
        )
    except OptimumUnavailable as exc:
        raise EvaluateError(str(exc)) from None
    except ScenarioError as exc:
        raise EvaluateError(str(exc)) from None


# ---------------------------------------------------------------- the table


def _num(value: float | int | None, spec: str = ",.0f") -> str:
    return "–" if value is None else format(value, spec)


def table(all_figures: Sequence[Figures], target: TargetSpec | None = None) -> list[list[str]]:
    """Rows of metric name then one cell per policy (the first row names the policies);
    ``target``: the site file's power target, for the row of each policy's highest window
    mean as a share of it (when its window is the table's)."""
    rows: list[list[str]] = [["", *(f.policy for f in all_figures)]]

    def row(label: str, cell: Callable[[Figures], str]) -> None:
        rows.append([label, *(cell(f) for f in all_figures)])

    row("A·s above any fuse", lambda f: _num(f.ampere_seconds_above))
    row("s above any fuse", lambda f: _num(f.seconds_above))
    first = all_figures[0]
    for n, fp in enumerate(first.fuses):
        label = f"{fp.fuse} {fp.phase} (limit {fp.limit:g} A)"
        rows.append([f"  {label}: A·s (s) above", *(_above(f, n) for f in all_figures)])
    for n, fp in enumerate(first.fuses):
        rows.append([f"  {fp.fuse} {fp.phase}: peak A", *(_peak(f, n) for f in all_figures)])
    row("energy kWh", lambda f: _num(f.energy_kwh, ",.1f"))
    row("energy % of asked", lambda f: _num(f.energy_pct, ".1f"))
    row("sessions fully served %", lambda f: _num(f.fully_served_pct, ".1f"))
    row("Jain's index (delivered/asked)", lambda f: _num(f.jain, ".3f"))
    row("lowest session ratio", lambda f: _num(f.lowest_ratio, ".2f"))
    row("writes per connector-hour", lambda f: _num(f.writes_per_connector_hour, ".2f"))
    row("pauses per session (max)", lambda f: _pauses(f))
    row("p95 plug-in to 6 A, s (room)", lambda f: _p95(f))
    row("p95 plug-in to 6 A, s (room free)", lambda f: _p95_free(f))
    row("phase unbalance at root A (%)", lambda f: f"{f.unbalance_a:.1f} ({f.unbalance_pct:.0f} %)")
    if any(f.power is not None for f in all_figures):
        _power_rows(all_figures, row, target)
    row("CPU per tick ms (p99)", lambda f: _cpu(f))
    row("run time s", lambda f: _num(f.run_s, ".1f"))
    return rows


def _power_rows(
    all_figures: Sequence[Figures],
    row: Callable[[str, Callable[[Figures], str]], None],
    target: TargetSpec | None,
) -> None:
    window_s = next(f.power.window_s for f in all_figures if f.power is not None)
    window = window_s // 60
    row(f"highest {window}-min mean power kW", lambda f: _kw(f, lambda p: p.window_peak_kw))
    if target is not None and target.window_s == window_s:
        target_kw = target.target_w / 1000

        def share(f: Figures) -> str:
            return _kw(f, lambda p: 100 * p.window_peak_kw / target_kw, ".1f") + (
                "" if f.power is None else " %"
            )

        row(f"  vs the {target_kw:g} kW target", share)
    row("monthly hourly peak kW", lambda f: _kw(f, lambda p: p.monthly_peak_kw))
    by_name = {f.policy: f for f in all_figures}
    for base in ("uncontrolled", "evcc-like"):
        ref = by_name.get(base)
        if ref is None or ref.power is None or ref.power.monthly_peak_kw <= 0:
            continue
        ref_kw = ref.power.monthly_peak_kw

        def change(f: Figures, ref_kw: float = ref_kw) -> str:
            if f.power is None:
                return "–"
            return f"{100 * (f.power.monthly_peak_kw - ref_kw) / ref_kw:+.1f} %"

        row(f"  monthly peak vs {base}", change)
    if any(f.power is not None and f.power.cost is not None for f in all_figures):
        row("chargers' energy cost", lambda f: _kw(f, lambda p: p.cost, ",.2f"))
        row("  per kWh", lambda f: _kw(f, lambda p: p.price_per_kwh, ".4f"))


def _kw(f: Figures, value: Callable[[PowerFigures], float | None], spec: str = ",.1f") -> str:
    return "–" if f.power is None else _num(value(f.power), spec)


def _above(f: Figures, n: int) -> str:
    if n >= len(f.fuses):
        return "–"
    fp = f.fuses[n]
    return f"{fp.ampere_seconds_above:,.0f} ({fp.seconds_above:,})"


def _peak(f: Figures, n: int) -> str:
    return "–" if n >= len(f.fuses) else f"{f.fuses[n].peak:.1f}"


def _pauses(f: Figures) -> str:
    if f.pauses_per_session is None:
        return "–"
    return f"{f.pauses_per_session:.2f} ({f.max_pauses})"


def _p95(f: Figures) -> str:
    if f.p95_first_6a_s is None:
        return "–"
    return f"{f.p95_first_6a_s:,.0f} (n={f.room_sessions})"


def _p95_free(f: Figures) -> str:
    if f.p95_first_6a_free_s is None:
        return "–"
    return f"{f.p95_first_6a_free_s:,.0f} (n={f.free_sessions})"


def _cpu(f: Figures) -> str:
    if f.cpu_per_tick_ms is None:
        return "–"
    return f"{f.cpu_per_tick_ms:.2f} ({_num(f.cpu_p99_tick_ms, '.2f')})"


def print_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=out)


def as_json(evaluation: Evaluation, names: Sequence[str]) -> dict[str, Any]:
    scenario = evaluation.scenario
    return {
        "scenario": scenario.name,
        "visits": len(scenario.visits),
        "energyAskedKwh": scenario.energy_asked_kwh,
        "policies": list(names),
        "peakWindowS": evaluation.inputs.window_s,
        "meters": evaluation.inputs.meters is not None,
        "prices": evaluation.inputs.prices is not None,
        "figures": [f.as_json() for f in evaluation.figures],
    }


# ---------------------------------------------------------------- the command


async def cmd_evaluate(args: argparse.Namespace) -> int:
    try:
        names = policy_list(args.policy)
        try:
            site_file = read_site_file(args.site)
        except ValueError as exc:
            raise EvaluateError(str(exc)) from None
        for line in differences(site_file.site, site_file.grid):
            print(f"charged: warning: {args.site}: {line}", file=sys.stderr)
        scenario = load_scenario(args, site_file)
        inputs = load_inputs(args, scenario, site_file)
        if args.policy.strip() == "all" and inputs.prices is None:
            for name in NEED_PRICES:  # all: the policies this scenario can run
                names.remove(name)
        if args.policy.strip() == "all" and site_file.target is None:
            names.remove(TARGET_POLICY)  # it needs site.power_target
        plots = [p for p in (args.plot, args.plot_energy) if p is not None]
        for path in plots:
            _check_plot(path)
        engine = EngineParams(limit_delay_s=args.limit_delay, seed=args.seed, trace=bool(plots))
        evaluation = evaluate(scenario, site_file, names, engine, inputs=inputs)
    except EvaluateError as exc:
        raise Fatal(str(exc), EXIT_USAGE) from None
    if args.json:
        print(json.dumps(as_json(evaluation, names), indent=2))
    else:
        print(
            f"{scenario.name}: {len(scenario.visits)} visits, "
            f"{scenario.energy_asked_kwh:,.1f} kWh asked, "
            f"{len(site_file.site.connector_keys())} connectors, limits acting "
            f"{args.limit_delay[0]}-{args.limit_delay[1]} s after a write"
        )
        print_table(table(evaluation.figures, site_file.target), sys.stdout)
    write_plots(evaluation, args.plot, args.plot_energy)
    return 0


def write_plots(evaluation: Evaluation, fuses: Path | None, energy: Path | None) -> None:
    """--plot (the fuses, a row per policy) and --plot-energy (energy served)."""
    from charged.balancer.evaluate.plot import energy_figure, fuse_figure

    tz = evaluation.scenario.tz
    if fuses is not None:
        if not evaluation.runs and evaluation.optimum is None:
            raise Fatal("--plot: no policy ran", EXIT_USAGE)
        _save(fuse_figure(evaluation.runs, evaluation.optimum, tz=tz), fuses)
    if energy is not None:
        figure = energy_figure(evaluation.runs, evaluation.scenario, evaluation.optimum, tz=tz)
        _save(figure, energy)


def _save(figure: Any, path: Path) -> None:
    try:
        figure.savefig(path, dpi=150)
    except OSError as exc:
        raise Fatal(f"cannot write {path}: {exc.strerror or exc}; choose a writable path") from None
    print(f"wrote {path}", file=sys.stderr)


def _check_plot(path: Path) -> None:
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise EvaluateError(f"--plot {path}: the file must end in .png, .svg or .pdf")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise EvaluateError("--plot needs matplotlib: pip install 'charged[plot]'") from None
