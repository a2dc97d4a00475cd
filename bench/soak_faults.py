"""The soak test's random weather: which API faults hold for the next few ticks.

Each episode is either calm or one or two faults drawn at random, with random strengths.
Every episode starts from :data:`CALM`, so a fault never outlives its episode by accident.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

KINDS = ("5xx", "latency", "429", "offline", "malformed", "token")
CALM: dict[str, Any] = {
    "error_rate": 0.0,
    "rate_limit_rate": 0.0,
    "retry_after": 1.0,
    "latency": 0.0,
    "latency_jitter": 0.0,
    "malformed": [],
    "offline": [],
    "token_lifetime": 7200.0,
    "token_exp_claim": None,
}
CALM_SHARE = 0.3
TOKEN_LIFETIME = 15.0  # seconds the simulator accepts a token while the "token" fault holds
TOKEN_EXP_CLAIM = 3600.0  # what those tokens announce
AGE_TOKENS = 7201.0  # kills the token in use (minted for at most 7200 s)


@dataclass(frozen=True)
class Episode:
    kinds: tuple[str, ...]  # empty: calm
    faults: dict[str, Any]
    age_tokens: float = 0.0

    @property
    def label(self) -> str:
        return "+".join(self.kinds) if self.kinds else "calm"

    def command(self) -> dict[str, Any]:
        command: dict[str, Any] = {"faults": self.faults}
        if self.age_tokens:
            command["age_tokens"] = self.age_tokens
        return command


def draw(rng: random.Random, charge_points: list[str], request_timeout: float) -> Episode:
    if rng.random() < CALM_SHARE:
        return Episode((), dict(CALM))
    kinds = tuple(sorted(rng.sample(KINDS, k=rng.choice((1, 1, 2)))))
    faults = dict(CALM)
    age = 0.0
    for kind in kinds:
        if kind == "5xx":
            faults["error_rate"] = round(rng.uniform(0.05, 0.3), 2)
        elif kind == "latency":
            # a spike around the request timeout: part of the requests give up
            faults["latency"] = round(request_timeout * rng.uniform(0.5, 0.9), 2)
            faults["latency_jitter"] = round(request_timeout * 0.6, 2)
        elif kind == "429":
            faults["rate_limit_rate"] = round(rng.uniform(0.1, 0.5), 2)
            faults["retry_after"] = 0.2
        elif kind == "offline":
            faults["offline"] = rng.sample(charge_points, k=min(len(charge_points), 20))
        elif kind == "malformed":
            faults["malformed"] = rng.sample(charge_points, k=min(len(charge_points), 5))
        elif kind == "token":
            faults["token_lifetime"] = TOKEN_LIFETIME
            faults["token_exp_claim"] = TOKEN_EXP_CLAIM
            age = AGE_TOKENS
    return Episode(kinds, faults, age)
