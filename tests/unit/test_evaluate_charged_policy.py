"""charged's balancer as an evaluation policy: never above a fuse where uncontrolled is,
the optimum never below it, and the real tracking, allocation and guarantee behind it."""

from __future__ import annotations

import pytest

from charged.balancer.evaluate.charged_policy import (
    ChargedPolicy,
    StatusCache,
    charged,
    charged_measured,
    connector_status,
)
from charged.balancer.evaluate.engine import EngineParams, run
from charged.balancer.evaluate.metrics import figures
from charged.balancer.evaluate.policies import Uncontrolled
from charged.balancer.evaluate.telemetry import (
    AVAILABLE,
    CHARGING,
    CONNECTED,
    ConnectorTelemetry,
    Telemetry,
)
from charged.balancer.model import ChargerSpec, Fuse, Rotation, Site
from tests.unit.test_evaluate_engine import T0, V, scenario, site, visit


def nested_site() -> Site:
    """A 40 A main over a 25 A row of two chargers (one rotated) and a third charger."""
    chargers = (
        ChargerSpec("CP1"),
        ChargerSpec("CP2", rotation=Rotation.parse("L2L3L1")),
        ChargerSpec("CP3", rotation=Rotation.parse("L3L1L2")),
    )
    row = Fuse("row", (25.0, 25.0, 25.0), chargers=("CP1", "CP2"))
    return Site(Fuse("main", (40.0, 40.0, 40.0), children=(row,), chargers=("CP3",)), chargers)


def busy_morning() -> object:
    # six cars, one- and three-phase, arriving a few minutes apart; one draws half its limit
    return scenario(
        visit(T0 + 10, 4 * 3600, 20.0, phases=3, amps=16.0, charger="CP1", connector=1),
        visit(T0 + 200, 3 * 3600, 12.0, amps=32.0, charger="CP1", connector=2),
        visit(T0 + 400, 4 * 3600, 15.0, phases=3, amps=32.0, charger="CP2", connector=1),
        visit(T0 + 650, 2 * 3600, 6.0, amps=16.0, charger="CP2", connector=2, follows=0.5),
        visit(T0 + 900, 3 * 3600, 18.0, phases=3, amps=16.0, charger="CP3", connector=1),
        visit(T0 + 1500, 3 * 3600, 10.0, amps=16.0, charger="CP3", connector=2),
    )


@pytest.mark.parametrize("delay", [(30, 60), (60, 60), (0, 0)])
def test_charged_keeps_every_fuse_where_uncontrolled_overloads(delay: tuple[int, int]) -> None:
    day, where = busy_morning(), nested_site()
    params = EngineParams(limit_delay_s=delay)
    uncontrolled = figures(run(day, where, Uncontrolled(where), params))
    assert uncontrolled.ampere_seconds_above > 10_000  # the scenario binds
    result = figures(run(day, where, charged(where), params))
    assert result.ampere_seconds_above == 0
    assert result.seconds_above == 0
    assert result.energy_kwh > 0.5 * uncontrolled.energy_kwh  # and it does charge the cars


def test_charged_on_four_one_phase_cars_under_a_tight_fuse() -> None:
    # the engine's own tight case: four 16 A one-phase cars on L1 under 24 A
    four = scenario(
        *(
            visit(T0 + 600 * n, 4 * 3600, 8.0, charger=f"CP{n // 2 + 1}", connector=n % 2 + 1)
            for n in range(4)
        )
    )
    tight = site(24.0)
    assert run(four, tight, Uncontrolled(tight)).truth.ampere_seconds_above > 0
    result = run(four, tight, charged(tight))
    assert result.truth.ampere_seconds_above == 0
    assert result.truth.of("main", "L1").peak <= 24.0
    # the fuse is used: more than half of 24 A over the four hours the cars are there
    assert sum(s.delivered_kwh for s in result.sessions) > 0.5 * 24 * V * 4 * 3600 / 3.6e6


def test_the_optimum_is_never_below_charged() -> None:
    pytest.importorskip("scipy")
    from charged.balancer.evaluate.optimum import optimum_figures, solve

    day, where = busy_morning(), nested_site()
    best = optimum_figures(solve(day, where, step_s=60))
    for factory in (charged, charged_measured):
        result = figures(run(day, where, factory(where)))
        # a policy above a fuse may beat it by at most what its excess carried
        excess_kwh = 3 * V * result.ampere_seconds_above / 3.6e6
        assert result.energy_kwh <= best.energy_kwh + excess_kwh + 1e-6, factory.__name__


def test_measured_mode_is_the_plans_measured_mode() -> None:
    where = site(24.0)
    assert charged(where).params.mode == "guarantee" and charged(where).name == "charged"
    measured = charged_measured(where)
    assert measured.params.mode == "measured" and measured.name == "charged-measured"


def test_a_write_is_confirmed_at_once_as_the_daemons_read_back_does() -> None:
    where = site(100.0)
    policy = ChargedPolicy(where)
    key = ("CP1", 1)

    def poll(t: float, setting: float, currents: tuple[float, float, float] | None) -> Telemetry:
        readings = {
            k: ConnectorTelemetry(k, AVAILABLE, None, 0.0, 0.0, None)
            for k in where.connector_keys()
        }
        status = CHARGING if currents is not None else "Connected"
        readings[key] = ConnectorTelemetry(key, status, currents, setting, 0.1, T0 - 5)
        return Telemetry(t, readings)

    # at start every setting read is counted at full for settle_s: nothing is raised yet
    assert policy.decide(poll(T0, 0.0, None)) == {}
    assert policy.decide(poll(T0 + 30, 0.0, None)) == {}
    first = policy.decide(poll(T0 + 60, 0.0, None))
    assert first[key] >= 6  # a car wants current: started from 0
    tracked = policy._tracked[key]
    # the cloud holds the new value at once (the car follows it later): confirmed, with the
    # change's time, as runtime._apply confirms a write the vendor read back
    assert tracked.pending is None and tracked.limit == first[key]
    assert tracked.previous_limit == 0.0 and tracked.limit_since == T0 + 60
    policy.decide(poll(T0 + 90, first[key], (first[key], 0.0, 0.0)))
    assert tracked.pending is None and tracked.limit == first[key]
    # and the car was seen on terminal L1 only: a one-phase car
    assert tracked.terminals == {0}


def test_a_reading_becomes_the_vendors_connector_status() -> None:
    reading = ConnectorTelemetry(("CP1", 2), CHARGING, (10.0, 0.0, 0.0), 16.0, 1.5, T0)
    status = connector_status(reading)
    assert (status.charge_point_id, status.connector_id, status.status) == ("CP1", 2, CHARGING)
    assert [(m.phase, m.current) for m in status.measurements] == [
        ("L1", 10.0),
        ("L2", 0.0),
        ("L3", 0.0),
    ]
    assert status.total_consumption_kwh == 1.5
    assert status.start_time is not None and status.start_time.timestamp() == T0
    assert status.session_id == T0
    idle = connector_status(ConnectorTelemetry(("CP1", 1), AVAILABLE, None, 0.0, 0.0, None))
    assert idle.measurements == () and idle.session_id is None and idle.start_time is None


def test_the_status_cache_gives_what_connector_status_gives() -> None:
    # the same connector poll after poll: idle, a car arriving, drawing, its energy growing,
    # its draw changing, paused, gone, another car; and a second connector in between
    key, other = ("CP1", 2), ("CP2", 1)
    polls = [
        ConnectorTelemetry(key, AVAILABLE, None, 0.0, 0.0, None),
        ConnectorTelemetry(key, AVAILABLE, None, 6.0, 0.0, None),
        ConnectorTelemetry(other, CHARGING, (16.0, 16.0, 16.0), 16.0, 0.2, T0 - 60),
        ConnectorTelemetry(key, CONNECTED, None, 6.0, 0.0, T0),
        ConnectorTelemetry(key, CHARGING, (6.0, 0.0, 0.0), 6.0, 0.01, T0),
        ConnectorTelemetry(key, CHARGING, (6.0, 0.0, 0.0), 6.0, 0.02, T0),
        ConnectorTelemetry(key, CHARGING, (10.0, 0.0, 0.0), 10.0, 0.05, T0),
        ConnectorTelemetry(key, CONNECTED, None, 0.0, 0.05, T0),
        ConnectorTelemetry(key, AVAILABLE, None, 0.0, 0.0, None),
        ConnectorTelemetry(key, CHARGING, (6.0, 0.0, 0.0), 6.0, 0.01, T0 + 3600),
        ConnectorTelemetry(other, CHARGING, (16.0, 16.0, 16.0), 16.0, 0.2, T0 - 60),
    ]
    cache = StatusCache()
    for reading in polls:
        assert cache(reading) == connector_status(reading)
        assert cache(reading) == connector_status(reading)  # and again, from the cache
