"""More database faults against `charged run` as a real process (the harness of
test_faults_db.py): a server that is down when the service starts, and one that hangs instead
of refusing.  Each ends with the row-for-row comparison against what the simulator served."""

from __future__ import annotations

import json
import signal

import pytest
from sqlalchemy import func, select

from charged.storage.engine import create_engine
from charged.storage.schema import poll_cycle
from tests.integration import test_faults_db as harness
from tests.integration.test_faults_db import (
    Daemon,
    Scenario,
    assert_database_holds_exactly_what_was_served,
)

pytestmark = pytest.mark.mysql

scenario = harness.scenario  # the same fixture: simulator, TCP proxy, config


async def stored_ticks(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(poll_cycle))).scalar())
    finally:
        await engine.dispose()


async def wait_not_ready(d: Daemon) -> None:
    async def not_ready() -> bool:
        status, body = await d.readyz()
        return status == 503 and body["db_writable"] is False

    await d.wait_for("/readyz 503 while the database does not answer", not_ready)


def set_options(s: Scenario, **sections: dict[str, object]) -> None:
    doc = json.loads(s.config.read_text())
    for section, values in sections.items():
        doc.setdefault(section, {}).update(values)
    s.config.write_text(json.dumps(doc))


async def test_database_down_at_start_collects_into_the_spool_then_migrates_and_replays(
    scenario: Scenario,
) -> None:
    # a fresh database behind a cut proxy: no schema yet, and no server answering
    await scenario.proxy.cut()
    d = Daemon(scenario.workdir, scenario.config, scenario.ops_port, "down-at-start")
    scenario.daemons.append(d)
    await d.start()

    async def spooling() -> bool:
        return await d.metric("charged_rows_spooled_total{table=connector_status}") >= 3 * 12

    await d.wait_for("three ticks spooled while the database is down", spooling)
    await wait_not_ready(d)
    assert "database unreachable at start; collecting into the spool" in d.output()

    await scenario.proxy.restore()
    await d.wait_spool_empty()
    await d.wait_ticks_in_db(1)

    async def ready() -> bool:
        return (await d.readyz())[0] == 200

    await d.wait_for("/readyz 200 once the database answers", ready)
    await d.signal(signal.SIGTERM)
    assert await d.exit_code() == 0, d.output()[-4000:]
    assert "database migrated" in d.output()  # at the first write, not at start
    await assert_database_holds_exactly_what_was_served(scenario.sim, scenario.db_url)
    assert await stored_ticks(scenario.db_url) >= 4


async def test_a_database_that_hangs_is_given_up_on_spooled_and_replayed(
    scenario: Scenario,
) -> None:
    set_options(scenario, writer={"write_timeout": 1.0})
    d = await scenario.daemon()
    await d.wait_ticks_in_db(1)
    # every packet to the server now waits an hour: connections stay open, nothing answers
    scenario.proxy.delay = 3600.0
    spooled = await d.metric("charged_rows_spooled_total{table=connector_status}")

    async def spooling() -> bool:
        now = await d.metric("charged_rows_spooled_total{table=connector_status}")
        return now >= spooled + 2 * 12

    await d.wait_for("ticks spooled while the database hangs", spooling)
    await wait_not_ready(d)

    scenario.proxy.delay = 0.0  # new connections answer again
    await d.wait_spool_empty()
    await d.wait_ticks_in_db(1)
    await d.signal(signal.SIGTERM)
    assert await d.exit_code() == 0, d.output()[-4000:]
    assert "TimeoutError" in d.output()
    await assert_database_holds_exactly_what_was_served(scenario.sim, scenario.db_url)
