"""The benchmark harness (bench/, not part of the suite) still runs: a 5-charger collector run
and the original-scripts baseline against the simulator and MariaDB, and their report."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bench import report
from bench.baseline import run_baseline
from bench.collector_run import run_collector
from charged.clock import FakeClock
from charged.simulator import Simulator, SimulatorConfig
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.schema import metadata

pytestmark = pytest.mark.mysql


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    """The fleet the shared ``simulator`` fixture serves here."""
    return SimulatorConfig(chargers=5, seed=3)


async def stored(db_url: str, table: str) -> int:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            query = select(func.count()).select_from(metadata.tables[table])
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def test_harness_measures_collector_and_baseline(
    simulator: Simulator, mysql_url: str
) -> None:
    await upgrade(mysql_url)
    # the fake clock makes the 30-s wait between the two ticks take no real time
    collected = await run_collector(
        base_url=simulator.base_url,
        db_url=mysql_url,
        ticks=2,
        interval=30.0,
        concurrency=10,
        clock=FakeClock(),
    )
    ticks = collected["ticks"]
    assert [t["ok"] for t in ticks] == [5, 5]
    assert [t["requests"] for t in ticks] == [6, 5]  # the first tick also lists the chargers
    # the session tracker, on its own schedule, reads each stored charger's sessions once;
    # whichever tick's window they fall in, they are counted apart from the tick's requests
    assert sum(t["session_requests"] for t in ticks) <= 5
    # fetch_s is on the collector's (here fake) clock; commit_s is real time
    assert all(t["commit_s"] > 0 and t["rows"] > 0 and t["cpu_s"] > 0 for t in ticks)
    assert await stored(mysql_url, "connector_status") == 2 * 5 * 2  # 2 ticks × 5 × 2
    assert await stored(mysql_url, "poll_cycle") == 2

    base = await run_baseline(base_url=simulator.base_url, db_url=mysql_url, ticks=1, sample=2)
    assert base["sampled"] and base["ticks"][0]["polled"] == 2
    assert base["ticks"][0]["requests"] == 3  # a login, then the two chargers one by one
    assert await stored(mysql_url, "connector_status") == 2 * 5 * 2 + 2 * 2

    text = report.scale_text(
        {
            "chargers": 5,
            "latency": 0.1,
            "concurrency": 10,
            "collector": collected,
            "baseline": base,
        }
    )
    assert "5 chargers" in text and "measured on 2 of 5 chargers and extrapolated" in text


@pytest.mark.parametrize("organisation", [False, True])
async def test_the_requests_per_tick_bench_counts_both_ways(organisation: bool) -> None:
    from bench.requests import measure, table

    run = await measure(5, organisation=organisation, ticks=2, latency=0.0)
    assert run.ok == 5
    # a tick: one request per charger, or one organisation call
    assert run.requests_per_tick == (1 if organisation else 5)
    assert (run.status_calls, run.organisation_calls) == ((0, 1) if organisation else (5, 0))
    assert run.first_tick_requests == run.requests_per_tick + 1  # plus the owned list
    assert "| 5 |" in table([run])


def test_the_allocation_bench_runs_a_small_tree_where_every_level_binds() -> None:
    from bench.allocation import run

    figures = run(connectors=600, feeders=3, rows=4, repeat=2, seed=1)
    assert figures["connectors"] == 600 and figures["fuses"] == 1 + 3 + 12
    levels = figures["bottleneck_levels"]
    assert isinstance(levels, dict) and all(levels[level] > 0 for level in ("main", "row"))
    assert figures["writes"] == 20  # the per-tick write budget, spent


def test_the_acn_crosscheck_says_what_it_needs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys
    from pathlib import Path

    from bench.acn_crosscheck import _not_plain, main
    from charged.balancer.evaluate.sitefile import read_site_file

    # without acnportal: one line saying how to get it, exit 2
    monkeypatch.setitem(sys.modules, "acnportal", None)
    assert main([]) == 2
    assert "acnportal is not installed" in capsys.readouterr().err
    # its one-phase model is exact only where every charger is wired L1L2L3
    assert _not_plain(read_site_file(Path("bench/sites/garage.yaml")).site) is None
    why = _not_plain(read_site_file(Path("bench/sites/garage-mixed.yaml")).site)
    assert why is not None and "not wired L1L2L3" in why
