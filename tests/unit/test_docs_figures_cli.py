"""python -m charged.docs_figures: bad input is one line and a non-zero exit, before the
four-minute demo starts (the figures themselves are made by running it; see the README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from charged.docs_figures import main


def test_an_existing_database_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "old.db"
    db.write_bytes(b"")
    assert main(["--out", str(tmp_path), "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"{db} exists; the figures need a fresh database: remove it or choose another --db"
    ]


def test_a_missing_output_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run from the project's root or give --out DIR" in err[0]
