"""Fixtures of the integration tests: a simulated vendor API on a free 127.0.0.1 port, and an
MQTT broker (mosquitto) for the test session.

A module that wants another fleet overrides ``simulator_config`` (the fixture ``simulator``
uses it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from charged.simulator import Simulator, SimulatorConfig
from tests.integration.mqtt_broker import Mosquitto


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(chargers=30, seed=7, speed=1.0)


@pytest.fixture
async def simulator(simulator_config: SimulatorConfig) -> AsyncIterator[Simulator]:
    """The simulator serving ``simulator_config``, recording what it served."""
    sim = Simulator(simulator_config)
    sim.record_served = True
    await sim.start("127.0.0.1", 0)
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the test session (a test that stops its broker makes its own)."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
