"""The balancer runtime's parts: pins from the audit rows, the connector memory, the actuator."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from charged.balancer.actuator import Actuator, Sent
from charged.balancer.model import ChargerSpec, ConnectorState, Fuse, Site, Write, WriteKind
from charged.balancer.pins import RELEASE_ACTION, AuditRow, PinBook
from charged.balancer.runtime import BalancerRuntime
from charged.balancer.tracking import Tracked, settings_limit
from charged.chargeamps.models import ConnectorSettings, ConnectorStatus, Measurement
from charged.clock import FakeClock
from charged.control.results import ChangeResult, Outcome
from charged.control.validation import ConnectorChange

KEY = ("CP1", 1)


def row(i: int, actor: str, field: str | None, new: str | None, **kw: object) -> AuditRow:
    return AuditRow(
        id=i,
        actor=actor,
        charge_point_id=str(kw.get("cp", "CP1")),
        connector_id=1,
        action=str(kw.get("action", "connector_settings")),
        field=field,
        new_value=new,
        result=str(kw.get("result", "ok")),
    )


def test_a_persons_change_pins_and_a_release_unpins() -> None:
    book = PinBook()
    changed = book.fold(
        [
            row(1, "balancer", "maxCurrent", "10"),  # our own: no pin
            row(2, "cli:ann", "maxCurrent", "16", result="rejected"),  # nothing sent
            row(3, "cli:ann", "maxCurrent", "16", result="failed"),  # did not happen
        ]
    )
    assert changed == [] and book.get(KEY) is None and book.last_id == 3
    assert book.fold([row(4, "control-api", "maxCurrent", "16")]) == [KEY]
    pin = book.get(KEY)
    assert pin is not None and (pin.actor, pin.max_current, pin.since_row) == (
        "control-api",
        16.0,
        4,
    )
    book.fold([row(5, "cli:bob", "mode", '"Off"')])
    pin = book.get(KEY)
    assert pin is not None and (pin.max_current, pin.mode) == (16.0, "Off")
    assert book.fold([row(6, "cli:ann", None, None, action=RELEASE_ACTION)]) == [KEY]
    assert book.get(KEY) is None
    book.pin_outside(KEY)
    pin = book.get(KEY)
    assert pin is not None and pin.actor == "outside charged"


def settings(
    max_current: float | None, mode: str = "On", inst: float | None = 32
) -> ConnectorSettings:
    return ConnectorSettings("CP1", 1, max_current, False, mode, False, inst)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (settings(10), 10.0),
        (settings(None), 16.0),  # no limit: the charger's installation current
        (settings(20, inst=16), 16.0),
        (settings(10, mode="Off"), 0.0),
        (settings(0), 0.0),
    ],
)
def test_the_limit_settings_put_in_force(given: ConnectorSettings, expected: float) -> None:
    assert settings_limit(given, ChargerSpec("CP1", installation_current=16)) == expected


def status(
    state: str, currents: tuple[float, float, float] | None, session: int | None
) -> ConnectorStatus:
    measurements = (
        ()
        if currents is None
        else tuple(
            Measurement(p, i, 230.0) for p, i in zip(("L1", "L2", "L3"), currents, strict=True)
        )
    )
    return ConnectorStatus(
        "CP1",
        1,
        1.5,
        None,
        None,
        state,
        measurements,
        datetime(2026, 1, 5, 7, tzinfo=UTC) if session else None,
        None,
        session,
    )


def test_the_car_is_learned_per_session_and_forgotten_when_it_leaves() -> None:
    tracked = Tracked(KEY)
    tracked.observe(status("Charging", (15.9, 0.001, 0.001), 7), online=True, now=0.0)
    assert tracked.car_max is None  # its limit not read yet: any draw would look like the car's
    tracked.confirm(32.0, 0.0)
    tracked.observe(status("Charging", (15.9, 0.001, 0.001), 7), online=True, now=30.0)
    assert tracked.terminals == {0}
    assert tracked.car_max is None  # 30 s after the limit changed: it may still be ramping
    tracked.observe(status("Charging", (15.9, 0.001, 0.001), 7), online=True, now=60.0)
    assert tracked.car_max == 15.9  # well under its 32 A limit: that is the car's own
    state = tracked.state(60.0, pinned=None, writable=True, min_current=6, settle_s=60)
    assert state.terminals == frozenset({0}) and state.wants_current
    assert state.plugged_since == datetime(2026, 1, 5, 7, tzinfo=UTC).timestamp()
    tracked.observe(status("Available", None, None), online=True, now=60.0)
    assert tracked.terminals == set() and tracked.car_max is None
    assert not tracked.state(90.0, pinned=None, writable=True, min_current=6, settle_s=60).plugged


def test_connected_under_a_pause_wants_current_connected_under_room_is_full() -> None:
    tracked = Tracked(KEY)
    tracked.confirm(0.0, 0.0)
    tracked.observe(status("Connected", None, 7), online=True, now=30.0)
    assert tracked.wants_current(30.0, 6, 60)  # paused by us: it would charge
    tracked.confirm(10.0, 30.0)
    assert tracked.wants_current(60.0, 6, 60)  # given room just now: the car may be slow
    assert not tracked.wants_current(200.0, 6, 60)  # long allowed and not drawing: full


def test_a_full_car_stays_full_until_it_draws_again_or_leaves() -> None:
    """Lowering a full car's limit, or pausing it for want of room, does not make it want
    current again: it flapped 32 <-> 6 A when fullness was judged from the last change, and
    0 <-> 6 A when a paused full car read as a car held back."""
    tracked = Tracked(KEY)
    tracked.observe(status("Connected", None, 7), online=True, now=0.0)
    tracked.confirm(32.0, 0.0)
    tracked.observe(status("Connected", None, 7), online=True, now=30.0)
    assert not tracked.wants_current(300.0, 6, 60)
    tracked.confirm(6.0, 300.0)
    assert not tracked.wants_current(330.0, 6, 60)
    tracked.confirm(0.0, 360.0)  # paused for want of room: still full
    assert not tracked.wants_current(390.0, 6, 60)
    tracked.confirm(6.0, 420.0)  # room again: it draws, so it wants more
    tracked.observe(status("Charging", (6.0, 0.0, 0.0), 7), online=True, now=450.0)
    assert tracked.wants_current(450.0, 6, 60)
    # a new car on the connector is judged afresh: held at 0 it wants current
    tracked.confirm(0.0, 480.0)
    tracked.observe(status("Available", None, None), online=True, now=510.0)
    tracked.observe(status("Connected", None, 8), online=True, now=540.0)
    assert tracked.wants_current(540.0, 6, 60)


def test_a_car_drawing_a_share_of_its_limit_is_not_capped_at_what_it_drew() -> None:
    tracked = Tracked(KEY)
    tracked.observe(status("Charging", (8.0, 0.0, 0.0), 7), online=True, now=0.0)
    tracked.confirm(16.0, 0.0)
    tracked.observe(status("Charging", (8.0, 0.0, 0.0), 7), online=True, now=60.0)
    assert (tracked.car_max, tracked.car_max_limit) == (8.0, 16.0)
    # lowered to its cap (8 + 2 A): it draws half of that, as it drew half of 16
    tracked.confirm(10.0, 60.0)
    tracked.observe(status("Charging", (5.0, 0.0, 0.0), 7), online=True, now=120.0)
    assert tracked.car_max is None and tracked.follows_limit
    state = tracked.state(150.0, pinned=None, writable=True, min_current=6, settle_s=60)
    assert state.car_max is None and state.follows_limit
    # a car whose draw tapers (not in proportion to its limit) keeps its maximum
    taper = Tracked(("CP1", 2))
    taper.observe(status("Charging", (16.0, 0.0, 0.0), 9), online=True, now=0.0)
    taper.confirm(32.0, 0.0)
    taper.observe(status("Charging", (16.0, 0.0, 0.0), 9), online=True, now=60.0)
    taper.confirm(18.0, 60.0)
    taper.observe(status("Charging", (14.0, 0.0, 0.0), 9), online=True, now=120.0)
    assert taper.car_max == 16.0 and not taper.follows_limit
    # at the 6 A floor a draw of 3 A teaches nothing: a cap there could never be undone
    floor = Tracked(("CP1", 3))
    floor.observe(status("Charging", (3.0, 0.0, 0.0), 9), online=True, now=0.0)
    floor.confirm(6.0, 0.0)
    floor.observe(status("Charging", (3.0, 0.0, 0.0), 9), online=True, now=60.0)
    assert floor.car_max is None


def test_a_confirmed_change_keeps_the_previous_limit_and_when() -> None:
    tracked = Tracked(KEY)
    tracked.confirm(16.0, 10.0, full=32.0)
    # the first value read is adopted as a change from the full limit (it may be fresh)
    assert (tracked.previous_limit, tracked.limit_since) == (32.0, 10.0)
    tracked.pending = 8.0
    tracked.confirm(8.0, 40.0)
    # 30 s after the first, the car may still draw 32: the higher old value is carried
    assert (tracked.limit, tracked.previous_limit, tracked.limit_since) == (8.0, 32.0, 40.0)
    assert tracked.pending is None
    tracked.confirm(20.0, 200.0)  # long after: the previous limit is simply the last one
    assert (tracked.limit, tracked.previous_limit, tracked.limit_since) == (20.0, 8.0, 200.0)


def test_a_pause_then_a_start_within_a_minute_keeps_counting_the_old_limit() -> None:
    """32 -> 0 -> 20 within settle_s: the car may still draw 32 (review H4)."""
    from charged.balancer.envelope import worst_case

    tracked = Tracked(KEY)
    tracked.observe(status("Charging", (31.0, 0.0, 0.0), 7), online=True, now=0.0)
    tracked.confirm(32.0, 0.0)
    tracked.confirm(0.0, 100.0)
    tracked.confirm(20.0, 130.0)
    state = tracked.state(131.0, pinned=None, writable=True, min_current=6, settle_s=60)
    assert worst_case(state, ChargerSpec("CP1"), 131.0, settle_s=60) == 32.0


def test_a_poll_missing_a_phase_does_not_make_a_three_phase_car_one_phase() -> None:
    tracked = Tracked(KEY)
    tracked.confirm(16.0, 0.0)
    partial = status("Charging", (15.0, 0.0, 0.0), 7)
    partial = dataclasses.replace(partial, measurements=partial.measurements[:1])
    tracked.observe(partial, online=True, now=30.0)
    assert tracked.terminals == set()  # L2/L3 not read: not known, counted on all three
    tracked.observe(status("Charging", (15.0, 0.0, 0.0), 7), online=True, now=60.0)
    assert tracked.terminals == {0}


def test_another_session_on_the_connector_forgets_the_car() -> None:
    """A car swapped between two polls may be a three-phase one (review H1)."""
    tracked = Tracked(KEY)
    tracked.confirm(16.0, 0.0)
    tracked.observe(status("Charging", (15.0, 0.0, 0.0), 7), online=True, now=30.0)
    assert tracked.terminals == {0}
    tracked.observe(status("Connected", None, None), online=True, now=60.0)  # id lost
    assert tracked.terminals == set()
    tracked.observe(status("Charging", (15.0, 0.0, 0.0), 8), online=True, now=90.0)
    tracked.observe(status("Charging", (15.0, 15.0, 15.0), 9), online=True, now=120.0)
    assert tracked.terminals == {0, 1, 2}


def test_a_car_drawing_above_every_limit_known_is_read_again() -> None:
    tracked = Tracked(KEY)
    tracked.observe(status("Charging", (6.0, 0.0, 0.0), 7), online=True, now=0.0)
    tracked.confirm(6.0, 0.0)
    tracked.observe(status("Charging", (16.0, 0.0, 0.0), 7), online=True, now=30.0)
    assert tracked.needs_read


class FakeController:
    def __init__(self, outcomes: list[ChangeResult]) -> None:
        self.outcomes = outcomes
        self.sent: list[tuple[str, int, ConnectorChange]] = []

    async def set_connector(
        self,
        cp_id: str,
        connector_id: int,
        change: ConnectorChange,
        *,
        unless: Callable[[ConnectorSettings], str | None] | None = None,
    ) -> ChangeResult:
        self.sent.append((cp_id, connector_id, change))
        return self.outcomes.pop(0)


def result(outcome: Outcome, **kw: object) -> ChangeResult:
    return ChangeResult("CP1", 1, "connector_settings", (), outcome, **kw)  # type: ignore[arg-type]


async def test_the_actuator_sends_in_order_and_stops_at_an_unknown_outcome() -> None:
    writes = [
        Write(("CP1", 1), 6.0, 16.0, WriteKind.DECREASE),
        Write(("CP1", 2), 0.0, 10.0, WriteKind.DECREASE),
        Write(("CP2", 1), 12.0, 6.0, WriteKind.INCREASE),
        Write(("CP2", 2), 12.0, 6.0, WriteKind.INCREASE),
    ]
    controller = FakeController(
        [
            result(Outcome.OK),
            result(Outcome.FAILED, error="offline", conflict=True),
            result(Outcome.FAILED, error="ServerError: 503"),
        ]
    )
    sent = await Actuator(controller, max_writes=10).send(writes)
    assert [s.sent for s in sent] == [Sent.CONFIRMED, Sent.REFUSED, Sent.UNKNOWN, Sent.NOT_SENT]
    assert [(c, n, ch.max_current) for c, n, ch in controller.sent] == [
        ("CP1", 1, 6),
        ("CP1", 2, 0),
        ("CP2", 1, 12),
    ]


async def test_the_actuator_sends_at_most_its_bound() -> None:
    writes = [Write(("CP1", n), 6.0, 16.0, WriteKind.DECREASE) for n in (1, 2, 3)]
    controller = FakeController([result(Outcome.OK), result(Outcome.UNCHANGED)])
    sent = await Actuator(controller, max_writes=2).send(writes)
    assert [s.sent for s in sent] == [Sent.CONFIRMED, Sent.CONFIRMED, Sent.NOT_SENT]


async def test_a_write_refused_by_its_check_is_a_change_made_outside() -> None:
    writes = [Write(("CP1", 1), 6.0, 16.0, WriteKind.DECREASE)]
    refused = result(Outcome.REJECTED, error="changed outside charged", conflict=True)
    controller = FakeController([refused])
    sent = await Actuator(controller, max_writes=5).send(writes, lambda w: lambda s: "no")
    assert sent[0].sent is Sent.REFUSED and sent[0].changed_outside


def test_a_charger_back_from_offline_is_read_again_but_not_after_a_cloud_outage() -> None:
    tracked = Tracked(KEY)
    tracked.observe(status("Charging", (10.0, 0.0, 0.0), 7), online=True, now=0.0)
    tracked.confirm(10.0, 0.0)
    tracked.observe(None, online=False, now=30.0, vendor_out=True)  # nobody answered
    tracked.observe(status("Charging", (10.0, 0.0, 0.0), 7), online=True, now=60.0)
    assert tracked.limit == 10.0 and not tracked.needs_read
    tracked.observe(None, online=False, now=90.0)  # this charger alone went away
    assert not tracked.online
    tracked.observe(status("Charging", (10.0, 0.0, 0.0), 7), online=True, now=120.0)
    assert tracked.limit is None and tracked.needs_read  # counted at full until read again


def test_recalled_cars_take_their_terminals_back_through_the_rotation() -> None:
    from charged.balancer.model import Rotation
    from charged.balancer.recall import PastDecision, learned_from

    spec = ChargerSpec("CP1", rotation=Rotation.parse("L2L3L1"))
    site = Site(Fuse("main", (40.0, 40.0, 40.0), chargers=("CP1",)), (spec,))
    rows = [  # newest first, as read
        PastDecision("L2", 12.0, 12.0),  # at its limit: says nothing of the car
        PastDecision("L2", 9.8, 16.0),  # terminal L1 lands on site L2; 9.8 A under 16 A
        PastDecision("L1L2L3", 0.0, 0.0),  # before it drew: counted on all three
    ]
    car = learned_from(site, ("CP1", 1), 42, rows)
    assert (car.session_id, car.terminals, car.car_max) == (42, frozenset({0}), 9.8)
    three = learned_from(site, ("CP1", 2), 43, [PastDecision("L1L2L3", 15.0, 32.0)])
    assert three.terminals == frozenset() and three.car_max == 15.0
    # learned one-phase, then seen on all three: the newest row wins (counted on three)
    later = [PastDecision("L1L2L3", 15.0, 32.0), PastDecision("L2", 15.0, 32.0)]
    assert learned_from(site, ("CP1", 2), 44, later).terminals == frozenset()
    # a car drawing a share of its limit is recalled as one
    share = [PastDecision("L2", 5.0, 10.0), PastDecision("L2", 8.0, 16.0)]
    follower = learned_from(site, ("CP1", 2), 45, share)
    assert follower.follows_limit and follower.car_max is None


def one_charger_runtime(fuse_a: float) -> BalancerRuntime:
    """A runtime over one dual-socket charger CP1 under one fuse, nothing sent anywhere."""

    async def put(_: object) -> None:
        return None

    site = Site(Fuse("main", (fuse_a,) * 3, chargers=("CP1",)), (ChargerSpec("CP1"),))
    return BalancerRuntime(
        site,
        mode="active",
        controller=FakeController([]),  # type: ignore[arg-type]
        audit_rows=None,
        put=put,
        clock=FakeClock(),
    )


def test_a_persons_change_not_yet_landed_counts_at_the_higher_value() -> None:
    """The audit row may be folded before the person's PUT lands: the read-back still shows
    the old 10 A while the car may soon draw the 32 A asked (review H7)."""
    runtime = one_charger_runtime(40.0)
    row = AuditRow(1, "cli", "CP1", 1, "connector_settings", "maxCurrent", "32", "attempted")
    runtime.pins.fold([row])
    runtime._tracked[KEY].confirm(10.0, 0.0)
    by_key = {s.key: s for s in runtime._states(100.0)}
    assert by_key[KEY].pinned == 32.0
    runtime._tracked[KEY].confirm(32.0, 100.0)  # landed
    assert {s.key: s for s in runtime._states(130.0)}[KEY].pinned == 32.0
    # a change found by a read-back only (the vendor's app): the value read is the pin
    runtime.pins.pin_outside(("CP1", 2))
    runtime._tracked[("CP1", 2)].confirm(8.0, 0.0)
    assert {s.key: s for s in runtime._states(130.0)}[("CP1", 2)].pinned == 8.0


def test_the_installation_current_the_vendor_reports_caps_the_connectors() -> None:
    from charged.balancer.allocate import allocate

    runtime = one_charger_runtime(100.0)
    installed_16 = ConnectorSettings("CP1", 1, 32.0, False, "On", False, installation_current=16)
    runtime._tracked[KEY].observe(status("Charging", (15.0, 0.0, 0.0), 7), online=True, now=0.0)
    runtime._adopt(runtime._tracked[KEY], installed_16, 0.0)
    spec = runtime.site.charger("CP1")
    assert spec is not None and spec.connector_max == 16
    assert runtime._tracked[KEY].limit == 16  # 32 A asked, 16 A installed: 16 in force
    # the allocation offers no more than that; an installation above the site's is ignored
    allocation = allocate(runtime.site, runtime._states(200.0), 200.0)
    assert allocation.targets[KEY] <= 16
    runtime._adopt(
        runtime._tracked[KEY], dataclasses.replace(installed_16, installation_current=40), 0.0
    )
    assert runtime.site.charger("CP1").connector_max == 16  # type: ignore[union-attr]


def test_a_car_ramping_to_a_raised_limit_is_not_capped_at_its_old_draw() -> None:
    """The daemon confirms a write at once; the poll 30 s later may show the car still on
    its way up from the old limit, which is not its own maximum."""
    tracked = Tracked(KEY)
    tracked.confirm(6.0, 0.0)
    tracked.observe(status("Charging", (6.0, 0.0, 0.0), 7), online=True, now=60.0)
    tracked.confirm(32.0, 90.0)  # raised: the car takes 30-60 s to follow
    tracked.observe(status("Charging", (9.0, 0.0, 0.0), 7), online=True, now=120.0)
    assert tracked.car_max is None
    tracked.observe(status("Charging", (16.0, 0.0, 0.0), 7), online=True, now=150.0)
    assert (tracked.car_max, tracked.car_max_limit) == (16.0, 32.0)  # its own, now


def built_afresh(tracked: Tracked, now: float, pinned: float | None, writable: bool) -> object:
    """Tracked.state() as it was before it kept its last answer: every field read anew."""
    return ConnectorState(
        key=tracked.key,
        online=tracked.online,
        plugged=tracked.plugged,
        wants_current=tracked.wants_current(now, 6, 60),
        terminals=frozenset(tracked.terminals) if tracked.terminals else None,
        measured=tracked.measured,
        measured_at=tracked._evidence_time(),
        car_max=tracked.car_max,
        follows_limit=True if tracked.follows_limit else None,
        limit=tracked.limit,
        pending=tracked.pending,
        previous_limit=tracked.previous_limit,
        limit_since=tracked.limit_since,
        pinned=pinned,
        plugged_since=tracked.plugged_since,
        session_energy_kwh=tracked.energy_kwh,
        writable=writable and not tracked.refused,
    )


def test_the_state_kept_from_the_last_tick_is_the_one_built_afresh() -> None:
    tracked = Tracked(KEY)
    charging = status("Charging", (15.0, 0.0, 0.0), 7)
    steps: list[Callable[[], object]] = [
        lambda: tracked.confirm(16.0, 0.0),
        lambda: tracked.observe(charging, online=True, now=30.0),
        lambda: tracked.observe(charging, online=True, now=60.0),  # the same status again
        lambda: tracked.terminals.add(1),  # changed in place, not replaced
        lambda: setattr(tracked, "refused", True),  # set from outside
        lambda: tracked.confirm(10.0, 90.0),
        lambda: tracked.observe(status("Available", None, None), online=True, now=120.0),
        lambda: tracked.observe(None, online=False, now=150.0),
    ]
    now = 0.0
    for step in steps:
        step()
        now += 30.0
        for pinned, writable in ((None, True), (None, True), (12.0, True), (None, False)):
            state = tracked.state(now, pinned=pinned, writable=writable, min_current=6, settle_s=60)
            assert state == built_afresh(tracked, now, pinned, writable)
    again = tracked.state(now, pinned=None, writable=False, min_current=6, settle_s=60)
    assert again is tracked.state(now, pinned=None, writable=False, min_current=6, settle_s=60)


def test_a_status_seen_again_is_read_as_a_new_one_would_be() -> None:
    """observe() keeps what it read of the last measurements: the same status object, or
    one with the same measurement objects, leaves it where a fresh parse would."""
    reused, fresh = Tracked(KEY), Tracked(KEY)
    polls = [
        ("Charging", (15.0, 0.0, 0.0), 7),
        ("Charging", (15.0, 0.0, 0.0), 7),
        ("Charging", (15.0, 14.0, 14.5), 7),
        ("Connected", None, 7),
        ("Charging", (9.0, 9.0, 9.0), 8),
        ("Available", None, None),
    ]
    last: ConnectorStatus | None = None
    for n, (state, currents, session) in enumerate(polls):
        built = status(state, currents, session)
        if last is not None and last.measurements == built.measurements:
            built = dataclasses.replace(built, measurements=last.measurements)
        shown = last if last == built else built
        last = shown
        for tracked in (reused, fresh):
            tracked.confirm(16.0 + n, 30.0 * n)
        reused.observe(shown, online=True, now=30.0 * n + 10)
        fresh.observe(status(state, currents, session), online=True, now=30.0 * n + 10)
        assert reused == fresh
