"""The analysis commands of `charged`: sessions, export, plot.

They read the database named by the config file (``-c``), by ``--db-url``, or by ``--db`` for
an SQLite file such as the demo's ``charged-demo.db``.  ``sessions``, ``export sessions`` and
``plot`` first fold the polls stored since the last pass into charging_session (no vendor
call; the collector's tracker does the same and the result is identical), so they also work
on a database whose collector does not run a tracker.  ``--no-update`` reads only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

from charged.analysis.arguments import (
    parse_day,
    parse_dpi,
    parse_month,
    parse_size,
    parse_when,
    requested_range,
    span,
)
from charged.analysis.database import opened, stored_offline_spans, update_sessions
from charged.analysis.plot_command import cmd_plot
from charged.exits import EXIT_BROKEN_PIPE, EXIT_USAGE, Fatal

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
DEFAULT_CONFIG = "/etc/charged/config.yaml"


def add_analysis_commands(subparsers: Any) -> dict[str, Handler]:
    """Add sessions, export and plot to ``charged``'s sub-parsers; returns name → handler."""

    def database(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "-c",
            "--config",
            default=os.environ.get("CHARGED_CONFIG", DEFAULT_CONFIG),
            help=f"YAML config file whose database.url is read "
            f"(default: $CHARGED_CONFIG or {DEFAULT_CONFIG})",
        )
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--db-url", metavar="URL", help="database URL instead of the config's")
        where.add_argument(
            "--db", type=Path, metavar="FILE", help="an SQLite file, e.g. charged-demo.db"
        )

    def time_range(parser: argparse.ArgumentParser, *, day: bool = False) -> None:
        if day:
            parser.add_argument(
                "--date", type=parse_day, metavar="DAY", help="one UTC day, e.g. 2026-01-05"
            )
        parser.add_argument(
            "--since", type=parse_when, metavar="TIME", help="from this UTC date/time on"
        )
        parser.add_argument(
            "--until", type=parse_when, metavar="TIME", help="before this UTC date/time"
        )

    def no_update(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--no-update",
            action="store_true",
            help="read charging_session as stored, without folding in new polls first",
        )

    sessions = subparsers.add_parser(
        "sessions",
        help="charging sessions: energy, power, phases, connected/charging/idle time",
        description="List the charging sessions stored (derived from the polls, confirmed by "
        "the vendor once reconciled), then the chargers' offline spans in that time (from "
        "charge_point_availability), or with --by a report of energy per RFID tag or user. "
        "New polls are folded in first unless --no-update.",
    )
    database(sessions)
    sessions.add_argument("--charger", metavar="CP", help="only this charge point")
    sessions.add_argument("--connector", type=int, metavar="N", help="only this connector")
    time_range(sessions)
    sessions.add_argument(
        "--month",
        type=parse_month,
        metavar="YYYY-MM",
        help="the sessions that started in this UTC month (instead of --since/--until)",
    )
    sessions.add_argument(
        "--by",
        choices=("tag", "user"),
        help="a report instead of the list: sessions, energy and hours per RFID tag (or per "
        "vendor user id), each session counted in the period it started in",
    )
    sessions.add_argument("--json", action="store_true", help="print JSON for scripts")
    no_update(sessions)

    export = subparsers.add_parser(
        "export",
        help="a table or the sessions as CSV, JSON Lines or Parquet (streamed)",
        description="Write a table, or the sessions, as CSV, JSON Lines or Parquet, streamed "
        "from the database. Times are UTC and written with their offset (+00:00).",
    )
    export.add_argument(
        "table",
        metavar="TABLE",
        help="sessions, or a table: connector_status, measurement, poll_cycle, poll_gap, "
        "charge_point_status, charge_point_availability, control_action, charging_session; "
        "measurement/connector_status of a range past retention.raw_days: their rollups",
    )
    database(export)
    time_range(export)
    export.add_argument(
        "--format",
        choices=("csv", "jsonl", "parquet"),
        help="default: from the -o file's extension, else csv",
    )
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write here (default: standard output)"
    )
    export.add_argument(
        "--keep-formulas",
        action="store_true",
        help="CSV: write text cells beginning with = + - @ tab or CR as they are (by default "
        "they get a leading ' so a spreadsheet shows them instead of running them)",
    )
    no_update(export)

    plot = subparsers.add_parser(
        "plot",
        help="PNG/SVG/PDF figures: energy and power per session, phase currents, garage",
        description="Draw a figure from the stored polls and sessions: energy and power of a "
        "charger's sessions, the phase currents of one session with its max-current limit, or "
        "the whole garage's power and phase currents. Needs matplotlib.",
    )
    plot.add_argument(
        "kind",
        choices=("energy", "phases", "garage"),
        help="energy: energy (kWh) and power (W) of a charger's sessions or of one session; "
        "phases: L1-L3 currents of one session with the max-current limit; "
        "garage: total power and phase currents of all chargers",
    )
    database(plot)
    plot.add_argument("--charger", metavar="CP", help="the charge point (energy, phases)")
    plot.add_argument("--connector", type=int, metavar="N", help="only this connector")
    plot.add_argument("--session", type=int, metavar="ID", help="one session (energy, phases)")
    time_range(plot, day=True)
    plot.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="FILE",
        help="a .png, .svg or .pdf file (by its name)",
    )
    plot.add_argument(
        "--size",
        type=parse_size,
        metavar="WxH",
        help="figure size in inches, e.g. 3.5x2.6 for a paper's column (default: 10x5.4)",
    )
    plot.add_argument(
        "--dpi",
        type=parse_dpi,
        metavar="N",
        help="dots per inch of a PNG, e.g. 300 for print (default: 100)",
    )
    no_update(plot)

    handlers: dict[str, Handler] = {
        "sessions": cmd_sessions,
        "export": cmd_export,
        "plot": cmd_plot,
    }
    for name, parser in (("sessions", sessions), ("export", export), ("plot", plot)):
        parser.set_defaults(control_handler=handlers[name])
    return handlers


# ---------------------------------------------------------------- sessions


async def cmd_sessions(args: argparse.Namespace) -> int:
    from charged.analysis.plot_data import find_sessions
    from charged.analysis.session_table import print_offline, print_sessions, sessions_json

    since, until = requested_range(args)
    async with opened(args, "charging_session", "connector_status") as engine:
        await update_sessions(engine, args)
        async with engine.connect() as conn:
            rows = await find_sessions(
                conn, charger=args.charger, connector=args.connector, since=since, until=until
            )
            offline = await stored_offline_spans(conn, args.charger, since, until)
    try:
        if args.by is not None:
            _print_energy_report(rows, args, since, until)
        elif args.json:
            json.dump(sessions_json(rows, offline), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print_sessions(rows, sys.stdout)
            print_offline(offline, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        return _reader_gone()
    return 0


def _print_energy_report(
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
    since: datetime | None,
    until: datetime | None,
) -> None:
    from charged.analysis.energy_report import energy_by, print_report, report_json

    report = energy_by(rows, args.by, since, until)
    if args.json:
        json.dump(report_json(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    what = "RFID tag" if args.by == "tag" else "vendor user"
    if args.month is not None:
        period = f"sessions started in {args.month:%Y-%m} (UTC)"
    elif since is None and until is None:
        period = "every session stored"
    else:
        period = f"sessions started {span(since, until)}"
    title = f"Energy per {what}, {period}"
    print_report(report, title, sys.stdout)


def _reader_gone() -> int:
    """Standard output's reader closed it: nothing more to say, and nothing to say it to.

    What is still buffered for it goes to /dev/null, so the flush at exit does not print a
    BrokenPipeError of its own."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return EXIT_BROKEN_PIPE


# ---------------------------------------------------------------- export


async def cmd_export(args: argparse.Namespace) -> int:
    from charged.analysis.export import (
        ExportError,
        export_table,
        guess_format,
        rollup_instead,
        table_named,
    )

    since, until = requested_range(args)
    try:
        table = table_named(args.table)
    except ExportError as exc:
        raise Fatal(str(exc), EXIT_USAGE) from None
    fmt = guess_format(args.output, args.format)
    to_stdout = args.output in (None, "-")
    options: dict[str, Any] = {
        "since": since,
        "until": until,
        "neutralise_formulas": not args.keep_formulas,
    }
    async with opened(args, table.name) as engine:
        if table.name == "charging_session":
            await update_sessions(engine, args)
        rollup = await rollup_instead(engine, table, since, until)
        if rollup is not None:
            print(
                f"charged: no raw {table.name} rows in that range (deleted after "
                f"retention.raw_days); exporting its 15-minute rollups, {rollup.name}",
                file=sys.stderr,
            )
            table = rollup
        try:
            if fmt == "parquet":
                path = None if to_stdout else Path(args.output)
                count = await export_table(engine, table, fmt=fmt, out=None, path=path, **options)
            elif to_stdout:
                try:
                    count = await export_table(
                        engine, table, fmt=fmt, out=sys.stdout, path=None, **options
                    )
                    sys.stdout.flush()
                except BrokenPipeError:
                    return _reader_gone()
            else:
                # a one-shot command with nothing else on its loop: plain file writes are fine
                with open(args.output, "w", encoding="utf-8", newline="") as out:  # noqa: ASYNC230
                    count = await export_table(
                        engine, table, fmt=fmt, out=out, path=None, **options
                    )
        except ExportError as exc:
            raise Fatal(str(exc)) from None
        except OSError as exc:
            raise Fatal(
                f"cannot write {args.output}: {exc.strerror}; choose a writable path"
            ) from None
    where = "standard output" if to_stdout else args.output
    print(f"exported {count} rows of {table.name} ({fmt}) to {where}", file=sys.stderr)
    return 0
