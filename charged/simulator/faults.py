"""Switchable faults of the simulated vendor cloud.

One mutable :class:`Faults` object per simulator: the command line fills it at start and tests
change it while the server runs (``sim.faults.error_rate = 0.2``).  The server reads it on
every request, so a change takes effect with the next request.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

FaultDecision = Literal["none", "timeout", "rate_limit", "error"]
ERROR_STATUSES = (500, 502, 503)


@dataclass
class Faults:
    latency: float = 0.0  # seconds added to every response
    latency_jitter: float = 0.0  # plus uniform(0, jitter) seconds
    error_rate: float = 0.0  # share of data requests answered 500/502/503
    rate_limit_rate: float = 0.0  # share of data requests answered 429 with Retry-After
    retry_after: float = 1.0  # seconds in the Retry-After header
    timeout_rate: float = 0.0  # share of data requests never answered
    malformed: set[str] = field(default_factory=set)  # cp ids whose status body is garbage
    offline: set[str] = field(default_factory=set)  # cp ids reported "Offline"
    no_measurements: bool = False  # measurements null even while charging
    token_lifetime: float = 7200.0  # seconds the server accepts a new access token
    # What the JWT's `exp` claims; None = the truth (token_lifetime).  Setting it above
    # token_lifetime makes tokens die before their announced expiry, unannounced.
    token_exp_claim: float | None = None
    ignore_writes: set[str] = field(default_factory=set)  # cp ids whose settings PUT is a no-op
    # cp id -> the raw value every connector's status reads (Faulted, "7", a new word …)
    connector_status: dict[str, str] = field(default_factory=dict)
    null_readings: set[str] = field(default_factory=set)  # cp ids: L2 current, L3 voltage null

    def validate(self) -> None:
        """Raise ValueError with one line naming the first impossible value."""
        for name in ("error_rate", "rate_limit_rate", "timeout_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.error_rate + self.rate_limit_rate + self.timeout_rate > 1.0:
            raise ValueError("error_rate + rate_limit_rate + timeout_rate must not exceed 1")
        for name in ("latency", "latency_jitter", "retry_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.token_lifetime <= 0:
            raise ValueError(f"token_lifetime must be positive, got {self.token_lifetime}")


class FaultDice:
    """Draws, per request, the delay and which fault (if any) answers it.

    Seeded, so a test that sets ``error_rate=1.0`` or a fixed seed sees a repeatable sequence.
    """

    def __init__(self, faults: Faults, seed: int) -> None:
        self._faults = faults
        self._rng = random.Random(f"faults/{seed}")

    def delay(self) -> float:
        f = self._faults
        jitter = self._rng.uniform(0.0, f.latency_jitter) if f.latency_jitter > 0 else 0.0
        return f.latency + jitter

    def decide(self) -> FaultDecision:
        f = self._faults
        if f.timeout_rate <= 0 and f.rate_limit_rate <= 0 and f.error_rate <= 0:
            return "none"  # the common case costs no random draw
        roll = self._rng.random()
        if roll < f.timeout_rate:
            return "timeout"
        roll -= f.timeout_rate
        if roll < f.rate_limit_rate:
            return "rate_limit"
        roll -= f.rate_limit_rate
        if roll < f.error_rate:
            return "error"
        return "none"

    def error_status(self) -> int:
        return self._rng.choice(ERROR_STATUSES)
