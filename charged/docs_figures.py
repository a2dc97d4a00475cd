"""Regenerate the README's figures from a fresh demo database.

    python -m charged.docs_figures [--out docs/img] [--db FILE]
    python -m charged.docs_figures --evaluation [--out docs/img]

Runs the demo for four real minutes — ``charged demo --date 2026-01-05 --speed 60 --interval 1
--duration 240``: 30 simulated chargers from 07:00 to 11:00 UTC, a poll every fleet minute —
and meanwhile lowers the max current of one connector charging a three-phase car to 10 A from
08:00 to 08:30 (fleet time) through the control operations, audited like any change made with
``charged settings set``.  Then it draws, with the ``charged plot`` commands a reader would
type (and prints them):

- ``sessions-energy-power.png``: (a) energy and power per session of the charger whose morning
  shows the most sessions from (about) their start, one- and three-phase;
- ``session-phase-currents.png``: (b) the three phase currents of the limited session, with
  the limit from the audit table;
- ``garage.png``: (c) total power and current per phase of the whole garage.

``--evaluation`` draws the balancer evaluation's figures instead (no demo):
:mod:`charged.balancer.evaluate.paper_figures`, every policy on issue 15's simulated garage,
each figure as PNG and PDF.

It is a tool for the documentation, not part of :mod:`charged.analysis`: it drives the demo,
the collector and the control layer, which the analysis package must not depend on.
Needs matplotlib (the test environment has it; from a checkout ``pip install '.[plot]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from charged.collector.supervisor import TickResult
from charged.daemon.service import Daemon
from charged.demo import DemoOptions, run_demo

DAY = date(2026, 1, 5)
CHARGERS = 30
DURATION = 240.0  # real seconds: 07:00–11:00 at ×60
LIMIT_A = 10
LIMIT_FROM = datetime.combine(DAY, time(8, 0))
LIMIT_UNTIL = datetime.combine(DAY, time(8, 30))
MORNING = datetime.combine(DAY, time(7, 0))
ACTOR = "figures"
NAMES = {
    "energy": "sessions-energy-power.png",
    "phases": "session-phase-currents.png",
    "garage": "garage.png",
}


class FigureError(Exception):
    """Cannot make the figures: one line saying why."""


@dataclass
class LimitOneCar:
    """After the tick at LIMIT_FROM: 10 A on the connector of the three-phase car with the most
    of its charge ahead; after the tick at LIMIT_UNTIL: no limit again."""

    target: tuple[str, int] | None = None
    lifted: bool = False
    controller: Any = None

    async def __call__(self, result: TickResult, collector: Daemon) -> None:
        if self.target is None and result.tick_time >= LIMIT_FROM:
            self.target = await self._charging_three_phase(collector, result.tick_time)
            if self.target is not None:
                await self._set(collector, LIMIT_A)
        elif self.target is not None and not self.lifted and result.tick_time >= LIMIT_UNTIL:
            self.lifted = True
            await self._set(collector, None)

    async def _charging_three_phase(
        self, collector: Daemon, tick: datetime
    ) -> tuple[str, int] | None:
        from charged.chargeamps.states import ConnectorState
        from charged.storage.schema import connector_status as cs

        assert collector.engine is not None
        async with collector.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(cs.c.charge_point_id, cs.c.connector_id)
                    .where(
                        cs.c.date_created == tick,
                        cs.c.status == ConnectorState.CHARGING.value,
                        cs.c.session_type == "ThreePhase",
                    )
                    .order_by(cs.c.total_consumption_kwh, cs.c.charge_point_id)
                    .limit(1)
                )
            ).first()
        return None if row is None else (row.charge_point_id, int(row.connector_id))

    async def _set(self, collector: Daemon, amps: int | None) -> None:
        from charged.control.audit import SqlAuditSink
        from charged.control.operations import Controller
        from charged.control.validation import ConnectorChange

        assert self.target is not None and collector.client and collector.engine
        if self.controller is None:
            self.controller = Controller(
                collector.client, SqlAuditSink(collector.engine), actor=ACTOR, clock=collector.clock
            )
        result = await self.controller.set_connector(
            *self.target, ConnectorChange(max_current=amps)
        )
        if not result.ok:
            raise FigureError(f"setting the max current of {self.target} failed: {result.error}")


async def _collect(db: Path, limit: LimitOneCar) -> None:
    from charged.log import configure_logging

    configure_logging("warning", "console")
    options = DemoOptions(
        db=db, chargers=CHARGERS, interval=1.0, duration=DURATION, speed=60.0, day=DAY
    )
    await run_demo(options, after_tick=limit)
    if limit.target is None:
        raise FigureError("no three-phase car was charging at 08:00; nothing to limit")


async def _choose(db: Path, target: tuple[str, int]) -> tuple[str, int]:
    """The charger for (a) and the session for (b)."""
    from charged.analysis.plot_data import find_sessions
    from charged.storage.engine import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.connect() as conn:
            rows = await find_sessions(conn)
    finally:
        await engine.dispose()
    limited = [
        r
        for r in rows
        if (r["charge_point_id"], r["connector_id"]) == target
        and r["first_poll"] is not None
        and r["first_poll"] <= LIMIT_FROM <= r["last_poll"]
    ]
    if not limited:
        raise FigureError(f"no session on {target} across {LIMIT_FROM:%H:%M}")

    def score(cp: str) -> tuple[int, int, int, str]:
        # many sessions, seen from (about) their start, one- and three-phase cars, most of
        # them over by 11:00
        mine = [r for r in rows if r["charge_point_id"] == cp]
        early = MORNING - timedelta(minutes=30)
        seen = [r for r in mine if (r["start_time"] or datetime.min) >= early]
        phases = len({r["phases"] for r in seen})
        whole = sum(1 for r in seen if r["end_time"] is not None)
        return len(seen) - (len(mine) - len(seen)), phases, whole, cp

    best = max({r["charge_point_id"] for r in rows}, key=score)
    return best, int(limited[0]["session_id"])


def _plot(db: Path, out: Path, charger: str, target: tuple[str, int], session: int) -> None:
    from charged.cli import main

    commands = {
        "energy": ["plot", "energy", "--charger", charger, "--date", f"{DAY}"],
        "phases": ["plot", "phases", "--charger", target[0], "--session", str(session)],
        "garage": ["plot", "garage", "--date", f"{DAY}"],
    }
    for kind, argv in commands.items():
        path = out / NAMES[kind]
        full = [*argv, "--db", str(db), "-o", str(path)]
        print("charged " + " ".join(full), flush=True)
        if main(full) != 0:
            raise FigureError(f"charged {' '.join(full)} failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m charged.docs_figures",
        description="Run the demo for 4 minutes (30 chargers, 2026-01-05 07:00-11:00 UTC, a "
        "10 A limit on one connector 08:00-08:30) and draw the README's figures from it.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("docs/img"), help="directory (default: docs/img)"
    )
    parser.add_argument(
        "--db", type=Path, help="keep the demo database here (a new file; default: a temp file)"
    )
    parser.add_argument(
        "--evaluation",
        action="store_true",
        help="the balancer evaluation's figures instead (every policy on issue 15's simulated "
        "garage, bench/sites/garage.yaml; PNG and PDF), no demo",
    )
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(
            "figures need matplotlib: pip install '.[plot]' (or python3 dev.py test's venv)",
            file=sys.stderr,
        )
        return 1
    if not args.out.is_dir():
        print(f"no directory {args.out}; run from the project's root or give --out DIR",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.evaluation:
        from charged.balancer.evaluate.paper_figures import evaluation_figures

        for path in evaluation_figures(args.out):
            print(f"wrote {path}")
        return 0
    with tempfile.TemporaryDirectory(prefix="charged-figures-") as scratch:
        db: Path = args.db or Path(scratch) / "charged-demo.db"
        if db.exists():
            print(f"{db} exists; the figures need a fresh database: remove it or choose "
                  "another --db", file=sys.stderr)  # fmt: skip
            return 2
        limit = LimitOneCar()
        try:
            asyncio.run(_collect(db, limit))
            assert limit.target is not None
            charger, session = asyncio.run(_choose(db, limit.target))
            _plot(db, args.out, charger, limit.target, session)
            if args.db is None:
                print("(the demo database was temporary and is gone; --db FILE keeps it)")
        except FigureError as exc:
            print(f"figures: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
