"""`charged balance status` and `charged balance release` against a real (SQLite) database."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from charged.cli import Fatal, build_parser
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.schema import balancer_decision, balancer_fuse, control_action

T0 = datetime(2026, 1, 5, 8, 0, 0)
T1 = datetime(2026, 1, 5, 8, 0, 30)


@pytest.fixture
async def config(tmp_path: Path) -> Path:
    url = f"sqlite+aiosqlite:///{tmp_path / 'charged.db'}"
    await upgrade(url)
    engine = create_engine(url)
    fuse = {"mode": "shadow", "capacity_a": 38.0, "limit_a": 40.0}
    async with engine.begin() as conn:
        rows = []
        for tick, envelope in ((T0, 99.0), (T1, 30.0)):
            for name, parent in (("main", None), ("row-a", "main")):
                for phase in ("L1", "L2", "L3"):
                    rows.append(
                        {
                            **fuse,
                            "tick_time": tick,
                            "fuse": name,
                            "parent": parent,
                            "phase": phase,
                            "envelope_a": envelope if phase == "L1" else 12.0,
                            "measured_a": 21.5,
                        }
                    )
        rows[-3]["envelope_a"] = 41.0  # row-a L1 over its capacity at T1
        await conn.execute(balancer_fuse.insert(), rows)
        await conn.execute(
            balancer_decision.insert(),
            [
                {
                    "tick_time": T1,
                    "charge_point_id": "CP1",
                    "connector_id": n,
                    "mode": "shadow",
                    "reason": reason,
                    "allocated_a": a,
                    "limit_in_force_a": 16.0,
                    "measured_a": 9.0,
                    "phases": "L1",
                }
                for n, reason, a in ((1, "paused_floor", 0.0), (2, "pinned", 16.0))
            ],
        )
    await engine.dispose()
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"database": {"url": url}}))
    return path


async def run(*argv: str) -> int:
    args = build_parser().parse_args(argv)
    return int(await args.control_handler(args))


async def test_status_prints_the_newest_step_as_a_tree(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("balance", "status", "-c", str(config)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "balancer shadow, step of 2026-01-05 08:00:30 UTC: 2 connectors, 1 paused, "
        "1 pinned, 0 offline"
    )
    assert lines[1].split() == ["FUSE", "PHASE", "LIMIT", "ENVELOPE", "MEASURED", "HEADROOM"]
    assert lines[2].split() == ["main", "L1", "40", "A", "30.0", "A", "21.5", "A", "8.0", "A"]
    assert lines[5].startswith("  row-a")
    assert lines[5].split()[-2:] == ["A", "OVER"] and "-3.0 A" in lines[5]
    assert lines[8] == "paused (no room for the minimum; they take turns): CP1/1"
    assert lines[9].startswith("pinned by a person") and lines[9].endswith(": CP1/2")
    assert await run("balance", "status", "-c", str(config), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tickTime"] == "2026-01-05T08:00:30+00:00"
    assert data["fuses"][3] == {
        "fuse": "row-a",
        "phase": "L1",
        "limit": 40.0,
        "capacity": 38.0,
        "envelope": 41.0,
        "measured": 21.5,
        "headroom": -3.0,
    }


async def test_status_without_a_step_says_so(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}}))
    with pytest.raises(Fatal, match="no balancer step stored yet") as failed:
        await run("balance", "status", "-c", str(path))
    assert failed.value.code == 1


async def test_release_is_an_audit_row(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run("balance", "release", "CP1", "2", "-c", str(config)) == 0
    assert "released CP1 connector 2" in capsys.readouterr().out
    engine = create_engine(f"sqlite+aiosqlite:///{config.parent / 'charged.db'}")
    async with engine.connect() as conn:
        rows = (await conn.execute(select(control_action))).mappings().all()
    await engine.dispose()
    assert [(r["action"], r["charge_point_id"], r["connector_id"], r["result"]) for r in rows] == [
        ("balancer_release", "CP1", 2, "ok")
    ]
    assert rows[0]["actor"].startswith("cli:")


def test_release_wants_a_connector_number(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["balance", "release", "CP1", "x"])
    assert exited.value.code == 2
    assert "'x' is not a connector number" in capsys.readouterr().err
