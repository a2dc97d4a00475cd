"""The simulator on a wired site, over real sockets: limits act late, the truth is per fuse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from charged.clock import FakeClock
from charged.simulator import Simulator, SimulatorConfig
from charged.simulator.fleet import charge_point_ids
from charged.simulator.grid import Fuse, GridSpec
from charged.simulator.physics import Car, PhysicsConfig, Visit
from charged.simulator.server import GROUND_TRUTH_PATH

START = 1_767_225_600 + 9 * 3600  # 2026-01-01T09:00Z
SEED = 5
IDS = charge_point_ids(SEED, 2)


def config() -> SimulatorConfig:
    a, b = IDS
    car = Car(1, 16.0, 30.0)
    return SimulatorConfig(
        chargers=2,
        seed=SEED,
        start_time=START,
        physics=PhysicsConfig(
            site=GridSpec(Fuse("main", (40, 40, 40), chargers=(a, b)), {b: "L2L3L1"}),
            limit_delay=(45, 45),
            visits={
                (a, 1): [Visit(START, START + 7200, car)],
                (a, 2): [Visit(START, START + 7200, car)],
                (b, 1): [Visit(START + 60, START + 7200, car)],
                (b, 2): [Visit(START + 60, START + 7200, Car(3, 16.0, 30.0))],
            },
            sample_arrivals=False,
        ),
    )


@pytest.fixture
async def wired() -> AsyncIterator[tuple[Simulator, aiohttp.ClientSession, dict[str, str]]]:
    clock = FakeClock(START, auto_advance=False)
    sim = Simulator(config(), clock=clock)
    await sim.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{sim.base_url}/api/v5/auth/login",
                json={"email": sim.account.email, "password": sim.account.password},
                headers={"apiKey": sim.account.api_key},
            ) as resp:
                token = (await resp.json())["token"]
            yield sim, http, {"Authorization": f"Bearer {token}"}
    finally:
        await sim.stop()


async def currents(
    sim: Simulator, http: aiohttp.ClientSession, auth: dict[str, str], cp: str
) -> list[list[float] | None]:
    async with http.get(f"{sim.base_url}/api/v5/chargepoints/{cp}/status", headers=auth) as r:
        body: dict[str, Any] = await r.json()
    return [
        None if c["measurements"] is None else [m["current"] for m in c["measurements"]]
        for c in body["connectorStatuses"]
    ]


async def test_a_limit_set_through_the_api_acts_after_the_delay_and_the_truth_sees_it(
    wired: tuple[Simulator, aiohttp.ClientSession, dict[str, str]],
) -> None:
    sim, http, auth = wired
    a, b = IDS
    assert await currents(sim, http, auth, a) == [[16, 0.001, 0.001], [16, 0.001, 0.001]]
    sim.fleet.advance(60)
    # b's terminal L1 is site L2: its one-phase car loads L2, its three-phase car all three
    assert await currents(sim, http, auth, b) == [[16, 0.001, 0.001], [16, 16, 16]]
    sim.fleet.advance(40)
    truth = sim.ground_truth()
    assert truth.of("main", "L1").current == 48.0  # 16 + 16 + b's 3-phase terminal L3
    assert truth.of("main", "L1").ampere_seconds_above == pytest.approx(8 * 40)
    assert truth.of("main", "L2").current == 32.0

    url = f"{sim.base_url}/api/v5/chargepoints/{a}/connectors/1/settings"
    async with http.get(url, headers=auth) as r:
        settings = await r.json()
    async with http.put(url, json={**settings, "maxCurrent": 8}, headers=auth) as r:
        assert r.status == 200
    async with http.get(url, headers=auth) as r:
        assert (await r.json())["maxCurrent"] == 8  # the cloud stores it at once...
    sim.fleet.advance(44)
    assert (await currents(sim, http, auth, a))[0] == [16, 0.001, 0.001]  # ...the car is late
    sim.fleet.advance(1)
    assert (await currents(sim, http, auth, a))[0] == [8, 0.001, 0.001]
    truth = sim.ground_truth()
    assert truth.of("main", "L1").current == 40.0
    assert truth.of("main", "L1").seconds_above == 40 + 45

    async with http.get(f"{sim.base_url}{GROUND_TRUTH_PATH}") as r:  # no vendor token
        body = await r.json()
    assert body["until"] == START + 145
    l1 = next(f for f in body["fuses"] if f["phase"] == "L1")
    assert l1 == {
        "fuse": "main",
        "phase": "L1",
        "limit": 40.0,
        "current": 40.0,
        "peak": 48.0,
        "ampereSecondsAbove": 8 * 85,
        "secondsAbove": 85,
    }
    assert sim.writes == 1  # the judge's window is not a request to the vendor's API


async def test_a_plain_simulator_has_no_ground_truth() -> None:
    sim = Simulator(SimulatorConfig(chargers=1, seed=1), clock=FakeClock(START))
    await sim.start("127.0.0.1", 0)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{sim.base_url}{GROUND_TRUTH_PATH}") as r,
        ):
            assert r.status == 404
    finally:
        await sim.stop()


def test_a_site_naming_a_charger_the_fleet_does_not_have_is_refused() -> None:
    bad = PhysicsConfig(site=GridSpec(Fuse("main", (40, 40, 40), chargers=("nope",))))
    with pytest.raises(ValueError, match="charger nope in the site is not a simulated charger"):
        SimulatorConfig(chargers=2, seed=SEED, physics=bad).validate()
