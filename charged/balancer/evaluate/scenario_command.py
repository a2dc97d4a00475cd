"""``charged balance scenario``: a day charged recorded, written as a scenario file.

The database is the config's (``-c``) or ``--from-db``'s (a URL, or a path to an SQLite
file); it is opened and checked as the analysis commands open theirs, and the sessions are
brought up to date from the polls first (as ``charged sessions`` does).  The visits are
:mod:`.recorded`'s; the file is :mod:`.scenario`'s format, times in UTC.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from charged.balancer.evaluate.recorded import RecordedDay, recorded_day
from charged.balancer.evaluate.scenario import write_scenario
from charged.exits import EXIT_ERROR, EXIT_USAGE, Fatal

TABLES = ("charging_session", "connector_status", "measurement")


def _database_args(args: argparse.Namespace) -> argparse.Namespace:
    """The analysis commands' -c / --db-url / --db, from -c and --from-db."""
    source: str | None = args.from_db
    is_url = source is not None and "://" in source
    return argparse.Namespace(
        config=args.config,
        db_url=source if is_url else None,
        db=Path(source) if source is not None and not is_url else None,
        no_update=args.no_update,
    )


async def cmd_scenario(args: argparse.Namespace) -> int:
    from charged.analysis.database import opened, update_sessions

    if args.out is not None and args.out.suffix.lower() != ".csv":
        raise Fatal(f"--out {args.out}: a scenario file ends in .csv", EXIT_USAGE)
    where = _database_args(args)
    day = args.date
    async with opened(where, *TABLES) as engine:
        await update_sessions(engine, where)
        async with engine.connect() as conn:
            recorded = await recorded_day(conn, day, name=f"recorded-{day:%Y-%m-%d}")
    if not recorded.scenario.visits:
        raise Fatal(
            f"no charging session began on {day:%Y-%m-%d} (UTC) in this database; "
            "`charged sessions --since DAY` lists the days it holds",
            EXIT_ERROR,
        )
    if args.out is None:
        write_scenario(recorded.scenario, sys.stdout)
        sys.stdout.flush()
    else:
        try:
            write_scenario(recorded.scenario, args.out)
        except OSError as exc:
            raise Fatal(
                f"cannot write {args.out}: {exc.strerror or exc}; choose a writable path",
                EXIT_USAGE,
            ) from None
    print(summary(recorded, day, args.out), file=sys.stderr)
    return 0


def summary(recorded: RecordedDay, day: datetime, out: Path | None) -> str:
    scenario = recorded.scenario
    notes = []
    if recorded.still_plugged:
        notes.append(f"{recorded.still_plugged} still plugged in at their last poll")
    if recorded.never_drew:
        notes.append(f"{recorded.never_drew} never seen drawing (max current: the day's median)")
    if recorded.left_out_running_into:
        notes.append(
            f"{recorded.left_out_running_into} begun the day before left out (they are that "
            "day's visits)"
        )
    if recorded.left_out_too_short:
        notes.append(f"{recorded.left_out_too_short} with no time plugged in left out")
    where = "standard output" if out is None else str(out)
    text = (
        f"wrote {len(scenario.visits)} visits of {day:%Y-%m-%d} (UTC), "
        f"{scenario.energy_asked_kwh:,.1f} kWh, to {where}"
    )
    return text + (f"; {'; '.join(notes)}" if notes else "")
