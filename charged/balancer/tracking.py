"""What the runtime knows of each connector between ticks: limits in force, and its car.

The allocation and the guarantee are pure; this is the memory that feeds them.  Limits: the
setting last read back (adopted at start), a value sent whose outcome is not known
(``pending``: counted at the higher of old and new until a read-back settles it), and the
value before the last confirmed change with when it was confirmed (a car takes up to a minute
to follow a lowered limit: the guarantee keeps counting the old value that long).  The car:
which charger terminals it draws on and the most it drew while allowed more, learned per
session from the polls and forgotten when the car leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from charged.balancer.model import (
    MAX_CURRENT,
    MIN_CURRENT,
    ChargerSpec,
    ConnectorKey,
    ConnectorState,
)
from charged.chargeamps.models import ConnectorSettings, ConnectorStatus, Measurement

if TYPE_CHECKING:
    from charged.balancer.recall import Recalled

PHASE_INDEX = {"L1": 0, "L2": 1, "L3": 2}
DRAWING_AMPS = 1.0  # a terminal carrying more than this is one the car draws on
# a car drawing this much under its limit or more shows its own maximum, not the limit's
CAR_MAX_BELOW_LIMIT = 2.0
# statuses in which no car is plugged in (anything else counts as plugged, to be safe)
UNPLUGGED = frozenset({"Available", "Offline", "Unknown", "Faulted", "Unavailable"})


class _Parsed(NamedTuple):
    """What a status says of the car's draw, as :meth:`Tracked.observe` reads it."""

    measured: tuple[float, float, float]  # A per terminal; a missing reading is 0
    top: float  # the highest of them
    drawing: tuple[int, ...]  # the terminals carrying more than DRAWING_AMPS
    all_three: bool  # a current was read on each of the three terminals
    started: float | None  # the session's start, seconds since the epoch


def _parse(measurements: tuple[Measurement, ...], start: datetime | None) -> _Parsed:
    per_terminal = [0.0, 0.0, 0.0]
    read: set[int | None] = set()
    for m in measurements:
        index = PHASE_INDEX.get(m.phase.upper())
        if m.current is not None:
            read.add(index)
            if index is not None:
                per_terminal[index] = max(0.0, float(m.current))
    measured = (per_terminal[0], per_terminal[1], per_terminal[2])
    return _Parsed(
        measured,
        max(measured),
        tuple(t for t, amps in enumerate(measured) if amps > DRAWING_AMPS),
        {0, 1, 2} <= read,
        start.timestamp() if start else None,
    )


def settings_limit(settings: ConnectorSettings, spec: ChargerSpec | None) -> float:
    """The limit a connector's settings put in force (A): mode Off 0, no maxCurrent its full."""
    full = spec.connector_max if spec is not None else MAX_CURRENT
    if settings.installation_current is not None:
        full = min(full, settings.installation_current)
    if settings.mode == "Off":
        return 0.0
    if settings.max_current is None:
        return full
    return min(float(settings.max_current), full)


@dataclass
class Tracked:
    """The runtime's memory of one connector."""

    key: ConnectorKey
    limit: float | None = None  # read back (confirmed); None: never read
    pending: float | None = None  # sent, outcome unknown
    previous_limit: float | None = None
    limit_since: float | None = None
    needs_read: bool = True
    # since when the limit has allowed the car to charge (>= 6 A; reset below that and for a
    # new car): a car Connected that long under such a limit is full
    allowed_since: float | None = None
    refused: bool = False  # the vendor refused our writes for it (403): not writable
    # the car of the current session
    session_id: int | None = None
    terminals: set[int] = field(default_factory=set)
    car_max: float | None = None
    car_max_limit: float | None = None  # the limit in force when car_max was seen
    # its draw fell with a lowered limit, in proportion: a car drawing a share of its limit,
    # whose draw says nothing of a maximum of its own
    follows_limit: bool = False
    # judged full (Connected for long under a limit it could charge at): stays so until the
    # car draws again or leaves, so that a full car paused for want of room is not taken
    # for a car held back, given current, judged full again, paused ... every few ticks
    full: bool = False
    plugged_since: float | None = None
    started: float | None = None  # the session's start as the vendor reports it
    drew_at: float | None = None  # last poll it drew current
    status: str = "Unknown"
    measured: tuple[float, float, float] = (0.0, 0.0, 0.0)
    measured_at: float | None = None
    energy_kwh: float = 0.0
    online: bool = False
    # the car drew more than the new limit at the last poll before the latest change: only
    # then does a later poll at or under the new limit show that the car followed it
    above_before_change: bool = False
    # the last ticks had no answer from any charger: a cloud outage, not this charger's; the
    # cloud pushed nothing meanwhile, so its limits need no fresh adoption after it
    _cloud_out: bool = False
    # what observe() read from the last poll's measurements and start time (by identity:
    # immutable values), and state()'s last answer with what it was built from: a poll that
    # repeats the last one (an idle connector, a car drawing the same) costs a comparison,
    # not a parse or a new ConnectorState
    _parsed: tuple[tuple[Measurement, ...], datetime | None, _Parsed] | None = field(
        default=None, repr=False, compare=False
    )
    _state: tuple[tuple[object, ...], ConnectorState] | None = field(
        default=None, repr=False, compare=False
    )
    _frozen_terminals: frozenset[int] | None = field(default=None, repr=False, compare=False)

    def confirm(
        self, value: float, now: float, *, full: float = MAX_CURRENT, settle_s: float = 60.0
    ) -> None:
        """A read-back shows ``value`` in force (after our write or anyone's).

        The first value read (at start, or after a restart) may itself have been set moments
        ago, by a balancer that ran before, and its car may still draw the old one: it is
        adopted as a change from ``full``, so the guarantee keeps counting the full limit
        until a car has had the time to follow.  No increase uses room before that.

        A change that comes while an earlier decrease may still be settling (younger than
        ``settle_s``) keeps the higher old value: after 32 -> 0 -> 20 within a minute the car
        may still draw 32, not 20."""
        if self.limit is None:
            self.previous_limit = full
            self.limit_since = now
            self.above_before_change = max(self.measured) > value
        elif value != self.limit:
            carried = self.limit
            if (
                self.previous_limit is not None
                and self.limit_since is not None
                and self.previous_limit > self.limit
                and now - self.limit_since < settle_s
            ):
                carried = max(carried, self.previous_limit)
            self.previous_limit = carried
            self.limit_since = now
            self.above_before_change = max(self.measured) > value
        if value < MIN_CURRENT:
            self.allowed_since = None
        elif self.allowed_since is None or self.limit is None or self.limit < MIN_CURRENT:
            self.allowed_since = now
        self.limit = value
        self.pending = None
        self.needs_read = False

    def observe(
        self,
        status: ConnectorStatus | None,
        online: bool,
        now: float,
        *,
        vendor_out: bool = False,
        settle_s: float = 60.0,
    ) -> None:
        """This tick's poll of the connector (None: its charger did not answer;
        ``vendor_out``: no charger answered, the vendor's cloud is out; ``settle_s``: how
        long a car takes to follow a changed limit)."""
        was_online = self.online
        self.online = online and status is not None
        if vendor_out:
            self._cloud_out = True
            return
        cloud_was_out, self._cloud_out = self._cloud_out, False
        if self.online and not was_online and self.limit is not None and not cloud_was_out:
            # back after an outage: what the cloud held meanwhile reaches the charger only
            # now, and its car follows late; read it again and count it as fresh
            self.limit = self.pending = None
            self.needs_read = True
        if status is None:
            return
        self.status = status.status
        measurements, start = status.measurements, status.start_time
        parsed = self._parsed
        if parsed is not None and parsed[0] is measurements and parsed[1] is start:
            read = parsed[2]  # the same (immutable) values as the last poll's
        else:
            read = _parse(measurements, start)
            self._parsed = (measurements, start, read)
        measured = read.measured
        self.measured, self.measured_at = measured, now
        self.energy_kwh = status.total_consumption_kwh or 0.0
        if self.status in UNPLUGGED:  # (not plugged)
            self._forget_car()
            return
        started = read.started
        if status.session_id != self.session_id or (
            started is not None and self.started is not None and started != self.started
        ):
            # another session (or one that lost or gained its id): perhaps another car, on
            # other phases; what was learned goes, and it counts on all three again
            if self.session_id is not None or self.terminals or self.car_max is not None:
                self._forget_car()
            self.session_id = status.session_id
        self.started = started if started is not None else self.started
        if self.plugged_since is None:
            self.plugged_since = started if started is not None else now
            if self.allowed_since is not None:
                self.allowed_since = now  # a new car: judge its fullness from now on
        known, pending = self.limit, self.pending  # the higher of the two that are known
        if pending is not None and (known is None or pending > known):
            known = pending
        if known is not None and read.top > known + 1.0:
            # drawing more than its limit: a car still following a decrease, or a change
            # made elsewhere (the app, a write that landed late): read the setting again
            self.needs_read = True
        drawing = read.drawing
        if drawing:
            self.drew_at = now
            self.full = False
            # the terminals it draws on only from a poll with all three currents (_parse):
            # a missing reading is 0 here, and would make a three-phase car look like a
            # one-phase one
            if read.all_three:
                self.terminals.update(drawing)
            # a car still ramping to a limit raised moments ago draws under it by the time
            # it takes, not of its own: that poll would cap it at its old draw for the session
            if self.limit_since is None or now - self.limit_since >= settle_s:
                self.learn_maximum(read.top)

    def recall(self, car: Recalled) -> None:
        """What an earlier run learned of the car of ``car.session_id`` (charged.balancer.
        recall): kept by the first poll only if it still shows that session."""
        self.session_id = car.session_id
        self.terminals = set(car.terminals)
        self.car_max, self.car_max_limit = car.car_max, car.car_max_limit
        self.follows_limit = car.follows_limit

    def learn_maximum(self, top: float) -> None:
        """The most the car draws of its own, from a poll showing it draw ``top``.

        Drawing well under its limit, and under a limit above the 6 A floor (at the floor a
        cap would change nothing but could never be undone), is the car's own maximum.  Not
        while the limit is unknown (the first poll after a start comes before the read-back)
        or under the floor (a car still drawing from before its pause).
        A car whose draw then falls with its lowered limit, in proportion, draws a share of
        its limit: it has no maximum of its own, and is never capped again this session."""
        limit = self.limit
        if limit is None or limit < MIN_CURRENT or self.follows_limit:
            return
        if self.car_max is not None and self.car_max_limit is not None:
            lowered = limit < self.car_max_limit - 0.5 and top < self.car_max - 1.0
            share, before = top / limit, self.car_max / self.car_max_limit
            if lowered and abs(share - before) <= 0.25 * before:
                self.follows_limit, self.car_max, self.car_max_limit = True, None, None
                return
        well_under = top < limit - CAR_MAX_BELOW_LIMIT and limit - CAR_MAX_BELOW_LIMIT > MIN_CURRENT
        if well_under and (self.car_max is None or top > self.car_max):
            self.car_max, self.car_max_limit = top, limit

    def _forget_car(self) -> None:
        self.session_id = None
        self.started = None
        self.terminals = set()
        self.car_max = None
        self.car_max_limit = None
        self.follows_limit = False
        self.full = False
        self.plugged_since = None
        self.drew_at = None

    @property
    def plugged(self) -> bool:
        return self.status not in UNPLUGGED

    def wants_current(self, now: float, min_current: float, settle_s: float) -> bool:
        """Plugged and not full.  A car shows Connected both when full and when held below
        6 A: Connected under a limit that allows it to charge, for longer than a car takes to
        follow the limit, is full."""
        if not self.plugged:
            return False
        if self.status == "Charging":
            return True
        if self.full:
            return False
        limit = self.limit if self.limit is not None else 0.0
        if limit < min_current:
            return True
        # (not the time of the last change: lowering a full car's 32 A to 6 A does not make it
        # want current again, which would flap it between the two every few ticks)
        since = self.allowed_since if self.allowed_since is not None else self.plugged_since
        if since is not None and now - since < settle_s * 2:
            return True
        self.full = True
        return False

    def _evidence_time(self) -> float | None:
        """The poll time the guarantee may take as evidence that the car follows its limit.

        A poll at or under a lowered limit proves the car follows it only if the car drew
        more than that before the change, and the poll came after the change: an idle
        connector, or a car drawing little on its own, "follows" any limit and may take the
        old one the moment a car plugs in or ramps up.  Otherwise the change counts at the
        old value for the full settle time."""
        if self.measured_at is None or self.limit_since is None:
            return self.measured_at
        if self.measured_at > self.limit_since and self.above_before_change:
            return self.measured_at
        return None

    def state(
        self,
        now: float,
        *,
        pinned: float | None,
        writable: bool,
        min_current: float,
        settle_s: float,
    ) -> ConnectorState:
        """The connector as the allocation and the guarantee see it now.

        The last answer again when every field is equal to it (a frozen value may be
        shared): building a ConnectorState costs several times the comparison, and most
        connectors read the same tick after tick."""
        terminals: frozenset[int] | None = None
        if self.terminals:
            terminals = self._frozen_terminals
            if terminals is None or terminals != self.terminals:
                terminals = self._frozen_terminals = frozenset(self.terminals)
        plugged = self.status not in UNPLUGGED  # (self.plugged)
        wants = self.wants_current(now, min_current, settle_s)
        evidence = self._evidence_time()
        follows = True if self.follows_limit else None
        writable = writable and not self.refused
        fields = (
            self.online,
            plugged,
            wants,
            terminals,
            self.measured,
            evidence,
            self.car_max,
            follows,
            self.limit,
            self.pending,
            self.previous_limit,
            self.limit_since,
            pinned,
            self.plugged_since,
            self.energy_kwh,
            writable,
        )
        last = self._state
        if last is not None and last[0] == fields:
            return last[1]
        # (``fields`` is in ConnectorState's order after the key: positional is a quarter
        # cheaper than by keyword, and a charging car's state changes every tick;
        # tests/unit/test_balancer_runtime_parts.py compares it with one built by keyword)
        state = ConnectorState(self.key, *fields)
        self._state = (fields, state)
        return state
