"""``charged plot``: an energy and power, phase currents or garage figure from what is stored,
written to a PNG, SVG or PDF file.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from typing import Any

from charged.analysis.arguments import requested_range, span
from charged.analysis.database import opened, stored_offline_spans, update_sessions
from charged.exits import EXIT_USAGE, Fatal


async def cmd_plot(args: argparse.Namespace) -> int:
    from charged.analysis.plot_base import PlotError, save

    try:
        import matplotlib  # noqa: F401  (checked first: nothing is read without it)
    except ImportError:
        from charged.analysis.plot_base import MATPLOTLIB_MISSING

        raise Fatal(MATPLOTLIB_MISSING) from None
    since, until = requested_range(args)
    tables = ["charging_session", "connector_status", "measurement"]
    if args.kind == "phases":
        tables.append("control_action")
    async with opened(args, *tables) as engine:
        if args.kind != "garage":
            await update_sessions(engine, args)
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
            raise Fatal(str(exc)) from None
    inches = figure.get_size_inches()
    if args.output.suffix.lower() == ".png":
        width, height = (round(v) for v in inches * figure.dpi)
        print(f"wrote {args.output} ({width}×{height} px, {figure.dpi:g} dpi)")
    else:
        print(f"wrote {args.output} ({inches[0]:g}×{inches[1]:g} in)")
    return 0


async def _one_session(conn: Any, args: argparse.Namespace) -> dict[str, Any]:
    from charged.analysis.plot_data import find_sessions

    found = await find_sessions(
        conn, charger=args.charger, connector=args.connector, session_id=args.session
    )
    if not found:
        raise Fatal(f"no session {args.session} stored; list them with `charged sessions`")
    if len(found) > 1:
        raise Fatal(f"session {args.session} is on several chargers; add --charger CP")
    return found[0]


async def _energy(
    conn: Any, args: argparse.Namespace, since: datetime | None, until: datetime | None
) -> Any:
    from charged.analysis.plot_data import find_sessions, session_series
    from charged.analysis.plot_sessions import energy_power_figure

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
        title = f"Charger {args.charger}: energy and power per session, {span(since, until)}"
    else:
        raise Fatal(
            "plot energy needs --charger CP (with --date DAY, else its latest day) or --session ID",
            EXIT_USAGE,
        )
    series = [await session_series(conn, row) for row in rows]
    chargers = {row["charge_point_id"] for row in rows}
    offline = [s for cp in sorted(chargers) for s in await stored_offline_spans(conn, cp)]
    return energy_power_figure(series, title, offline)


async def _latest_day(conn: Any, args: argparse.Namespace) -> tuple[datetime, datetime]:
    """Without --date: the UTC day of the charger's latest session (said on stderr)."""
    from charged.analysis.plot_data import find_sessions

    rows = await find_sessions(conn, charger=args.charger, connector=args.connector)
    starts = [r["start_time"] for r in rows if r["start_time"] is not None]
    if not starts:
        raise Fatal(
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
    from charged.analysis.plot_sessions import phase_currents_figure

    if args.session is None:
        raise Fatal("plot phases needs --session ID (see `charged sessions`)", EXIT_USAGE)
    row = await _one_session(conn, args)
    series = await session_series(conn, row)
    until = row["last_poll"] or row["end_time"] or datetime.max
    limits = await current_limits(conn, row["charge_point_id"], row["connector_id"], until)
    phases = {1: "one phase", 2: "two phases", 3: "three phases"}.get(row["phases"] or 0, "")
    title = (
        f"Charger {row['charge_point_id']} connector {row['connector_id']}, session "
        f"{row['session_id']}: current per phase" + (f" (charged on {phases})" if phases else "")
    )
    offline = await stored_offline_spans(conn, row["charge_point_id"])
    return phase_currents_figure(series, limits, title, offline)


async def _garage(
    conn: Any, args: argparse.Namespace, since: datetime | None, until: datetime | None
) -> Any:
    from charged.analysis.plot_data import garage_series
    from charged.analysis.plot_garage import garage_figure

    if since is None or until is None:
        raise Fatal("plot garage needs --date DAY (or both --since and --until)", EXIT_USAGE)
    garage = await garage_series(conn, since, until)
    title = f"Garage: total power and current per phase, {span(since, until)}"
    return garage_figure(garage, title)
