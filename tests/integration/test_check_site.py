"""`charged check` with a site: the fuse tree printed, and the tree compared with the
chargers the simulated account owns (unplaced, not owned, load-balanced by the vendor).

The simulator runs on 127.0.0.1 with three chargers: the first is left out of the tree, the
second has a 16 A installation current, the third reads ``isLoadbalanced: true``; the tree
also places a charger the account does not own.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from charged.balancer.failsafe import VENDOR_BALANCED
from charged.check import Status, exit_code, run_checks
from charged.clock import FakeClock
from charged.exits import EXIT_CONFIG, EXIT_NOPERM
from charged.simulator import Simulator, SimulatorConfig
from charged.simulator.fleet import charge_point_ids
from charged.storage.migrate import upgrade
from tests.integration.test_check import by_check, run_cli, write_config

SEED = 3
IDS = charge_point_ids(SEED, 3)
UNPLACED, SMALL, BALANCED = IDS
STRANGER = "2999999999Z"  # in the tree, not the account's


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    """The fleet the shared ``simulator`` fixture serves here."""
    return SimulatorConfig(
        chargers=3,
        seed=SEED,
        installation_currents={SMALL: 16},
        loadbalanced=frozenset({BALANCED}),
    )


def site_config(
    tmp_path: Path,
    sim: Simulator,
    *,
    mode: str,
    placed: tuple[str, ...] = (SMALL, BALANCED),
    stranger: bool = True,
    vendor_off: tuple[str, ...] = (),
    password: str | None = None,
) -> Path:
    path = write_config(tmp_path, base_url=sim.base_url, sim=sim, password=password)
    row_b = f"[{STRANGER}]" if stranger else "[]"
    with path.open("a") as out:
        out.write(
            "site:\n"
            "  margin: 2\n"
            "  fuse:\n"
            "    name: main\n"
            "    limit: 63\n"
            "    children:\n"
            f"      - {{name: row-a, limit: 40, chargers: [{', '.join(placed)}]}}\n"
            f"      - {{name: row-b, limit: [40, 40, 32], chargers: {row_b}}}\n"
            f"  rotations: {{{BALANCED}: L2L3L1}}\n"
            f"  vendor_balancing_off: [{', '.join(vendor_off)}]\n"
            f"balancer:\n  mode: {mode}\n"
        )
    return path


TREE = [
    "fuse main: 63 A per phase, 61 A usable with the 2 A margin",
    "  fuse row-a: 40 A per phase, 38 A usable with the 2 A margin",
    f"    charger {SMALL}: rotation L1L2L3, installation current 16 A",
    f"    charger {BALANCED}: rotation L2L3L1, installation current 32 A, shadow only",
    "  fuse row-b: 40/40/32 A on L1/L2/L3, 38/38/30 A usable with the 2 A margin",
    f"    charger {STRANGER}: rotation L1L2L3, installation current not read, "
    "not owned by the account",
]


async def test_active_mode_fails_on_an_unplaced_charger_and_prints_the_tree(
    tmp_path: Path, simulator: Simulator
) -> None:
    path = site_config(tmp_path, simulator, mode="active")
    results = await run_checks(path, environ={}, clock=FakeClock(auto_advance=False), time_limit=5)
    site = by_check(results)["site"]
    assert [(r.status, r.data and r.data.get("problem")) for r in site] == [
        (Status.OK, None),
        (Status.FAIL, "unplaced"),
        (Status.WARN, "not_owned"),
        (Status.WARN, "shadow_only"),
    ]
    tree, unplaced, stranger, shadow = site
    assert (
        tree.message
        == f"{path}: site with 3 fuses, 3 chargers placed, margin 2 A; balancer.mode active"
    )
    assert list(tree.details) == TREE
    assert unplaced.exit_code == EXIT_CONFIG and exit_code(results) == EXIT_CONFIG
    assert unplaced.message.startswith(f"charger {UNPLACED} ")
    assert "under no fuse of the site: add it to the chargers of the fuse that feeds it" in (
        unplaced.message
    )
    assert f"charger {STRANGER} is under fuse row-b but the account does not own it" in (
        stranger.message
    )
    # the balancer's own reason, word for word
    assert shadow.message == f"charger {BALANCED}: {VENDOR_BALANCED}"
    assert simulator.login_attempts == 1


async def test_off_mode_warns_on_an_unplaced_charger(tmp_path: Path, simulator: Simulator) -> None:
    await upgrade(f"sqlite+aiosqlite:///{tmp_path / 'charged.db'}")
    path = site_config(tmp_path, simulator, mode="off")
    proc = await asyncio.to_thread(run_cli, "check", "-c", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    [head] = [i for i, line in enumerate(lines) if line.startswith("ok   site")]
    assert [line.strip() for line in lines[head + 1 : head + 1 + len(TREE)]] == [
        line.strip() for line in TREE
    ]
    [unplaced] = [
        line for line in lines if line.startswith(f"warn site         charger {UNPLACED}")
    ]
    assert unplaced.endswith("before setting balancer.mode to shadow or active")
    assert any(line.startswith(f"warn site         charger {BALANCED}: ") for line in lines)
    assert lines[-1].startswith("ready, with ")

    proc = await asyncio.to_thread(run_cli, "check", "-c", str(path), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = [c for c in json.loads(proc.stdout)["checks"] if c["check"] == "site"]
    assert [(c["status"], c["data"].get("problem")) for c in site] == [
        ("ok", None),
        ("warn", "unplaced"),
        ("warn", "not_owned"),
        ("warn", "shadow_only"),
    ]
    main = site[0]["data"]["tree"]
    assert (main["name"], main["limit"], main["capacity"]) == ("main", [63, 63, 63], [61, 61, 61])
    row_a, row_b = main["children"]
    assert row_a["chargers"] == [
        {
            "id": SMALL,
            "rotation": "L1L2L3",
            "installation_current": 16,
            "owned": True,
            "shadow_only": None,
        },
        {
            "id": BALANCED,
            "rotation": "L2L3L1",
            "installation_current": 32,
            "owned": True,
            "shadow_only": VENDOR_BALANCED,
        },
    ]
    assert row_b["capacity"] == [38, 38, 30] and row_b["chargers"][0]["owned"] is False


async def test_every_charger_placed_and_vendor_balancing_off_is_all_green(
    tmp_path: Path, simulator: Simulator
) -> None:
    await upgrade(f"sqlite+aiosqlite:///{tmp_path / 'charged.db'}")
    path = site_config(
        tmp_path, simulator, mode="active", placed=IDS, stranger=False, vendor_off=(BALANCED,)
    )
    results = await run_checks(path, environ={}, clock=FakeClock(auto_advance=False), time_limit=5)
    assert [r.status for r in by_check(results)["site"]] == [Status.OK]
    assert exit_code(results) == 0, results
    assert "shadow only" not in "\n".join(by_check(results)["site"][0].details)


async def test_a_failed_login_still_prints_the_tree(tmp_path: Path, simulator: Simulator) -> None:
    path = site_config(tmp_path, simulator, mode="shadow", password="not-the-password")
    results = await run_checks(path, environ={}, clock=FakeClock(auto_advance=False), time_limit=5)
    tree, skipped = by_check(results)["site"]
    assert tree.status is Status.OK and len(tree.details) == len(TREE)
    assert "installation current not read" in tree.details[2]
    assert skipped.status is Status.SKIP
    assert skipped.message == (
        "the account's chargers not compared with the site: the vendor login failed "
        "(see the api line)"
    )
    assert exit_code(results) == EXIT_NOPERM
