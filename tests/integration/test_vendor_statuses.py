"""The vendor's status shapes end to end: a mixed fleet (CAPI and OCPP, names and digits, a
Halo, a single connector owner) polled one by one or in one organisation call, into SQLite
and MariaDB; what the simulator served and what was stored are compared row for row."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from charged.chargeamps.states import CAPI_CODES, OCPP_CODES, normalise
from charged.config import Settings, settings_from_mapping
from charged.daemon.service import Daemon
from charged.simulator import Simulator, SimulatorConfig
from tests.integration.test_collector_e2e import fetch

CHARGERS = 14  # the mixed cycle of seven kinds, twice
# A Tuesday 18:00 UTC in the garage: cars are charging whatever the wall clock says.  Without
# a fixed start the fleet followed the machine's time of day, and a night-time run found no
# charging connector to compare.
EVENING = datetime(2026, 12, 1, 18, 0, tzinfo=UTC).timestamp()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(
        SimulatorConfig(
            chargers=CHARGERS,
            seed=3,
            mixed_fleet=True,
            record_served=True,
            start_time=EVENING,
        )
    )
    await simulator.start("127.0.0.1", 0)
    try:
        yield simulator
    finally:
        await simulator.stop()


def settings(sim: Simulator, db_url: str, **api: Any) -> Settings:
    return settings_from_mapping(
        {
            "api": {
                "base_url": sim.base_url,
                "email": sim.account.email,
                "password": sim.account.password,
                "api_key": sim.account.api_key,
                "max_requests_per_second": None,
                **api,
            },
            "collector": {"interval": 5},
            "database": {"url": db_url},
            "writer": {"flush_interval": 0.2},
            "spool": {"directory": tempfile.mkdtemp(prefix="charged-test-spool-")},
            "ops": {"enabled": False},
            "sessions": {"enabled": False},
        },
        source="test",
    )


def expected_status(sim: Simulator, cp_id: str, raw: object) -> str:
    """What the stored status must be, from the reference (not from charged's own table)."""
    cp = sim.fleet.charge_points()[sim.charge_point_ids().index(cp_id)]
    if isinstance(raw, int):
        table = OCPP_CODES if cp.kind.ocpp_version else CAPI_CODES
        return table[raw].value
    return str(raw)


async def tick_and_compare(sim: Simulator, db_url: str, **api: Any) -> tuple[int, int]:
    """One tick; every served connector stored with its normalised status and raw value.
    → (status requests, organisation requests) the tick made."""
    async with Daemon(settings(sim, db_url, **api)) as collector:
        assert collector.supervisor is not None and collector.writer is not None
        await collector.supervisor.tick()  # discovery (owned list) happens here
        sim.clear_served()
        before = dict(sim.request_counts)
        result = await collector.supervisor.tick()
        await collector.writer.wait_flushed()
    assert (result.asked, result.ok, result.failed) == (CHARGERS, CHARGERS, 0)
    served = {s.charge_point_id: s.body for s in sim.served}
    assert len(served) == CHARGERS
    rows = [
        r for r in await fetch(db_url, "connector_status") if r["date_created"] == result.tick_time
    ]
    sent = {
        (cp, c["connectorId"]): c for cp, body in served.items() for c in body["connectorStatuses"]
    }
    assert len(rows) == len(sent)
    kinds_seen: set[str] = set()
    for row in rows:
        connector = sent[(row["charge_point_id"], row["connector_id"])]
        raw = connector["status"]
        assert row["status"] == expected_status(sim, row["charge_point_id"], raw)
        assert normalise(row["status"]) is not None
        # the raw value is kept: a digit in status_raw, a name needs none
        assert row["status_raw"] == (str(raw) if isinstance(raw, int) else None)
        assert row["session_type"] == connector["sessionType"]
        kinds_seen.add("digit" if isinstance(raw, int) else "name")
    assert kinds_seen == {"digit", "name"}
    # the tick's count of charging connectors reads digits too (a CAPI 1, an OCPP 2)
    assert result.charging == sum(1 for r in rows if r["status"] == "Charging") > 0
    assert any(r["status"] == "Charging" and r["status_raw"] for r in rows)
    counts = {k: v - before.get(k, 0) for k, v in sim.request_counts.items()}
    return counts.get("status", 0), counts.get("organisation", 0)


async def test_a_mixed_fleet_polled_one_by_one_is_stored_normalised(
    sim: Simulator, db_url: str
) -> None:
    assert await tick_and_compare(sim, db_url) == (CHARGERS, 0)


async def test_one_organisation_call_replaces_a_request_per_charger(
    sim: Simulator, db_url: str
) -> None:
    org = sim.config.organisation_id
    assert await tick_and_compare(sim, db_url, organisation_id=org) == (0, 1)


async def test_a_failing_organisation_call_falls_back_to_one_request_per_charger(
    sim: Simulator, db_url: str
) -> None:
    # an id the vendor does not know: 404, then every charger on its own, all stored
    assert await tick_and_compare(sim, db_url, organisation_id="not-ours") == (CHARGERS, 0)


async def test_a_malformed_entry_of_the_organisation_answer_costs_only_that_charger(
    sim: Simulator, sqlite_url: str
) -> None:
    bad = sim.charge_point_ids()[4]
    sim.faults.malformed.add(bad)
    org = sim.config.organisation_id
    async with Daemon(settings(sim, sqlite_url, organisation_id=org)) as collector:
        assert collector.supervisor is not None and collector.writer is not None
        before = dict(sim.request_counts)
        result = await collector.supervisor.tick()
        await collector.writer.wait_flushed()
    assert (result.ok, result.failed) == (CHARGERS - 1, 1)
    assert result.failures == {bad: "malformed payload"}
    assert sim.request_counts["status"] == before.get("status", 0)  # none asked on its own
    gaps = await fetch(sqlite_url, "poll_gap")
    assert [g["charge_point_id"] for g in gaps] == [bad]


async def test_a_halo_has_a_schuko_connector_and_a_single_owner_sees_one(
    sim: Simulator, sqlite_url: str
) -> None:
    async with Daemon(settings(sim, sqlite_url)) as collector:
        assert collector.client is not None
        owned = {cp.id: cp for cp in await collector.client.owned_chargepoints()}
    halo = next(cp for cp in owned.values() if cp.type == "HALO")
    assert [c.type for c in halo.connectors] == ["Charger", "Schuko"]
    assert halo.settings is None
    shared = next(cp for cp in owned.values() if cp.owner_read_only)
    users = [c.connector_user_id for c in shared.connectors]
    assert len(users) == 2 and users[0] != users[1] and None not in users
    ocpp = {cp.ocpp_version for cp in owned.values()}
    assert ocpp == {None, "1.6"}


async def test_sessions_of_every_kind_of_charger_are_timed_from_normalised_states(
    sqlite_url: str,
) -> None:
    """Numbered statuses (CAPI 1, OCPP 2 = Charging) and OCPP's paused states: the session
    figures count charging time on every kind, and a paused car does not end its session."""
    from tests.integration.simulated_morning import INTERVAL, collect_morning
    from tests.integration.test_session_tracker import key, seen_from_start, sessions

    morning = await collect_morning(sqlite_url, chargers=14, ticks=360, seed=5, mixed=True)
    fleet = Simulator(SimulatorConfig(chargers=14, seed=5, mixed_fleet=True)).fleet
    kinds = {cp.id: cp.kind for cp in fleet.charge_points()}
    checked: set[str] = set()
    for row in await sessions(sqlite_url):
        truth = morning.truth[key(row)]
        if not seen_from_start(row, morning) or truth.charging_seconds < 10 * INTERVAL:
            continue  # begun before the first poll: its start was not seen
        assert row["charging_s"] == pytest.approx(truth.charging_seconds, abs=2 * INTERVAL)
        kind = kinds[row["charge_point_id"]]
        checked.add(f"{kind.ocpp_version}/{kind.spelling}")
    assert {"None/digits", "1.6/digits"} <= checked


async def test_null_readings_and_any_status_value_are_stored_with_the_rest(
    sim: Simulator, sqlite_url: str
) -> None:
    charging = next(
        cp.id
        for cp in sim.fleet.charge_points()
        if any(c.reading().currents for c in cp.connectors) and not cp.kind.owned_connector
    )
    odd = next(cp for cp in sim.charge_point_ids() if cp != charging)
    sim.faults.null_readings.add(charging)
    sim.faults.connector_status[odd] = "Parked"  # no document names it
    async with Daemon(settings(sim, sqlite_url)) as collector:
        assert collector.supervisor is not None and collector.writer is not None
        result = await collector.supervisor.tick()
        await collector.writer.wait_flushed()
    assert result.failed == 0  # the charger with null readings is not a gap
    phases = {
        r["phase"]: (r["current"], r["voltage"])
        for r in await fetch(sqlite_url, "measurement")
        if r["charge_point_id"] == charging
    }
    assert phases["L1"][0] is not None and phases["L2"][0] is None and phases["L3"][1] is None
    odd_rows = [
        r for r in await fetch(sqlite_url, "connector_status") if r["charge_point_id"] == odd
    ]
    assert odd_rows and {(r["status"], r["status_raw"]) for r in odd_rows} == {("Parked", None)}
