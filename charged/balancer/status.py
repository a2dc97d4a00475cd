"""The newest balancer step as stored, read back and printed (`charged balance status`).

:func:`read_status` reads the last step's ``balancer_fuse`` rows (every fuse and site phase:
limit, the envelope of the limits in force, measured, capacity), its ``balancer_decision``
rows for the connectors that are paused, pinned or offline, and with a power target the
step's ``power_window`` row; :func:`print_status` prints the tree as a table, and
:meth:`Status.to_json` gives the same for scripts.  Read-only: nothing here writes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import func, select


@dataclass(frozen=True, slots=True)
class FusePhaseRow:
    fuse: str
    phase: str
    limit: float
    capacity: float
    envelope: float
    measured: float

    @property
    def headroom(self) -> float:
        return self.capacity - self.envelope


@dataclass(frozen=True, slots=True)
class ConnectorRow:
    charge_point_id: str
    connector_id: int
    reason: str | None
    allocated: float | None
    in_force: float | None
    measured: float | None
    phases: str | None


@dataclass(frozen=True, slots=True)
class PowerRow:
    """The power target at the step (a ``power_window`` row)."""

    window_start: datetime
    window_s: int
    month: str
    energy_wh: float
    power_w: float
    building_w: float
    target_w: float
    month_peak_w: float
    cap_a: float

    def to_json(self) -> dict[str, Any]:
        return {
            "windowStart": self.window_start.replace(tzinfo=UTC).isoformat(),
            "windowS": self.window_s,
            "month": self.month,
            "energyWh": self.energy_wh,
            "powerW": self.power_w,
            "buildingW": self.building_w,
            "targetW": self.target_w,
            "monthPeakW": self.month_peak_w,
            "capA": self.cap_a,
        }

    def line(self) -> str:
        return (
            f"power target {self.target_w / 1000:.2f} kW in force (month {self.month}'s peak "
            f"{self.month_peak_w / 1000:.2f} kW); {self.window_s // 60}-min window from "
            f"{self.window_start:%H:%M} UTC: {self.energy_wh / 1000:.3f} kWh used, "
            f"{self.power_w / 1000:.2f} kW now (building {self.building_w / 1000:.2f} kW); "
            f"chargers capped at {self.cap_a:g} A per phase on average"
        )


@dataclass(frozen=True, slots=True)
class Status:
    tick_time: datetime
    mode: str
    fuses: tuple[FusePhaseRow, ...]
    connectors: tuple[ConnectorRow, ...]
    depth: dict[str, int]
    power: PowerRow | None = None  # None: no power target

    def to_json(self) -> dict[str, Any]:
        return {
            "tickTime": self.tick_time.replace(tzinfo=UTC).isoformat(),
            "mode": self.mode,
            "fuses": [
                {
                    "fuse": f.fuse,
                    "phase": f.phase,
                    "limit": f.limit,
                    "capacity": f.capacity,
                    "envelope": f.envelope,
                    "measured": f.measured,
                    "headroom": round(f.headroom, 3),
                }
                for f in self.fuses
            ],
            "connectors": [
                {
                    "chargePointId": c.charge_point_id,
                    "connectorId": c.connector_id,
                    "reason": c.reason,
                    "allocated": c.allocated,
                    "inForce": c.in_force,
                    "measured": c.measured,
                    "phases": c.phases,
                }
                for c in self.connectors
            ],
            "powerTarget": None if self.power is None else self.power.to_json(),
        }


async def read_status(engine: Any) -> Status | None:
    """The newest balancer step stored, or None when there is none."""
    from charged.storage.schema import balancer_decision as d
    from charged.storage.schema import balancer_fuse as f
    from charged.storage.schema import power_window as w

    async with engine.connect() as conn:
        newest = (await conn.execute(select(func.max(f.c.tick_time)))).scalar()
        if newest is None:
            return None
        fuse_rows = (
            await conn.execute(
                select(
                    f.c.mode,
                    f.c.parent,
                    f.c.fuse,
                    f.c.phase,
                    f.c.limit_a,
                    f.c.capacity_a,
                    f.c.envelope_a,
                    f.c.measured_a,
                )
                .where(f.c.tick_time == newest)
                .order_by(f.c.id)
            )
        ).all()
        connector_rows = (
            await conn.execute(
                select(
                    d.c.charge_point_id,
                    d.c.connector_id,
                    d.c.reason,
                    d.c.allocated_a,
                    d.c.limit_in_force_a,
                    d.c.measured_a,
                    d.c.phases,
                )
                .where(d.c.tick_time == newest)
                .order_by(d.c.charge_point_id, d.c.connector_id)
            )
        ).all()
        power = (
            await conn.execute(
                select(
                    w.c.window_start,
                    w.c.window_s,
                    w.c.month,
                    w.c.energy_wh,
                    w.c.power_w,
                    w.c.building_w,
                    w.c.target_w,
                    w.c.month_peak_w,
                    w.c.cap_a,
                ).where(w.c.tick_time == newest)
            )
        ).first()
    parents = {row[2]: row[1] for row in fuse_rows}
    depth: dict[str, int] = {}
    for name in parents:
        level, above = 0, parents[name]
        while above is not None and level < len(parents):
            level, above = level + 1, parents.get(above)
        depth[name] = level
    return Status(
        tick_time=newest,
        mode=fuse_rows[0][0] if fuse_rows else "unknown",
        fuses=tuple(FusePhaseRow(*row[2:]) for row in fuse_rows),
        connectors=tuple(ConnectorRow(*row) for row in connector_rows),
        depth=depth,
        power=None if power is None else PowerRow(*power),
    )


def print_status(status: Status, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    when = status.tick_time.strftime("%Y-%m-%d %H:%M:%S")
    by_reason: dict[str, list[ConnectorRow]] = {}
    for c in status.connectors:
        by_reason.setdefault(c.reason or "unknown", []).append(c)
    paused = by_reason.get("paused_floor", [])
    print(
        f"balancer {status.mode}, step of {when} UTC: {len(status.connectors)} connectors, "
        f"{len(paused)} paused, {len(by_reason.get('pinned', []))} pinned, "
        f"{len(by_reason.get('offline', []))} offline",
        file=out,
    )
    table = [["FUSE", "PHASE", "LIMIT", "ENVELOPE", "MEASURED", "HEADROOM"]]
    for row in status.fuses:
        indent = "  " * status.depth.get(row.fuse, 0)
        table.append(
            [
                indent + row.fuse,
                row.phase,
                f"{row.limit:g} A",
                f"{row.envelope:.1f} A",
                f"{row.measured:.1f} A",
                f"{row.headroom:.1f} A" + ("  OVER" if row.headroom < 0 else ""),
            ]
        )
    _print_table(table, out)
    if status.power is not None:
        print(status.power.line(), file=out)
    for reason, title in (
        ("paused_floor", "paused (no room for the minimum; they take turns)"),
        ("pinned", "pinned by a person (`charged balance release CP CONNECTOR`)"),
        ("offline", "offline (counted at full limits)"),
        ("not_writable", "not driven (vendor balancing, or writes refused)"),
    ):
        rows = by_reason.get(reason, [])
        if rows:
            names = ", ".join(f"{c.charge_point_id}/{c.connector_id}" for c in rows)
            print(f"{title}: {names}", file=out)


def _print_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=out)
