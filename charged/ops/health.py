"""Readiness: is this process doing its job?  A pure function of its state and the time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# a tick may be late once or twice (slow API, one skipped grid point) before we say so
STALE_INTERVALS = 3


@dataclass
class ReadinessState:
    """What the supervisor and the writer report; read by ``/readyz``."""

    interval: float  # seconds between ticks
    last_tick_ok: float | None = None  # clock.time() a tick's rows were last in the database
    db_writable: bool = True
    spool_full: bool = False


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        if self.ready:
            return {"status": "ready", **self.details}
        return {"status": "not ready", "reasons": list(self.reasons), **self.details}


def evaluate_readiness(state: ReadinessState, now: float) -> Readiness:
    """Ready when a tick was stored within 3 intervals and rows have somewhere to go."""
    reasons: list[str] = []
    limit = STALE_INTERVALS * state.interval
    age: float | None = None
    if state.last_tick_ok is None:
        reasons.append("no tick stored yet")
    else:
        # a wall clock stepped backwards must not make a fresh tick look stale
        age = max(0.0, now - state.last_tick_ok)
        if age >= limit:
            reasons.append(f"no successful tick for {age:.0f} s (limit {limit:.0f} s)")
    if not state.db_writable and state.spool_full:
        reasons.append("database not writable and spool full")
    details: dict[str, Any] = {
        "last_tick_age_seconds": None if age is None else round(age, 3),
        "tick_limit_seconds": limit,
        "db_writable": state.db_writable,
        "spool_full": state.spool_full,
    }
    return Readiness(ready=not reasons, reasons=reasons, details=details)
