"""`charged balance`: what the balancer sees and decided, and releasing a person's pin.

``status`` prints the newest balancer step from the database (``balancer_fuse`` and
``balancer_decision``, written by the daemon in shadow and active mode alike): every fuse of
the tree with, per site phase, its limit, the envelope of the limits in force, the measured
current and the headroom left (capacity, i.e. limit minus margin, minus envelope); with a
power target, its window (``power_window``); then the connectors that are paused, pinned or
offline (read and printed by :mod:`.status`).  ``release CP CONNECTOR`` ends a person's pin
(a ``balancer_release`` row in the audit table): the balancer drives the connector again from
its next tick.  Other sub-commands (``evaluate``, ``scenario``) register here too.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
DEFAULT_CONFIG = "/etc/charged/config.yaml"
EXIT_USAGE = 2
EXIT_NO_DATA = 1


def add_balance_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``charged balance`` and its sub-commands; returns the group's parser so that other
    packages can add theirs (``balance_subparsers`` on it)."""
    balance: argparse.ArgumentParser = subparsers.add_parser(
        "balance",
        help="the load balancer: status, release a pinned connector",
        description="The phase-aware load balancer (balancer.mode in the config).",
    )
    sub = balance.add_subparsers(dest="balance_command", required=True, metavar="ACTION")
    balance.set_defaults(balance_subparsers=sub)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "-c",
            "--config",
            default=os.environ.get("CHARGED_CONFIG", DEFAULT_CONFIG),
            help=f"YAML config file (default: $CHARGED_CONFIG or {DEFAULT_CONFIG})",
        )

    status = sub.add_parser(
        "status",
        help="the fuse tree with per-phase limit, envelope, measured current and headroom",
        description="Print the newest balancer step stored in the database: per fuse and "
        "site phase the limit, the envelope of the limits in force (each unconfirmed change "
        "at the higher of old and new), the measured current and the headroom (limit minus "
        "margin minus envelope); with site.power_target, the window's energy used, the "
        "target in force, the month's peak and the cap on the chargers; then paused, pinned "
        "and offline connectors.",
        epilog="Exit codes: 0 printed, 1 no balancer step stored yet, 69 database "
        "unreachable, 78 bad configuration.",
    )
    common(status)
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    status.set_defaults(control_handler=cmd_status)

    release = sub.add_parser(
        "release",
        help="let the balancer drive a connector a person set again",
        description="End a person's pin on a connector (set through `charged settings`, the "
        "control API or the vendor's app): the balancer drives it again from its next tick. "
        "Audited in control_action (action balancer_release).",
        epilog="Exit codes: 0 released, 2 bad arguments, 69 database unreachable, 78 bad "
        "configuration.",
    )
    common(release)
    release.add_argument("charger", metavar="CP", help="charge point id")
    release.add_argument("connector", metavar="CONNECTOR", type=_connector, help="1 or 2")
    release.set_defaults(control_handler=cmd_release)
    _add_evaluate(sub)
    _add_scenario(sub, common)
    return balance


def _add_evaluate(sub: Any) -> None:
    from charged.balancer.evaluate.command import GENERATED, POLICY_NAMES, limit_delay

    evaluate = sub.add_parser(
        "evaluate",
        help="replay a day of visits through balancing policies, side by side",
        description="Replay a scenario (a CSV of visits, or a generated garage on the site's "
        "chargers) through each policy on the simulator's physics, with no HTTP and a "
        "simulated clock (polls every 30 s, each written limit acting --limit-delay seconds "
        "later, the ground truth every simulated second), and print the figures of each "
        "side by side: ampere-seconds, seconds and peak per fuse and phase, energy and its "
        "share of what was asked, sessions fully served, Jain's index, the lowest session's "
        "share, setpoint writes, pauses, the time to the first 6 A, phase unbalance, CPU; "
        "with a building's meter series or a price series, the highest window and monthly "
        "hourly power at the root fuse and the chargers' energy cost.",
        epilog="The site file is read by the balancer's own parser for the policies (a site: "
        "section and an optional balancer: section, as in the config, or the site keys "
        "alone) and by the simulator's for the ground truth. Policies: "
        f"{', '.join(POLICY_NAMES)}; optimal needs SciPy (pip install 'charged[evaluate]'). "
        "Exit codes: 0 printed, 2 bad arguments, a bad scenario or site file.",
    )
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--scenario", type=Path, metavar="FILE", help="CSV of visits")
    source.add_argument(
        "--generated",
        choices=GENERATED,
        help="the simulated garage: a weekday (garage) or --days days from it (garage-month)",
    )
    evaluate.add_argument(
        "--site", type=Path, required=True, metavar="SITE.yaml", help="fuse tree, rotations"
    )
    evaluate.add_argument(
        "--policy",
        default="all",
        metavar="P[,P...]",
        help=f"comma-separated, or all (default; without --prices it leaves out those that "
        f"need prices, without site.power_target in the site file charged-target): "
        f"{', '.join(POLICY_NAMES)}",
    )
    evaluate.add_argument("--seed", type=int, default=1, help="generated visits and delays")
    evaluate.add_argument(
        "--days", type=_positive_int, default=30, help="days of garage-month (default 30)"
    )
    evaluate.add_argument(
        "--limit-delay",
        type=limit_delay,
        default=(30, 60),
        metavar="MIN-MAX",
        help="seconds from a write to the car following it, drawn per write (default 30-60)",
    )
    evaluate.add_argument(
        "--meters",
        metavar="FILE|generated",
        help="the building's own load per metered fuse and phase over time (CSV: time, fuse, "
        "l1, l2, l3 in A; README), counted in the fuses' current and shown to the policies as "
        "the site meters would; generated: the garage's office-building profile on the root "
        "fuse over the scenario's days",
    )
    evaluate.add_argument(
        "--prices",
        metavar="FILE|generated",
        help="energy prices over time (CSV: start, price in currency/kWh, hourly or 15-min; "
        "README) for the cost figures and charged-price; generated: the garage's stylised "
        "day-ahead profile",
    )
    evaluate.add_argument(
        "--peak-window",
        type=int,
        choices=(15, 60),
        default=60,
        metavar="MIN",
        help="minutes of the clock window whose highest mean power is reported (15 or 60, "
        "default 60); the monthly peak is always hourly",
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON for scripts")
    evaluate.add_argument(
        "--plot",
        type=Path,
        metavar="OUT.png",
        help="per-phase current at every fuse against its limit, a row per policy, the same "
        "axes (.png, .svg or .pdf; needs matplotlib)",
    )
    evaluate.add_argument(
        "--plot-energy",
        type=Path,
        metavar="OUT.png",
        help="energy served: kWh delivered since the start per policy, with optimal and the "
        "energy asked by the cars arrived (.png, .svg or .pdf)",
    )
    evaluate.set_defaults(control_handler=_evaluate)


def _add_scenario(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    from charged.analysis.arguments import parse_day

    scenario = sub.add_parser(
        "scenario",
        help="write a scenario CSV (for `balance evaluate`) from a day charged recorded",
        description="Write the visits of one UTC day as a scenario file for `charged balance "
        "evaluate --scenario`: one row per charging session that began that day, on its own "
        "charger and connector; arrival and departure from the session (its last poll while "
        "it still runs), energy from the session, phases and max current (the highest the "
        "polls measured) from the polls. Energy and current are what the cars took and drew "
        "that day: a day held back by the fuses asks no more than it delivered. New polls are "
        "folded into the sessions first unless --no-update.",
        epilog="Exit codes: 0 written, 1 no session began that day, 2 bad arguments, 69 "
        "database unreachable, 78 bad configuration.",
    )
    common(scenario)
    scenario.add_argument(
        "--from-db",
        metavar="URL",
        help="a database URL (e.g. mysql+asyncmy://user@host/db) or an SQLite file, instead "
        "of the config's database.url",
    )
    scenario.add_argument(
        "--date", type=parse_day, required=True, metavar="DAY", help="a UTC day, e.g. 2026-01-05"
    )
    scenario.add_argument(
        "--out", type=Path, metavar="FILE.csv", help="write here (default: standard output)"
    )
    scenario.add_argument(
        "--no-update",
        action="store_true",
        help="read charging_session as stored, without folding in new polls first",
    )
    scenario.set_defaults(control_handler=_scenario)


async def _scenario(args: argparse.Namespace) -> int:
    from charged.balancer.evaluate.scenario_command import cmd_scenario

    return await cmd_scenario(args)


async def _evaluate(args: argparse.Namespace) -> int:
    from charged.balancer.evaluate.command import cmd_evaluate

    return await cmd_evaluate(args)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days >= 1")
    return int(text)


def _connector(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a connector number (1, 2, ...)")
    return int(text)


# ---------------------------------------------------------------- status


async def cmd_status(args: argparse.Namespace) -> int:
    from charged.balancer.status import print_status, read_status
    from charged.exits import Fatal

    settings = _settings(args.config)
    engine = await _engine(settings)
    try:
        status = await read_status(engine)
    finally:
        await engine.dispose()
    if status is None:
        raise Fatal(
            "no balancer step stored yet: is balancer.mode shadow or active, and the daemon "
            "running with this database?",
            EXIT_NO_DATA,
        )
    if args.json:
        print(json.dumps(status.to_json(), indent=2))
    else:
        print_status(status)
    return 0


# ---------------------------------------------------------------- release


async def cmd_release(args: argparse.Namespace) -> int:
    from charged.balancer.pins import record_release
    from charged.control.audit import SqlAuditSink
    from charged.control.cli import _actor

    settings = _settings(args.config)
    engine = await _engine(settings)
    try:
        when = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        await record_release(SqlAuditSink(engine), (args.charger, args.connector), _actor(), when)
    finally:
        await engine.dispose()
    print(
        f"released {args.charger} connector {args.connector}: the balancer drives it again "
        "from its next tick"
    )
    return 0


# ---------------------------------------------------------------- helpers


def _settings(path: str) -> Any:
    from charged.config import ConfigError, load_settings
    from charged.exits import Fatal

    try:
        return load_settings(path, require_secrets=False)
    except ConfigError as exc:
        raise Fatal(str(exc), 78) from None


async def _engine(settings: Any) -> Any:
    from charged.control.cli import _audit_engine
    from charged.exits import translate_errors

    try:
        return await _audit_engine(settings.database)
    except Exception as exc:
        fatal = translate_errors(exc)
        if fatal is None:
            raise
        raise fatal from None
