"""The balancer runtime's parts: pins from the audit rows, the connector memory, the actuator."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from charged.balancer.actuator import Actuator, Sent
from charged.balancer.model import ChargerSpec, Write, WriteKind
from charged.balancer.pins import RELEASE_ACTION, AuditRow, PinBook
from charged.balancer.tracking import Tracked, settings_limit
from charged.chargeamps.models import ConnectorSettings, ConnectorStatus, Measurement
from charged.control.operations import ChangeResult, Outcome
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


def test_a_full_car_lowered_from_32_to_6_a_stays_full() -> None:
    """Lowering a full car's limit does not make it want current again (it flapped 32 <-> 6
    every few ticks when fullness was judged from the last change)."""
    tracked = Tracked(KEY)
    tracked.observe(status("Connected", None, 7), online=True, now=0.0)
    tracked.confirm(32.0, 0.0)
    tracked.observe(status("Connected", None, 7), online=True, now=30.0)
    assert not tracked.wants_current(300.0, 6, 60)
    tracked.confirm(6.0, 300.0)
    assert not tracked.wants_current(330.0, 6, 60)
    tracked.confirm(0.0, 360.0)  # paused: a Connected car now may be one held back
    assert tracked.wants_current(390.0, 6, 60)
    tracked.confirm(6.0, 390.0)  # allowed again: judged afresh
    assert tracked.wants_current(420.0, 6, 60)
    assert not tracked.wants_current(520.0, 6, 60)


def test_a_confirmed_change_keeps_the_previous_limit_and_when() -> None:
    tracked = Tracked(KEY)
    tracked.confirm(16.0, 10.0, full=32.0)
    # the first value read is adopted as a change from the full limit (it may be fresh)
    assert (tracked.previous_limit, tracked.limit_since) == (32.0, 10.0)
    tracked.pending = 8.0
    tracked.confirm(8.0, 40.0)
    assert (tracked.limit, tracked.previous_limit, tracked.limit_since) == (8.0, 16.0, 40.0)
    assert tracked.pending is None


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
    from charged.balancer.model import Fuse, Rotation, Site
    from charged.balancer.recall import PastDecision, learned_from

    spec = ChargerSpec("CP1", rotation=Rotation.parse("L2L3L1"))
    site = Site(Fuse("main", (40.0, 40.0, 40.0), chargers=("CP1",)), (spec,))
    rows = [
        PastDecision("L1L2L3", 0.0, 0.0),  # before it drew: counted on all three
        PastDecision("L2", 9.8, 16.0),  # terminal L1 lands on site L2; 9.8 A under 16 A
        PastDecision("L2", 12.0, 12.0),  # at its limit: says nothing of the car
    ]
    car = learned_from(site, ("CP1", 1), 42, rows)
    assert (car.session_id, car.terminals, car.car_max) == (42, frozenset({0}), 9.8)
    three = learned_from(site, ("CP1", 2), 43, [PastDecision("L1L2L3", 15.0, 32.0)])
    assert three.terminals == frozenset() and three.car_max == 15.0
