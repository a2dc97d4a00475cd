"""The control audit trail in a real database (SQLite and MariaDB): rows are written before a
change is sent and completed after, so a process killed in between leaves 'attempted' rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.chargeamps.client import ChargeAmpsClient
from charged.chargeamps.models import ConnectorSettings
from charged.clock import FakeClock
from charged.control.audit import SqlAuditSink
from charged.control.operations import Controller
from charged.control.results import Outcome
from charged.control.validation import ConnectorChange
from charged.simulator import Simulator, SimulatorConfig
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.schema import control_action

MORNING = 1_767_258_000.0


class Killed(BaseException):
    """Stands for the process dying: nothing in the controller may catch it."""


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade(db_url)
    engine = create_engine(db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def client(fake_clock: FakeClock) -> AsyncIterator[tuple[Simulator, ChargeAmpsClient]]:
    sim = Simulator(SimulatorConfig(chargers=2, seed=3, start_time=MORNING), clock=fake_clock)
    await sim.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            yield (
                sim,
                ChargeAmpsClient(
                    session,
                    base_url=sim.base_url,
                    email=sim.account.email,
                    password=sim.account.password,
                    api_key=sim.account.api_key,
                    clock=fake_clock,
                    max_requests_per_second=None,
                ),
            )
    finally:
        await sim.stop()


async def rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(control_action).order_by(control_action.c.id))
        return [dict(r._mapping) for r in result]


async def test_rows_are_in_the_table_while_the_change_is_sent_then_completed(
    engine: AsyncEngine, client: tuple[Simulator, ChargeAmpsClient], fake_clock: FakeClock
) -> None:
    sim, vendor = client
    cp = sim.charge_point_ids()[0]
    during: list[list[tuple[str, str]]] = []
    real_put = vendor.set_connector_settings

    async def put(settings: ConnectorSettings, *, deadline: float | None = None) -> None:
        during.append([(r["field"], r["result"]) for r in await rows(engine)])
        await real_put(settings, deadline=deadline)

    vendor.set_connector_settings = put  # type: ignore[method-assign]
    controller = Controller(vendor, SqlAuditSink(engine), actor="cli:t", clock=fake_clock)
    result = await controller.set_connector(cp, 2, ConnectorChange(max_current=12, mode="Off"))
    assert result.outcome is Outcome.OK, result.error
    assert during == [[("mode", "attempted"), ("maxCurrent", "attempted")]]
    assert [
        (r["field"], r["old_value"], r["new_value"], r["result"]) for r in await rows(engine)
    ] == [
        ("mode", '"On"', '"Off"', "ok"),
        ("maxCurrent", "null", "12", "ok"),
    ]


async def test_a_process_killed_after_the_put_leaves_attempted_rows(
    engine: AsyncEngine, client: tuple[Simulator, ChargeAmpsClient], fake_clock: FakeClock
) -> None:
    sim, vendor = client
    cp = sim.charge_point_ids()[1]
    real_put = vendor.set_connector_settings

    async def put_then_die(settings: ConnectorSettings, *, deadline: float | None = None) -> None:
        await real_put(settings, deadline=deadline)
        raise Killed

    vendor.set_connector_settings = put_then_die  # type: ignore[method-assign]
    controller = Controller(vendor, SqlAuditSink(engine), actor="cli:t", clock=fake_clock)
    with pytest.raises(Killed):
        await controller.set_connector(cp, 1, ConnectorChange(rfid_lock=True))
    assert (await vendor.connector_settings(cp, 1)).rfid_lock is True  # the change was made
    (row,) = await rows(engine)
    assert (row["charge_point_id"], row["field"], row["new_value"], row["result"]) == (
        cp,
        "rfidLock",
        "true",
        "attempted",
    )


async def test_refused_and_unchanged_attempts_are_one_row_each_written_once(
    engine: AsyncEngine, client: tuple[Simulator, ChargeAmpsClient], fake_clock: FakeClock
) -> None:
    sim, vendor = client
    cp = sim.charge_point_ids()[0]
    controller = Controller(vendor, SqlAuditSink(engine), actor="control-api", clock=fake_clock)
    await controller.reject(cp, 1, "connector_settings", {"maxCurrent": "abc"}, "bad value")
    unchanged = await controller.set_connector(cp, 1, ConnectorChange(mode="On"))
    assert unchanged.outcome is Outcome.UNCHANGED
    assert sim.writes == 0
    assert [(r["field"], r["new_value"], r["result"], r["error"]) for r in await rows(engine)] == [
        ("maxCurrent", '"abc"', "rejected", "bad value"),
        ("mode", '"On"', "unchanged", None),
    ]
