"""``charged plan rotation``: read the loads, fit a plan on one part of the period, report on
the rest.

The loads come from the stored polls (``-c`` / ``--db`` / ``--db-url``), from a scenario file
or from the evaluation's generated garage (played uncontrolled through the engine,
:mod:`.loads`).  The plan is fitted on the steps before ``--fit-until`` (default: the middle
of the period, at the UTC midnight nearest to it when the period spans a day or more) and
reported on both parts, the check part being the one that shows whether the gain holds on data
the plan was not fitted on.  With visits (a scenario, or the stored sessions as visits) the
check part's visits are also played through the ``charged`` policy, the daemon's own
balancer, on today's wiring and on the plan, under the same fuses.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from charged.balancer.evaluate.engine import EngineParams, run
from charged.balancer.evaluate.generate import garage_day, garage_month
from charged.balancer.evaluate.policies import make_policy
from charged.balancer.evaluate.scenario import Scenario, ScenarioError, read_scenario
from charged.balancer.evaluate.sitefile import SiteFile, read_site_file
from charged.balancer.model import Rotation, Site
from charged.exits import EXIT_USAGE, Fatal
from charged.planning.loads import (
    PollLoads,
    loads_from_polls,
    loads_from_scenario,
    visits_from_sessions,
)
from charged.planning.problem import ALL, CYCLIC, Loads, PlanningError, problem_for
from charged.planning.report import (
    BalancerFigures,
    PeriodReport,
    balancer_lines,
    figures_table,
    moves,
    moves_table,
    period_report,
)
from charged.planning.rotation import Solution, SolverUnavailable, solve

DAY_S = 86400


@dataclass(frozen=True)
class Source:
    loads: Loads
    scenario: Scenario | None  # visits to replay through the balancer (None: none known)
    description: str


def say(text: str) -> None:
    print(f"charged: {text}", file=sys.stderr, flush=True)


def default_fit_until(loads: Loads) -> float:
    """The middle of the period; the UTC midnight nearest to it when the period spans a day
    or more (and data lies on both sides of it)."""
    first, last = float(loads.times[0]), float(loads.times[-1])
    middle = (first + last) / 2
    midnight = float(round(middle / DAY_S) * DAY_S)
    if last - first >= DAY_S and first < midnight <= last:
        return midnight
    return middle


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.replace(tzinfo=UTC).timestamp()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _within(scenario: Scenario, start: float | None, end: float | None) -> Scenario:
    visits = tuple(
        v
        for v in scenario.visits
        if (start is None or v.arrival >= start) and (end is None or v.arrival < end)
    )
    return replace(scenario, visits=visits)


def read_site(args: argparse.Namespace) -> SiteFile:
    path = args.site if args.site is not None else Path(args.config)
    try:
        return read_site_file(path)
    except ValueError as exc:
        hint = "" if args.site is not None else " (give --site SITE.yaml)"
        raise Fatal(f"{exc}{hint}", EXIT_USAGE) from None


async def read_source(args: argparse.Namespace, site_file: SiteFile) -> Source:
    since, until = _epoch(args.since), _epoch(args.until)
    ids = [c.id for c in site_file.site.chargers]
    if args.scenario is not None or args.generated is not None:
        if args.scenario is not None:
            try:
                scenario = read_scenario(args.scenario)
            except ScenarioError as exc:
                raise Fatal(str(exc), EXIT_USAGE) from None
        elif args.generated == "garage":
            scenario = garage_day(ids, seed=args.seed)
        else:
            scenario = garage_month(ids, seed=args.seed, days=args.days)
        scenario = _within(scenario, since, until)
        if not scenario.visits:
            raise Fatal(f"{scenario.name}: no visit in the period; widen --since/--until", 2)
        say(f"{scenario.name}: playing {len(scenario.visits)} visits uncontrolled for the loads")
        try:
            loads = loads_from_scenario(scenario, site_file.site)
        except ScenarioError as exc:
            raise Fatal(str(exc), EXIT_USAGE) from None
        return Source(
            loads,
            scenario,
            f"{scenario.name}, {len(scenario.visits)} visits played without a balancer "
            "(the currents are what the cars would draw)",
        )
    from charged.analysis.database import opened

    async with (
        opened(args, "measurement", "connector_status", "charging_session") as engine,
        engine.connect() as conn,
    ):
        polled: PollLoads = await loads_from_polls(conn, args.since, args.until, ids)
        sessions = await visits_from_sessions(conn, args.since, args.until, set(ids))
    if polled.ticks == 0:
        raise Fatal("no poll stored in the period; widen --since/--until", EXIT_USAGE)
    unread = f", {polled.unread} charger-ticks not read (counted as 0 A)" if polled.unread else ""
    return Source(polled.loads, sessions, f"stored polls ({polled.ticks} ticks{unread})")


def with_rotations(site_file: SiteFile, rotations: dict[str, Rotation]) -> SiteFile:
    """The same site wired otherwise, for the balancer and for the ground truth alike."""
    site = Site(
        site_file.site.root,
        tuple(
            replace(c, rotation=rotations.get(c.id, c.rotation)) for c in site_file.site.chargers
        ),
        site_file.site.margin,
    )
    grid = replace(
        site_file.grid,
        rotations={**site_file.grid.rotations, **{cp: str(r) for cp, r in rotations.items()}},
    )
    return SiteFile(site, site_file.params, grid)


def balancer_figures(scenario: Scenario, site_file: SiteFile) -> BalancerFigures:
    policy = make_policy("charged", site_file.site, site_file.params)
    result = run(scenario, site_file.site, policy, EngineParams(), wiring=site_file.grid)
    served = [s for s in result.sessions if s.fully_served]
    return BalancerFigures(
        energy_kwh=sum(s.delivered_kwh for s in result.sessions),
        asked_kwh=scenario.energy_asked_kwh,
        fully_served_pct=100.0 * len(served) / len(result.sessions) if result.sessions else 100.0,
        ampere_seconds_above=result.truth.ampere_seconds_above,
    )


async def cmd_rotation(args: argparse.Namespace) -> int:
    site_file = read_site(args)
    source = await read_source(args, site_file)
    loads = source.loads
    if loads.steps == 0:
        raise Fatal("no step in the period; widen --since/--until", EXIT_USAGE)
    chosen = _epoch(args.fit_until)
    fit_until = chosen if chosen is not None else default_fit_until(loads)
    fit, check = loads.between(None, fit_until), loads.between(fit_until, None)
    if fit.steps == 0 or check.steps == 0:
        raise Fatal(
            f"--fit-until {_iso(fit_until)} leaves no step to "
            f"{'fit on' if fit.steps == 0 else 'check on'} (the data runs "
            f"{_iso(float(loads.times[0]))} to {_iso(float(loads.times[-1]))})",
            EXIT_USAGE,
        )
    candidates = CYCLIC if args.rotations == "cyclic" else ALL
    try:
        problem = problem_for(site_file.site, fit, candidates)
    except PlanningError as exc:
        raise Fatal(str(exc), EXIT_USAGE) from None
    say(f"fitting on {fit.steps:,} steps before {_iso(fit_until)} (at most {args.time_limit:g} s)")
    try:
        solution = solve(problem, time_limit_s=args.time_limit)
    except SolverUnavailable as exc:
        raise Fatal(str(exc), EXIT_USAGE) from None
    plan = solution.rotations
    fit_report = period_report("fit", problem, plan, float(fit.times[0]), fit_until)
    check_problem = problem.on(check)
    check_end = float(check.times[-1] + check.seconds[-1])
    check_report = period_report("check", check_problem, plan, fit_until, check_end)
    if source.scenario is not None and not args.no_balancer:
        visits = _within(source.scenario, fit_until, None)
        if visits.visits:
            planned = with_rotations(site_file, dict(zip(loads.chargers, plan, strict=True)))
            say(f"the balancer on the check period's {len(visits.visits)} visits, today's wiring")
            today = balancer_figures(visits, site_file)
            say("the balancer on the same visits, planned wiring")
            after = balancer_figures(visits, planned)
            check_report = replace(
                check_report,
                balancer_today=today,
                balancer_plan=after,
                visits=len(visits.visits),
            )
    all_moves = moves(problem, plan)
    if args.json:
        print(json.dumps(as_json(source, args, solution, all_moves, (fit_report, check_report))))
    else:
        print_text(source, args, solution, all_moves, fit_report, check_report)
    if args.plot is not None:
        from charged.planning.plot import rotation_figure

        rotation_figure(check_problem, plan).savefig(args.plot, dpi=100)
        say(f"wrote {args.plot}")
    return 0


def print_text(
    source: Source,
    args: argparse.Namespace,
    solution: Solution,
    all_moves: Sequence[Any],
    fit: PeriodReport,
    check: PeriodReport,
) -> None:
    rewired = sum(1 for m in all_moves if m.changed)
    print(f"{source.description}; rotations: {args.rotations}")
    print(
        f"plan: {rewired} of {len(all_moves)} chargers rewired; {solution.method} "
        f"({solution.seconds:.0f} s, {solution.peak_steps} undominated steps, "
        f"{solution.peak_rows} of them as rows, {solution.balance_steps} unbalance steps)"
    )
    print()
    for line in moves_table(all_moves):
        print(line)
    for report, what in ((fit, "fitted on"), (check, "checked on: not seen by the plan")):
        print()
        print(
            f"{report.name}: {_iso(report.start)} to {_iso(report.end)}, "
            f"{report.steps:,} steps ({what})"
        )
        for line in figures_table(report):
            print(line)
        for line in balancer_lines(report):
            print(line)


def as_json(
    source: Source,
    args: argparse.Namespace,
    solution: Solution,
    all_moves: Sequence[Any],
    reports: Sequence[PeriodReport],
) -> dict[str, Any]:
    return {
        "source": source.description,
        "rotations": args.rotations,
        "solver": {
            "method": solution.method,
            "peakProven": solution.peak_proven,
            "unbalanceProven": solution.unbalance_proven,
            "fromHeuristic": solution.from_heuristic,
            "seconds": round(solution.seconds, 2),
            "undominatedSteps": solution.peak_steps,
            "peakRows": solution.peak_rows,
            "unbalanceSteps": solution.balance_steps,
        },
        "chargers": [m.as_json() for m in all_moves],
        "periods": [r.as_json() for r in reports],
    }
