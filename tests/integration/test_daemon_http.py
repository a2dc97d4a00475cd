"""The collector's own HTTP server, as `charged run` wires it: readiness after the first
stored tick, Prometheus metrics of real work, and the control API changing a simulated
charger through the same client and audit table as the daemon."""

from __future__ import annotations

import tempfile
import time
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from charged.config import settings_from_mapping
from charged.daemon.service import CONTROL_API_ACTOR, Daemon
from charged.simulator import Simulator, SimulatorConfig
from charged.storage.schema import control_action

TOKEN = "daemon-control-token-0123456789"


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    """The fleet the shared ``simulator`` fixture serves here."""
    return SimulatorConfig(chargers=3, seed=5, speed=1.0)


def collector_for(sim: Simulator, db_url: str, *, control: bool) -> Daemon:
    settings = settings_from_mapping(
        {
            "api": {
                "base_url": sim.base_url,
                "email": sim.account.email,
                "password": sim.account.password,
                "api_key": sim.account.api_key,
                "max_requests_per_second": None,
            },
            "collector": {"interval": 5},
            "database": {"url": db_url},
            "writer": {"flush_interval": 0.2},
            "spool": {"directory": tempfile.mkdtemp(prefix="charged-test-spool-")},
            "ops": {"host": "127.0.0.1", "port": 0},
            "control": {"enabled": control, "token": TOKEN if control else None},
        },
        source="test",
    )
    return Daemon(settings)


async def get(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.get(url, **kw) as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, await r.text()


async def test_readyz_turns_200_once_a_tick_is_stored_and_metrics_count_it(
    simulator: Simulator, sqlite_url: str
) -> None:
    collector = collector_for(simulator, sqlite_url, control=False)
    try:
        await collector.start()
        assert collector.ops is not None and collector.supervisor is not None
        base = f"http://127.0.0.1:{collector.ops.port}"
        async with aiohttp.ClientSession() as http:
            assert (await get(http, f"{base}/healthz"))[0] == 200
            status, body = await get(http, f"{base}/readyz")
            assert status == 503 and body["reasons"] == ["no tick stored yet"]

            before = time.time()
            tick = await collector.supervisor.tick()
            after = time.time()
            # the readiness mark follows the write: wait for the task the tick started
            for task in list(collector._stored_tasks):
                await task
            status, body = await get(http, f"{base}/readyz")
            assert status == 200 and body["db_writable"] is True

            _, text = await get(http, f"{base}/metrics")
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            assert samples[("charged_ticks_total", (("result", "ok"),))] == 1
            assert samples[("charged_rows_written_total", (("table", "connector_status"),))] == 6
            assert samples[("charged_token_logins_total", ())] == 1
            assert samples[("charged_spool_bytes", ())] == 0
            # what was queued, per table, is what was written; nothing waits any more
            assert collector.writer is not None
            written = collector.writer.rows_written
            assert written["connector_status"] == 6 and written["poll_cycle"] == 1
            assert written["charge_point_status"] == 3 + 3  # the list, then each status
            for table, rows in written.items():
                assert samples[("charged_rows_queued_total", (("table", table),))] == rows
                assert samples[("charged_rows_written_total", (("table", table),))] == rows
            assert samples[("charged_queue_depth", ())] == 0
            # the tick: its duration observed once, its time as the last successful one
            assert samples[("charged_tick_duration_seconds_count", ())] == 1
            assert samples[("charged_tick_duration_seconds_sum", ())] == tick.duration > 0
            last = samples[("charged_last_successful_tick_timestamp_seconds", ())]
            assert before <= last <= after
            # each commit's latency: at least the one of this tick's rows, in real seconds
            writes = samples[("charged_db_write_seconds_count", ())]
            assert writes >= 1
            assert 0 < samples[("charged_db_write_seconds_sum", ())] < 10 * writes
            assert samples[("charged_db_write_seconds_bucket", (("le", "+Inf"),))] == writes
            # the control API is off unless enabled
            status, _ = await get(http, f"{base}/api/control/chargers")
            assert status == 404
    finally:
        await collector.close()


async def test_control_api_on_the_daemon_changes_a_charger_and_audits_it(
    simulator: Simulator, sqlite_url: str
) -> None:
    collector = collector_for(simulator, sqlite_url, control=True)
    cp = simulator.charge_point_ids()[0]
    try:
        await collector.start()
        assert collector.ops is not None
        base = f"http://127.0.0.1:{collector.ops.port}/api/control"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as http:
            assert (await get(http, f"{base}/chargers"))[0] == 401
            wrong = {"Authorization": "Bearer " + "x" * len(TOKEN)}
            assert (await get(http, f"{base}/chargers", headers=wrong))[0] == 401
            status, body = await get(http, f"{base}/chargers", headers=auth)
            assert status == 200 and {c["id"] for c in body["chargers"]} == set(
                simulator.charge_point_ids()
            )
            url = f"{base}/chargers/{cp}/connectors/1/settings"
            async with http.patch(url, json={"maxCurrent": 10}, headers=auth) as r:
                assert r.status == 200, await r.text()
            status, body = await get(http, url, headers=auth)
            assert status == 200 and body["maxCurrent"] == 10
            writes = simulator.writes
            async with http.patch(url, json={"maxCurrent": 40}, headers=auth) as r:
                assert r.status == 400
                refused = await r.json()
            assert simulator.writes == writes  # nothing reached the charger
        assert collector.engine is not None
        async with collector.engine.connect() as conn:
            query = select(control_action).order_by(control_action.c.id)
            rows = (await conn.execute(query)).mappings().all()
        assert [
            (r["actor"], r["charge_point_id"], r["connector_id"], r["field"], r["new_value"])
            for r in rows
        ] == [
            (CONTROL_API_ACTOR, cp, 1, "maxCurrent", "10"),
            (CONTROL_API_ACTOR, cp, 1, "maxCurrent", "40"),
        ]
        # the refused attempt is in the audit trail too, with its one-line reason
        assert [(r["result"], r["error"]) for r in rows] == [
            ("ok", None),
            ("rejected", refused["error"]),
        ]
        assert refused["error"].startswith("maxCurrent must be")
    finally:
        await collector.close()
