"""Readiness: is this process doing its job?  A pure function of its state and the time.

The rule (README): a tick counts once its rows are in the database, whatever the vendor
answered.  During a vendor outage the collector stores a gap per charger every tick, which is
its job, so it stays ready (200) and says so: status ``degraded`` with the outage as the
reason.  Not ready (503) is for this process failing: no tick stored lately, or rows with
nowhere to go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# a tick may be late once or twice (slow API, one skipped grid point) before we say so
STALE_INTERVALS = 3


@dataclass
class ReadinessState:
    """What the supervisor and the writer report; read by ``/readyz``."""

    interval: float  # seconds between ticks
    # clock.time() a tick's rows (answers or gaps) were last committed to the database
    last_tick_stored: float | None = None
    db_writable: bool = True
    spool_full: bool = False
    # clock.time() of the first of the latest ticks in a row in which no charger answered
    vendor_outage_since: float | None = None


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: list[str] = field(default_factory=list)  # why not ready, or why degraded
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if not self.ready:
            return "not ready"
        return "degraded" if self.reasons else "ready"

    def as_json(self) -> dict[str, Any]:
        if self.status == "ready":
            return {"status": "ready", **self.details}
        return {"status": self.status, "reasons": list(self.reasons), **self.details}


def evaluate_readiness(state: ReadinessState, now: float) -> Readiness:
    """Ready when a tick was stored within 3 intervals and rows have somewhere to go;
    degraded (still ready) while no charger answers."""
    reasons: list[str] = []
    limit = STALE_INTERVALS * state.interval
    age: float | None = None
    if state.last_tick_stored is None:
        reasons.append("no tick stored yet")
    else:
        # a wall clock stepped backwards must not make a fresh tick look stale
        age = max(0.0, now - state.last_tick_stored)
        if age >= limit:
            reasons.append(f"no tick stored in the database for {age:.0f} s (limit {limit:.0f} s)")
    if not state.db_writable and state.spool_full:
        reasons.append("database not writable and spool full")
    outage: float | None = None
    notes: list[str] = []
    if state.vendor_outage_since is not None:
        outage = max(0.0, now - state.vendor_outage_since)
        notes.append(
            f"vendor outage: no charger has answered for {outage:.0f} s; "
            "each tick is stored as gaps"
        )
    details: dict[str, Any] = {
        "last_tick_age_seconds": None if age is None else round(age, 3),
        "tick_limit_seconds": limit,
        "db_writable": state.db_writable,
        "spool_full": state.spool_full,
        "vendor_outage": state.vendor_outage_since is not None,
        "vendor_outage_seconds": None if outage is None else round(outage, 3),
    }
    return Readiness(ready=not reasons, reasons=reasons + notes, details=details)
