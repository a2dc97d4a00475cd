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
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.exits import (
    EXIT_BROKEN_PIPE,
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_USAGE,
    Fatal,
    translate_errors,
)

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
DEFAULT_CONFIG = "/etc/charged/config.yaml"


def parse_when(text: str) -> datetime:
    """ISO date or date-time → naive UTC; without an offset it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time; write e.g. 2026-01-05 or 2026-01-05T07:30 (UTC)"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def parse_month(text: str) -> datetime:
    """YYYY-MM → its first moment (UTC)."""
    try:
        return datetime.strptime(text.strip(), "%Y-%m")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--month takes a month as YYYY-MM (e.g. 2026-11), got {text!r}"
        ) from None


def next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def parse_size(text: str) -> tuple[float, float]:
    """WxH in inches → (width, height)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        width, height = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--size takes WIDTHxHEIGHT in inches, e.g. 6.4x3.6, got {text!r}"
        ) from None
    if not (1 <= width <= 50 and 1 <= height <= 50):
        raise argparse.ArgumentTypeError(
            f"--size: width and height must be 1-50 inches, got {text!r}"
        )
    return width, height


def parse_dpi(text: str) -> float:
    try:
        dpi = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dpi takes a number, e.g. 300, got {text!r}") from None
    if not 20 <= dpi <= 1200:
        raise argparse.ArgumentTypeError(f"--dpi must be 20-1200, got {text!r}")
    return dpi


def parse_day(text: str) -> datetime:
    day = parse_when(text)
    if day.time() != datetime.min.time():
        raise argparse.ArgumentTypeError(f"--date takes a day (e.g. 2026-01-05), got {text!r}")
    return day


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


# ---------------------------------------------------------------- shared


def _fatal(message: str, code: int = EXIT_ERROR) -> Exception:
    return Fatal(message, code)


def database_url(args: argparse.Namespace) -> str:
    if args.db_url:
        return str(args.db_url)
    if args.db is not None:
        path: Path = args.db
        if not path.is_file():
            raise _fatal(
                f"no SQLite file at {path}; give an existing file (the demo writes "
                "charged-demo.db) or --db-url",
                EXIT_USAGE,
            )
        return f"sqlite+aiosqlite:///{path.resolve()}"
    from charged.config import ConfigError, load_settings

    try:
        return load_settings(args.config, require_secrets=False).database.url
    except ConfigError as exc:
        raise _fatal(f"{exc} (or give --db FILE / --db-url URL)", EXIT_CONFIG) from None


@asynccontextmanager
async def opened(args: argparse.Namespace, *tables: str) -> AsyncIterator[AsyncEngine]:
    """The engine for the command's database, checked to hold ``tables``."""
    from charged.storage.engine import StorageError, check_database, create_engine

    try:
        engine = create_engine(database_url(args))
    except StorageError as exc:
        raise _fatal(str(exc), EXIT_USAGE) from None
    try:
        try:
            await check_database(engine)
        except StorageError as exc:
            fatal = translate_errors(exc)
            raise (fatal or exc) from None
        async with engine.connect() as conn:
            present = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        missing = [t for t in tables if t not in present]
        if missing:
            raise _fatal(
                f"the database has no {', '.join(missing)} table; run `charged db upgrade` "
                "on it first (same -c, or --db-url)"
            )
        yield engine
    finally:
        await engine.dispose()


async def _update_sessions(engine: AsyncEngine, args: argparse.Namespace) -> None:
    if args.no_update:
        return
    from charged.sessions.tracker import SessionTracker

    try:
        await SessionTracker(engine, None).update()
    except Exception as exc:  # e.g. a read-only database user: show what is stored
        print(
            f"charged: sessions not brought up to date ({type(exc).__name__}); showing what is "
            "stored (use --no-update to skip this step)",
            file=sys.stderr,
        )


def _range(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    since, until = args.since, args.until
    day: datetime | None = getattr(args, "date", None)
    if day is not None:
        if since is not None or until is not None:
            raise _fatal("give either --date or --since/--until, not both", EXIT_USAGE)
        since, until = day, day + timedelta(days=1)
    month: datetime | None = getattr(args, "month", None)
    if month is not None:
        if since is not None or until is not None:
            raise _fatal("give either --month or --since/--until, not both", EXIT_USAGE)
        since, until = month, next_month(month)
    if since is not None and until is not None and until <= since:
        raise _fatal("--until must be after --since", EXIT_USAGE)
    return since, until


# ---------------------------------------------------------------- sessions


async def cmd_sessions(args: argparse.Namespace) -> int:
    from charged.analysis.plot_data import find_sessions
    from charged.analysis.session_table import print_offline, print_sessions, sessions_json

    since, until = _range(args)
    async with opened(args, "charging_session", "connector_status") as engine:
        await _update_sessions(engine, args)
        async with engine.connect() as conn:
            rows = await find_sessions(
                conn, charger=args.charger, connector=args.connector, since=since, until=until
            )
            offline = await _offline(conn, args.charger, since, until)
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
        period = f"sessions started {_span(since, until)}"
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

    since, until = _range(args)
    try:
        table = table_named(args.table)
    except ExportError as exc:
        raise _fatal(str(exc), EXIT_USAGE) from None
    fmt = guess_format(args.output, args.format)
    to_stdout = args.output in (None, "-")
    options: dict[str, Any] = {
        "since": since,
        "until": until,
        "neutralise_formulas": not args.keep_formulas,
    }
    async with opened(args, table.name) as engine:
        if table.name == "charging_session":
            await _update_sessions(engine, args)
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
            raise _fatal(str(exc)) from None
        except OSError as exc:
            raise _fatal(
                f"cannot write {args.output}: {exc.strerror}; choose a writable path"
            ) from None
    where = "standard output" if to_stdout else args.output
    print(f"exported {count} rows of {table.name} ({fmt}) to {where}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- plot


async def cmd_plot(args: argparse.Namespace) -> int:
    from charged.analysis.plots import PlotError, save

    try:
        import matplotlib  # noqa: F401  (checked first: nothing is read without it)
    except ImportError:
        from charged.analysis.plots import MATPLOTLIB_MISSING

        raise _fatal(MATPLOTLIB_MISSING) from None
    since, until = _range(args)
    tables = ["charging_session", "connector_status", "measurement"]
    if args.kind == "phases":
        tables.append("control_action")
    async with opened(args, *tables) as engine:
        if args.kind != "garage":
            await _update_sessions(engine, args)
        try:
            async with engine.connect() as conn:
                if args.kind == "garage":
                    figure = await _garage(conn, args, since, until)
                elif args.kind == "phases":
                    figure = await _phases(conn, args)
                else:
                    figure = await _energy(conn, args, since, until)
            save(figure, args.output, size=args.size, dpi=args.dpi)
        except PlotError as exc:
            raise _fatal(str(exc)) from None
    inches = figure.get_size_inches()
    if args.output.suffix.lower() == ".png":
        width, height = (round(v) for v in inches * figure.dpi)
        print(f"wrote {args.output} ({width}×{height} px, {figure.dpi:g} dpi)")
    else:
        print(f"wrote {args.output} ({inches[0]:g}×{inches[1]:g} in)")
    return 0


def _span(since: datetime | None, until: datetime | None) -> str:
    if since is not None and until is not None and until - since == timedelta(days=1):
        return f"{since:%Y-%m-%d} (UTC)"
    parts = [
        f"from {since:%Y-%m-%d %H:%M}" if since else "",
        f"to {until:%Y-%m-%d %H:%M}" if until else "",
    ]
    return " ".join(p for p in parts if p) + " (UTC)" if any(parts) else "all stored (UTC)"


async def _one_session(conn: Any, args: argparse.Namespace) -> dict[str, Any]:
    from charged.analysis.plot_data import find_sessions

    found = await find_sessions(
        conn, charger=args.charger, connector=args.connector, session_id=args.session
    )
    if not found:
        raise _fatal(f"no session {args.session} stored; list them with `charged sessions`")
    if len(found) > 1:
        raise _fatal(f"session {args.session} is on several chargers; add --charger CP")
    return found[0]


async def _energy(
    conn: Any, args: argparse.Namespace, since: datetime | None, until: datetime | None
) -> Any:
    from charged.analysis.plot_data import find_sessions, session_series
    from charged.analysis.plots import energy_power_figure

    if args.session is not None:
        rows = [await _one_session(conn, args)]
        row = rows[0]
        title = (
            f"Charger {row['charge_point_id']} connector {row['connector_id']}, "
            f"session {row['session_id']}: energy and power"
        )
    elif args.charger is not None:
        if since is None and until is None:
            since, until = await _latest_day(conn, args)
        rows = await find_sessions(
            conn, charger=args.charger, connector=args.connector, since=since, until=until
        )
        title = f"Charger {args.charger}: energy and power per session, {_span(since, until)}"
    else:
        raise _fatal(
            "plot energy needs --charger CP (with --date DAY, else its latest day) or --session ID",
            EXIT_USAGE,
        )
    series = [await session_series(conn, row) for row in rows]
    chargers = {row["charge_point_id"] for row in rows}
    offline = [s for cp in sorted(chargers) for s in await _offline(conn, cp)]
    return energy_power_figure(series, title, offline)


async def _latest_day(conn: Any, args: argparse.Namespace) -> tuple[datetime, datetime]:
    """Without --date: the UTC day of the charger's latest session (said on stderr)."""
    from charged.analysis.plot_data import find_sessions

    rows = await find_sessions(conn, charger=args.charger, connector=args.connector)
    starts = [r["start_time"] for r in rows if r["start_time"] is not None]
    if not starts:
        raise _fatal(
            f"no sessions stored for charger {args.charger}; list them with `charged sessions`"
        )
    day = max(starts).replace(hour=0, minute=0, second=0, microsecond=0)
    print(
        f"charged: no --date given: drawing {day:%Y-%m-%d}, the day of the charger's latest "
        "session",
        file=sys.stderr,
    )
    return day, day + timedelta(days=1)


async def _phases(conn: Any, args: argparse.Namespace) -> Any:
    from charged.analysis.plot_data import current_limits, session_series
    from charged.analysis.plots import phase_currents_figure

    if args.session is None:
        raise _fatal("plot phases needs --session ID (see `charged sessions`)", EXIT_USAGE)
    row = await _one_session(conn, args)
    series = await session_series(conn, row)
    until = row["last_poll"] or row["end_time"] or datetime.max
    limits = await current_limits(conn, row["charge_point_id"], row["connector_id"], until)
    phases = {1: "one phase", 2: "two phases", 3: "three phases"}.get(row["phases"] or 0, "")
    title = (
        f"Charger {row['charge_point_id']} connector {row['connector_id']}, session "
        f"{row['session_id']}: current per phase" + (f" (charged on {phases})" if phases else "")
    )
    offline = await _offline(conn, row["charge_point_id"])
    return phase_currents_figure(series, limits, title, offline)


async def _offline(
    conn: Any, charger: str | None, since: datetime | None = None, until: datetime | None = None
) -> list[Any]:
    """The charger's (None: every charger's) offline spans; none when the table is not there
    (a database older than revision 0009, read by a user who may not upgrade it)."""
    from sqlalchemy import inspect

    from charged.analysis.availability import offline_spans

    tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    if "charge_point_availability" not in tables:
        return []
    return await offline_spans(conn, charger=charger, since=since, until=until)


async def _garage(
    conn: Any, args: argparse.Namespace, since: datetime | None, until: datetime | None
) -> Any:
    from charged.analysis.plot_data import garage_series
    from charged.analysis.plots import garage_figure

    if since is None or until is None:
        raise _fatal("plot garage needs --date DAY (or both --since and --until)", EXIT_USAGE)
    garage = await garage_series(conn, since, until)
    title = f"Garage: total power and current per phase, {_span(since, until)}"
    return garage_figure(garage, title)
