"""The power target's window and the month's peak, read back from ``power_window`` at start.

A restart in the middle of a window must not forget the energy the window has used already
(it would hand out the whole budget again), nor the month's peak (monthly mode would fall
back to the configured target and give away what staying under the peak costs nothing).  The
newest row holds both; :func:`~charged.balancer.power_target.advance` then carries the
window to the first tick after the start (a gap longer than ``max_gap_s`` is not guessed at).
A row of another window length (the config changed) is not taken.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.balancer.power_target import TargetSpec, WindowState, month_of


def _epoch(naive_utc: datetime) -> float:
    return naive_utc.replace(tzinfo=UTC).timestamp()


class SqlWindowRecall:
    """:class:`~charged.balancer.runtime.WindowRecall` from the daemon's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def recall(self, spec: TargetSpec) -> WindowState | None:
        from charged.storage.schema import power_window as w

        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        w.c.tick_time,
                        w.c.window_start,
                        w.c.window_s,
                        w.c.energy_wh,
                        w.c.power_w,
                        w.c.month,
                        w.c.month_peak_w,
                    )
                    .order_by(w.c.tick_time.desc())
                    .limit(1)
                )
            ).first()
        if row is None or row.window_s != round(spec.window_s):
            return None
        start = _epoch(row.window_start)
        month = month_of(spec, start)
        return WindowState(
            window_start=start,
            energy_wh=float(row.energy_wh),
            time=_epoch(row.tick_time),
            power_w=float(row.power_w),
            month=month,
            # a peak of another month (the time zone changed) is not this month's
            month_peak_w=float(row.month_peak_w) if month == row.month else 0.0,
        )
