"""The `charged check` sub-command: run the pre-flight checks, print one line per check
(and the site's fuse tree under the site line).

The checks themselves are in :mod:`charged.check`; this module only parses the arguments and
renders the results, as text for a person or as JSON for scripts.  The exit code is 0 when
nothing failed, else that of the first failing check (78 config, 69 unreachable, 77 login).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from charged.check_result import CheckResult

# charged.check pulls in aiohttp, SQLAlchemy and Alembic: imported when the command runs, so
# `charged --help` stays quick.
DEFAULT_CONFIG = "/etc/charged/config.yaml"
# Long enough for a MySQL connect timeout (10 s) or one API request to report its own reason.
DEFAULT_TIMEOUT = 15.0


def add_check_command(subparsers: Any) -> None:
    """Add `check` to ``charged``'s sub-parsers (its handler is set as ``control_handler``)."""
    check = subparsers.add_parser(
        "check",
        help="pre-flight check: config, database, vendor login, the balancer's site, meters, "
        "prices",
        description="Validate the config, reach the database and log in to the vendor API "
        "once; print one line per check. With a site in the config, print its fuse tree "
        "(per-phase limits, margin, each charger's rotation and installation current) and "
        "compare it with the account's chargers: one the tree does not place is an error when "
        "balancer.mode is shadow or active (a warning when off); one the account does not own, "
        "and one the balancer will only shadow (the vendor load-balances it), are warnings. "
        "Each site meter is reached once: MQTT, one message on its topic within --timeout "
        "(only a retained one: a warning); HTTP, one GET; the readings must fit its fields. "
        "The prices (prices.file or prices.url) are read once and what now costs is printed. "
        "Exit 0 when nothing failed, else the code of the first failure (78 config or site, "
        "69 database/API/meter/prices unreachable, 77 vendor login or database user/password "
        "refused).",
    )
    check.add_argument(
        "-c",
        "--config",
        default=os.environ.get("CHARGED_CONFIG", DEFAULT_CONFIG),
        help=f"YAML config file (default: $CHARGED_CONFIG or {DEFAULT_CONFIG})",
    )
    check.add_argument("--json", action="store_true", help="print JSON for scripts")
    check.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds each check may take (default: {DEFAULT_TIMEOUT:g})",
    )
    check.set_defaults(control_handler=cmd_check)


async def cmd_check(args: argparse.Namespace) -> int:
    from charged.check import exit_code, run_checks

    results = await run_checks(args.config, time_limit=args.timeout)
    if args.json:
        print_json(results)
    else:
        print_text(results)
    return exit_code(results)


def print_text(results: Sequence[CheckResult], out: TextIO | None = None) -> None:
    width = max(len(r.check) for r in results)
    for r in results:
        print(f"{r.status.value:<4} {r.check:<{width}}  {r.message}", file=out)
        for line in r.details:  # the site's fuse tree, under its line's message
            print(f"{'':<4} {'':<{width}}    {line}", file=out)
    print(summary(results), file=out)


def summary(results: Sequence[CheckResult]) -> str:
    from charged.check import exit_code
    from charged.check_result import Status

    failed = sum(r.status is Status.FAIL for r in results)
    warned = sum(r.status is Status.WARN for r in results)
    warnings = f"{warned} warning{'s' if warned != 1 else ''}"
    if failed:
        return (
            f"not ready: {failed} check{'s' if failed != 1 else ''} failed, {warnings} "
            f"(exit {exit_code(results)}); fix them and run charged check again"
        )
    if warned:
        return f"ready, with {warnings}: read them before enabling the service"
    return "ready: every check passed"


def print_json(results: Sequence[CheckResult], out: TextIO | None = None) -> None:
    from charged.check import exit_code

    code = exit_code(results)
    document = {"ok": code == 0, "exit_code": code, "checks": [r.to_json() for r in results]}
    print(json.dumps(document, indent=2), file=out)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value
