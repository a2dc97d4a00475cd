"""One charging session's figures from its polls: pure functions, no I/O.

A session is the run of ``connector_status`` rows of one connector that carry the same vendor
``session_id``.  Each poll is taken to hold until the next one (the status and the currents a
poll reads stay as they were until the next poll shows otherwise), so with polls every 30 s
every duration here is good to about one poll.  A spacing between polls well above the usual
one is a *gap* (collector down, charger unreachable): that time is counted in ``gap_s`` and is
neither charging nor idle, and no power is assumed across it.

Power is ∑ current × voltage over the phases of a poll (the vendor's ``chargingPowerKw`` only
when a poll came without measurements).  Integrated over the polls it gives
``energy_from_power_kwh``, which is checked against ``observed_energy_kwh``: how far the
vendor's energy counter moved over the same polls.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from charged.chargeamps.states import ConnectorState, is_charging

CHARGING = ConnectorState.CHARGING.value  # stored statuses are normalised names
PHASES = ("L1", "L2", "L3")
# A spacing this many times the usual one is a gap in the polling.
GAP_FACTOR = 1.5
# A phase carries the charge if its current is at least this share of the strongest phase's
# (a one-phase car reads ≈0.001 A on L2/L3, a three-phase car the same on all three) …
PHASE_SHARE = 0.25
# … and polls where the strongest phase reads less than this (a pulsing or paused car) say
# nothing about phases.
PHASE_MIN_CURRENT_A = 1.0


@dataclass(frozen=True, slots=True)
class Poll:
    """One connector_status row of the session, with its measurements."""

    time: datetime  # naive UTC, the tick's poll time
    status: str
    energy_kwh: float | None  # the vendor's counter: energy of the session so far
    power_kw: float | None  # the vendor's chargingPowerKw
    phases: Mapping[str, tuple[float, float]]  # phase -> (current A, voltage V)
    row_id: int = 0
    session_type: str | None = None
    start_time: datetime | None = None  # what the status said, naive UTC
    end_time: datetime | None = None

    @property
    def power_w(self) -> float | None:
        """∑ I × V over the phases; the vendor's figure only if no phase was measured."""
        if self.phases:
            return sum(current * voltage for current, voltage in self.phases.values())
        if self.power_kw is not None:
            return self.power_kw * 1000.0
        return None

    @property
    def charging(self) -> bool:
        """Drawing power: Charging only (SuspendedEV/EVSE keep the session open, idle)."""
        return is_charging(self.status)


@dataclass(frozen=True, slots=True)
class VendorSession:
    """What the vendor's chargingsessions endpoint said: authoritative where present."""

    start: datetime | None
    end: datetime | None
    energy_kwh: float | None
    session_type: str | None = None
    rfid: str | None = None  # the tag that started it
    user_id: str | None = None  # the vendor's user


@dataclass(frozen=True, slots=True)
class SessionFacts:
    session_type: str | None
    start_time: datetime | None
    end_time: datetime | None
    energy_kwh: float | None
    energy_from_power_kwh: float | None
    observed_energy_kwh: float | None
    peak_power_w: float | None
    mean_power_w: float | None
    phases: int | None
    connected_s: float | None
    charging_s: float
    idle_after_s: float
    polls: int
    gap_count: int
    gap_s: float
    first_poll: datetime | None
    last_poll: datetime | None
    last_status_id: int | None

    def columns(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def usual_spacing(polls: Sequence[Poll], interval: float) -> float:
    """The normal time between two polls: their median spacing, ``interval`` if too few."""
    return usual_spacing_of([p.time for p in polls], interval)


def usual_spacing_of(times: Sequence[datetime], default: float = 30.0) -> float:
    """The median spacing of the times (seconds), ``default`` when there are fewer than 4."""
    spacings = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    if len(spacings) < 3:
        return default
    return max(1.0, statistics.median(spacings))


def detect_phases(polls: Sequence[Poll]) -> int | None:
    """How many phases carried the charge, by the most common count over the charging polls."""
    counts: Counter[int] = Counter()
    for poll in polls:
        if not poll.charging or not poll.phases:
            continue
        strongest = max(current for current, _ in poll.phases.values())
        if strongest < PHASE_MIN_CURRENT_A:
            continue
        used = sum(1 for current, _ in poll.phases.values() if current >= PHASE_SHARE * strongest)
        counts[used] += 1
    if not counts:
        return None
    # ties go to the larger count: a car that briefly drops phases still charged on them
    return max(counts.items(), key=lambda item: (item[1], item[0]))[0]


def _phases_from_type(session_type: str | None) -> int | None:
    return {"OnePhase": 1, "ThreePhase": 3}.get(session_type or "")


def derive_session(
    polls: Sequence[Poll],
    *,
    next_poll: datetime | None,
    next_start: datetime | None = None,
    vendor: VendorSession | None = None,
    interval: float = 30.0,
) -> SessionFacts:
    """The session's figures from its polls (oldest first).

    ``next_poll``: the connector's first poll after the session's last one, which no longer
    shows the session (None while it still runs).  ``next_start``: when the connector's next
    session began, if known.  ``vendor``: the reconciled values.

    The end: the vendor's ``endTime`` once reconciled (authoritative, taken as it is); before
    that the status's ``endTime`` if a poll showed one, else the first poll that no longer
    shows the session.  Either is capped by ``next_start``, so the session ends at the
    latest when the next one on its connector began (the first poll after it may be a poll
    of the next session, or come after a gap the next one began in), and never before the
    last poll that showed it.
    """
    polls = sorted(polls, key=lambda p: p.time)
    spacing = usual_spacing(polls, interval)
    gap_after = GAP_FACTOR * spacing

    status_start = next((p.start_time for p in polls if p.start_time is not None), None)
    status_end = next((p.end_time for p in reversed(polls) if p.end_time is not None), None)
    start = (vendor.start if vendor else None) or status_start
    if start is None and polls:
        start = polls[0].time
    end = vendor.end if vendor else None
    if end is None:
        # not confirmed by the vendor yet: what the polls showed
        end = status_end or next_poll
        if end is not None and next_start is not None and polls:
            end = max(min(end, next_start), polls[-1].time)

    gap_count = 0
    gap_s = 0.0
    charging_s = 0.0
    charging_with_power_s = 0.0
    energy_from_power = 0.0
    idle_after_s = 0.0
    powered = False
    for i, poll in enumerate(polls):
        last = i + 1 == len(polls)
        until = end if last else polls[i + 1].time
        if until is None:  # the running session's latest poll: nothing known after it yet
            continue
        span = max(0.0, (until - poll.time).total_seconds())
        known = span
        if span > gap_after:
            gap_count += 1
            gap_s += span - spacing
            known = spacing
        if poll.charging:
            charging_s += known
            idle_after_s = 0.0
            power = poll.power_w
            if power is not None and not last:
                energy_from_power += power * known / 3_600_000.0
                charging_with_power_s += known
                powered = True
        else:
            idle_after_s += known
    if polls and start is not None:
        unseen = (polls[0].time - start).total_seconds()
        if unseen > gap_after:
            # begun before the collector saw it (started late, or the charger was unreachable)
            gap_count += 1
            gap_s += unseen

    powers = [p.power_w for p in polls if p.charging and p.power_w is not None]
    counters = [p.energy_kwh for p in polls if p.energy_kwh is not None]
    counter_energy = max(counters) if counters else None
    energy = vendor.energy_kwh if vendor and vendor.energy_kwh is not None else counter_energy
    session_type = (vendor.session_type if vendor else None) or next(
        (p.session_type for p in reversed(polls) if p.session_type), None
    )
    connected_to = end or (polls[-1].time if polls else None)
    return SessionFacts(
        session_type=session_type,
        start_time=start,
        end_time=end,
        energy_kwh=energy,
        energy_from_power_kwh=energy_from_power if powered else None,
        observed_energy_kwh=counters[-1] - counters[0] if len(counters) >= 2 else None,
        peak_power_w=max(powers) if powers else None,
        mean_power_w=energy_from_power * 3_600_000.0 / charging_with_power_s
        if charging_with_power_s > 0
        else None,
        phases=detect_phases(polls) or _phases_from_type(session_type),
        connected_s=(connected_to - start).total_seconds()
        if connected_to is not None and start is not None
        else None,
        charging_s=charging_s,
        idle_after_s=idle_after_s,
        polls=len(polls),
        gap_count=gap_count,
        gap_s=gap_s,
        first_poll=polls[0].time if polls else None,
        last_poll=polls[-1].time if polls else None,
        last_status_id=max(p.row_id for p in polls) if polls else None,
    )


def gap_spans(times: Sequence[datetime], interval: float) -> list[tuple[datetime, datetime]]:
    """Stretches between consecutive poll times that are gaps (for marking them in plots)."""
    spacing = timedelta(seconds=GAP_FACTOR * interval)
    return [(a, b) for a, b in itertools.pairwise(times) if b - a > spacing]
