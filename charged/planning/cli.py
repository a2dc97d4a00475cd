"""`charged plan`: planning the garage's wiring from what it drew (`plan rotation`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "/etc/charged/config.yaml"


def add_plan_commands(subparsers: Any) -> None:
    from charged.analysis.arguments import parse_when

    plan = subparsers.add_parser(
        "plan",
        help="plan the wiring: each charger's phase rotation from what the garage drew",
        description="Plan changes to the garage's wiring from the data.",
    )
    sub = plan.add_subparsers(dest="plan_command", required=True, metavar="ACTION")
    rotation = sub.add_parser(
        "rotation",
        help="choose each charger's rotation to lower the highest site-phase current",
        description="Choose each charger's rotation (which site phase each of its terminals "
        "L1, L2, L3 is wired to) to minimise, per fuse of the site, the highest site-phase "
        "current over the period (summed over the fuses as a share of each fuse's limit), "
        "then the phase unbalance; a charger is rewired only for a gain. The loads are what "
        "each charger's terminals drew: the stored polls (-c, --db or --db-url), or a "
        "scenario (--scenario, --generated) played without a balancer. The plan is fitted "
        "on the steps before --fit-until and checked on the rest: a table per charger "
        "(today, plan, what moves), then per fuse and phase the peak and 95th percentile "
        "with each wiring, the unbalance, and what the balancer (the charged policy of "
        "`charged balance evaluate`) delivers under the same fuses on the check period's "
        "visits with each wiring (the stored sessions as visits, for polls). Exact by an "
        "integer program (SciPy's HiGHS) when it is proven within --time-limit; beyond it, "
        "the better of its best and a greedy placement with local search, as printed.",
        epilog="Needs SciPy (pip install 'charged[evaluate]'); --plot needs matplotlib. "
        "A week of the 30-charger garage takes about 3 minutes, two of them the balancer's "
        "runs (--no-balancer skips them). Exit codes: 0 printed, 1 error, 2 bad arguments, "
        "data or site file, 69 database unreachable, 78 bad configuration.",
    )
    rotation.add_argument(
        "-c",
        "--config",
        default=os.environ.get("CHARGED_CONFIG", DEFAULT_CONFIG),
        help="config file: its database (for the polls) and, without --site, its site: "
        f"section (default: $CHARGED_CONFIG or {DEFAULT_CONFIG})",
    )
    where = rotation.add_mutually_exclusive_group()
    where.add_argument("--db-url", metavar="URL", help="database URL instead of the config's")
    where.add_argument("--db", type=Path, metavar="FILE", help="an SQLite file")
    where.add_argument("--scenario", type=Path, metavar="FILE", help="a CSV of visits")
    where.add_argument(
        "--generated",
        choices=("garage", "garage-month"),
        help="the evaluation's simulated garage: a weekday, or --days days from it",
    )
    rotation.add_argument(
        "--site",
        type=Path,
        metavar="SITE.yaml",
        help="fuse tree and today's rotations (as for balance evaluate; default: the config)",
    )
    rotation.add_argument(
        "--since", type=parse_when, metavar="T", help="from this UTC date/time on"
    )
    rotation.add_argument("--until", type=parse_when, metavar="T", help="before this UTC time")
    rotation.add_argument(
        "--fit-until",
        type=parse_when,
        metavar="T",
        help="fit on the steps before T, check on the rest (default: the middle of the "
        "period, at the UTC midnight nearest to it when it spans a day or more)",
    )
    rotation.add_argument(
        "--rotations",
        choices=("cyclic", "all"),
        default="cyclic",
        help="cyclic (default): L1L2L3, L2L3L1, L3L1L2, which keep the phase sequence; "
        "all: the six orders",
    )
    rotation.add_argument(
        "--time-limit",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="seconds for the solver (default 60)",
    )
    rotation.add_argument("--seed", type=int, default=1, help="of --generated (default 1)")
    rotation.add_argument(
        "--days", type=_positive_int, default=14, help="days of garage-month (default 14)"
    )
    rotation.add_argument(
        "--no-balancer",
        action="store_true",
        help="skip replaying the check period through the balancer",
    )
    rotation.add_argument("--json", action="store_true", help="print JSON for scripts")
    rotation.add_argument(
        "--plot",
        type=Path,
        metavar="OUT.png",
        help="draw every fuse's phase currents over the check period, today vs plan",
    )
    rotation.set_defaults(control_handler=_rotation)


async def _rotation(args: argparse.Namespace) -> int:
    from charged.exits import EXIT_USAGE, Fatal

    if args.plot is not None:
        if args.plot.suffix.lower() not in (".png", ".svg", ".pdf"):
            raise Fatal(f"--plot {args.plot}: the file must end in .png, .svg or .pdf", EXIT_USAGE)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise Fatal(
                "--plot needs matplotlib: pip install 'charged[plot]'", EXIT_USAGE
            ) from None
    from charged.planning.command import cmd_rotation

    return await cmd_rotation(args)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value
