"""Max-min fair shares of shared capacities: progressive filling (pure, no balancer types).

Every claim draws on a set of capacities (a fuse phase each) at ``rate`` per unit of its
level, up to a level ``cap``.  All levels rise together; a claim stops when it reaches its cap
or when one of its capacities is used up (that capacity is its *bottleneck*).  The result is
the max-min fair allocation: no claim can get more without taking from one that has no more.

Event driven, so that ten thousand claims under a deep tree cost milliseconds: a heap of the
levels at which each capacity would run out (recomputed only for capacities whose set of
rising claims changed) and a heap of the claims' caps.  O((claims x capacities per claim +
capacities) x log).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import NamedTuple

EPSILON = 1e-9


# Named tuples, not dataclasses: a tick makes one of each per car, and a tuple is built in a
# third of the time (bench/allocation.py).
class Claim(NamedTuple):
    capacities: tuple[int, ...]  # indices into the capacity list
    cap: float  # the highest level this claim may reach (>= 0)
    rate: float = 1.0  # what one unit of level uses of each of its capacities (> 0)


class Share(NamedTuple):
    level: float  # the claim's level; it uses level x rate of each of its capacities
    bottleneck: int | None  # the capacity that stopped it; None: it reached its cap


def water_fill(capacity: Sequence[float], claims: Sequence[Claim]) -> list[Share]:
    """The max-min fair level of every claim (in the order given)."""
    n_cap = len(capacity)
    left = [max(0.0, c) for c in capacity]  # capacity not yet used, as of ``mark``
    mark = [0.0] * n_cap  # the common level at which ``left`` was last brought up to date
    slope = [0.0] * n_cap  # the sum of the rates of the rising claims using it
    users: list[list[int]] = [[] for _ in range(n_cap)]
    for i, claim in enumerate(claims):
        for r in claim.capacities:
            slope[r] += claim.rate
            users[r].append(i)
    level: list[float | None] = [None] * len(claims)  # None: still rising
    bottleneck: list[int | None] = [None] * len(claims)
    version = [0] * n_cap
    run_out: list[tuple[float, int, int]] = []  # (level it runs out at, capacity, version)

    def push(r: int) -> None:
        version[r] += 1
        if slope[r] > EPSILON:
            heapq.heappush(run_out, (mark[r] + left[r] / slope[r], r, version[r]))

    for r in range(n_cap):
        push(r)
    caps = [(max(0.0, c.cap), i) for i, c in enumerate(claims)]
    heapq.heapify(caps)
    rising = len(claims)

    while rising:
        while run_out and run_out[0][2] != version[run_out[0][1]]:
            heapq.heappop(run_out)  # stale: its slope changed since
        while caps and level[caps[0][1]] is not None:
            heapq.heappop(caps)
        next_out = run_out[0][0] if run_out else float("inf")
        next_cap = caps[0][0] if caps else float("inf")
        if next_cap <= next_out + EPSILON:
            at, i = heapq.heappop(caps)
            why: int | None = None
            stopping = [i]
        else:
            at, why, _ = heapq.heappop(run_out)
            stopping = [i for i in users[why] if level[i] is None]
        # every capacity these claims use: brought up to ``at`` once, then their rates off
        dirty: set[int] = set()
        for i in stopping:
            level[i] = at
            bottleneck[i] = why
            dirty.update(claims[i].capacities)
        for r in dirty:
            left[r] = max(0.0, left[r] - slope[r] * (at - mark[r]))
            mark[r] = at
        for i in stopping:
            rate = claims[i].rate
            for r in claims[i].capacities:
                slope[r] -= rate
        rising -= len(stopping)
        if why is not None:
            left[why], slope[why] = 0.0, 0.0  # used up: nothing more is pushed for it
            version[why] += 1
            dirty.discard(why)
        for r in dirty:  # once per capacity per event, however many claims stopped on it
            push(r)
    return [
        Share(lv if lv is not None else 0.0, b) for lv, b in zip(level, bottleneck, strict=True)
    ]
