"""`charged sessions`, `charged export` and `charged plot` on a simulated morning's database.

The morning is collected once (fake clock, simulator over real sockets, SQLite); a connector's
max current is lowered to 10 A through the audited control path for a while, so the phase
plot has a limit to overlay.  Commands run in-process through ``charged.cli.main``.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from simulated_morning import INTERVAL, MORNING, Morning, collect_morning
from sqlalchemy import DateTime, Float, Integer, select

from charged.analysis.plot_data import (
    SessionSeries,
    current_limits,
    find_sessions,
    session_series,
)
from charged.analysis.plot_sessions import phase_currents_figure
from charged.cli import main
from charged.control.operations import Controller
from charged.control.validation import ConnectorChange
from charged.simulator import Simulator
from charged.simulator.charger_state import Session as FleetSession
from charged.simulator.payloads import session_rfid
from charged.storage.engine import create_engine
from charged.storage.schema import charging_session, connector_status, measurement, metadata

LIMIT_FROM, LIMIT_TICKS = 40, 60  # the limited connector has 10 A for 60 ticks from ~40
DAY = MORNING.strftime("%Y-%m-%d")


class Limited:
    """Lowers the max current of a charging connector (three-phase if one charges) to 10 A
    from tick LIMIT_FROM on, and lifts the limit LIMIT_TICKS later."""

    target: tuple[str, int] | None = None
    since_tick: int = -1

    async def __call__(self, k: int, controller: Controller, sim: Simulator) -> None:
        if self.target is None and k >= LIMIT_FROM:
            charging = [
                (c.vehicle.phases if c.vehicle else 0, cp.id, c.connector_id)
                for cp in (sim.fleet.get(i) for i in sim.charge_point_ids())
                if cp is not None
                for c in cp.connectors
                if c.reading().status == "Charging"
            ]
            if not charging:
                return
            _, cp_id, connector = max(charging)
            self.target, self.since_tick = (cp_id, connector), k
            result = await controller.set_connector(
                cp_id, connector, ConnectorChange(max_current=10)
            )
            assert result.ok, result.error
        elif self.target is not None and k == self.since_tick + LIMIT_TICKS:
            result = await controller.set_connector(*self.target, ConnectorChange(max_current=None))
            assert result.ok, result.error


LIMITED = Limited()


@pytest.fixture(scope="module")
def morning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Morning]:
    db = tmp_path_factory.mktemp("cli") / "morning.db"
    yield asyncio.run(
        collect_morning(f"sqlite+aiosqlite:///{db}", chargers=6, ticks=240, seed=5, control=LIMITED)
    )


@pytest.fixture
def db(morning: Morning) -> str:
    return morning.db_url.removeprefix("sqlite+aiosqlite:///")


def tick_time(k: int) -> datetime:
    return MORNING.replace(tzinfo=None) + timedelta(seconds=INTERVAL * k)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- sessions


def test_sessions_json_lists_every_stored_session_and_filters(
    db: str, morning: Morning, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "sessions", "--db", db, "--json")
    assert code == 0, err
    listed = json.loads(out)["sessions"]
    assert {(s["chargePointId"], s["connectorId"], s["sessionId"]) for s in listed} == set(
        morning.truth
    )
    # camelCase like every --json of charged, each column once
    assert {"energyKwh", "peakPowerW", "idleAfterS", "gapCount", "vendorStart", "rfid"} <= set(
        listed[0]
    )
    assert not [key for key in listed[0] if "_" in key]
    cp = morning.charge_point_ids[0]
    code, out, _ = run(
        capsys, "sessions", "--db", db, "--json", "--charger", cp, "--connector", "2"
    )
    assert code == 0
    chosen = json.loads(out)["sessions"]
    assert chosen == [s for s in listed if s["chargePointId"] == cp and s["connectorId"] == 2]
    strict_subsets = 0
    for since, until in (
        ("2026-01-05T07:00", "2026-01-05T07:20"),
        ("2026-01-05T08:45", "2026-01-06"),
    ):
        code, out, _ = run(
            capsys, "sessions", "--db", db, "--json", "--since", since, "--until", until
        )
        overlapping = [
            s
            for s in listed
            if s["startTime"] < datetime.fromisoformat(until).isoformat() + "Z"
            and (s["endTime"] is None or s["endTime"] >= since)
        ]
        assert code == 0 and json.loads(out)["sessions"] == overlapping
        strict_subsets += 0 < len(overlapping) < len(listed)
    assert strict_subsets >= 1


def test_sessions_table_has_a_line_per_session_and_a_total(
    db: str, morning: Morning, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "sessions", "--db", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["charger", "conn", "session"]
    assert len(lines) == len(morning.truth) + 2
    total = sum(t.energy_kwh for t in morning.truth.values())
    assert lines[-1] == f"{len(morning.truth)} sessions, {total:.2f} kWh"


def test_sessions_by_tag_for_a_month_bills_the_vendors_tags(
    db: str, morning: Morning, capsys: pytest.CaptureFixture[str]
) -> None:
    # the morning is reconciled: every session has the tag the simulator's vendor reports
    rows = (
        sqlite3.connect(db)
        .execute(
            "SELECT charge_point_id, connector_id, session_id, rfid, user_id, energy_kwh "
            "FROM charging_session"
        )
        .fetchall()
    )
    assert rows and all(user for *_, user, _ in rows)
    expected: dict[str | None, float] = {}
    for cp, connector, sid, rfid, _, kwh in rows:
        truth = morning.truth[(cp, connector, sid)]
        assert rfid == session_rfid(FleetSession(sid, cp, connector, truth.phases, truth.start))
        expected[rfid] = expected.get(rfid, 0.0) + kwh
    assert len([tag for tag in expected if tag]) > 3  # several drivers

    month = DAY[:7]
    code, out, err = run(capsys, "sessions", "--db", db, "--by", "tag", "--month", month, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["since"] == f"{month}-01T00:00:00Z"
    assert {line["rfid"]: line["energyKwh"] for line in document["lines"]} == pytest.approx(
        expected
    )
    assert document["total"]["sessions"] == len(rows)

    code, out, _ = run(capsys, "sessions", "--db", db, "--by", "tag", "--month", month)
    lines = out.splitlines()
    assert code == 0 and lines[0] == f"Energy per RFID tag, sessions started in {month} (UTC)"
    total = next(line for line in lines if line.startswith("total"))
    running = document["total"]["running"]
    assert total.split()[:4] == [
        "total",
        str(len(rows)),
        str(running),
        f"{sum(expected.values()):.2f}",
    ]

    # a month without sessions, and a bad month
    code, out, _ = run(capsys, "sessions", "--db", db, "--by", "tag", "--month", "2025-12")
    assert code == 0 and out.splitlines()[-1] == "no sessions started in that period"
    with pytest.raises(SystemExit) as bad:
        main(["sessions", "--db", db, "--by", "tag", "--month", "2026-13"])
    assert bad.value.code == 2
    assert "--month takes a month as YYYY-MM" in capsys.readouterr().err


# ---------------------------------------------------------------- export


def _typed(value: str, column: Any) -> Any:
    """A CSV field back to the column's Python value."""
    if value == "":
        return None
    if isinstance(column.type, DateTime):
        moment = datetime.fromisoformat(value)
        assert moment.utcoffset() == timedelta(0), value  # written with its offset: UTC
        return moment.replace(tzinfo=None)
    if isinstance(column.type, Integer):
        return int(value)
    if isinstance(column.type, Float):
        return float(value)
    return value


async def _table_rows(url: str, table_name: str, since: Any = None, until: Any = None) -> list:
    table = metadata.tables[table_name]
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            query = select(table).order_by(table.c.id)
            if since is not None:
                query = query.where(table.c.date_created >= since, table.c.date_created < until)
            return [tuple(r) for r in await conn.execute(query)]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("table", ["connector_status", "measurement", "sessions"])
def test_csv_export_reads_back_equal_to_the_table(
    table: str, db: str, morning: Morning, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / f"{table}.csv"
    code, _, err = run(capsys, "export", table, "--db", db, "-o", str(target))
    assert code == 0, err
    real = charging_session if table == "sessions" else metadata.tables[table]
    with target.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        back = [
            tuple(_typed(v, real.c[h]) for h, v in zip(header, row, strict=True)) for row in reader
        ]
    assert header == [c.name for c in real.columns]
    stored = asyncio.run(_table_rows(morning.db_url, real.name))
    assert sorted(back, key=lambda r: r[0]) == stored
    assert f"exported {len(stored)} rows of {real.name} (csv)" in err


def test_jsonl_export_of_a_time_range_holds_exactly_the_rows_in_it(
    db: str, morning: Morning, capsys: pytest.CaptureFixture[str]
) -> None:
    since = MORNING.replace(tzinfo=None) + timedelta(minutes=30)
    until = since + timedelta(minutes=10)
    code, out, _ = run(
        capsys, "export", "measurement", "--db", db, "--format", "jsonl",
        "--since", since.isoformat(), "--until", until.isoformat(),
    )  # fmt: skip
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    stored = asyncio.run(_table_rows(morning.db_url, "measurement", since, until))
    assert [line["id"] for line in lines] == [r[0] for r in stored] and stored
    assert {line["date_created"] for line in lines} == {
        (since + timedelta(seconds=INTERVAL * k)).isoformat() + "+00:00" for k in range(20)
    }


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_reader_that_stops_early_ends_the_export_quietly(db: str, fmt: str) -> None:
    # `charged export … | head -1`: the pipe closes after the first line, with far more than
    # a pipe's buffer (64 KiB) still to come
    argv = ["export", "connector_status", "--format", fmt]
    # the installed `charged` script, as a shell runs it
    command = [str(Path(sys.executable).with_name("charged")), *argv, "--db", db]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert first.strip()
    # what `seq 100000 | head -1` does: the status of SIGPIPE, no message
    assert (code, err) == (141, "")


def test_parquet_export_reads_back_equal_to_the_table(
    db: str, morning: Morning, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow.parquet as pq

    target = tmp_path / "status.parquet"
    code, _, err = run(capsys, "export", "connector_status", "--db", db, "-o", str(target))
    assert code == 0, err
    parquet = pq.read_table(target)
    # timestamps with time zone UTC: no reader takes them for local time
    stamp = parquet.schema.field("date_created").type
    assert str(stamp).startswith("timestamp[") and stamp.tz == "UTC"
    back = parquet.to_pylist()
    assert back[0]["date_created"].utcoffset() == timedelta(0)
    stored = asyncio.run(_table_rows(morning.db_url, "connector_status"))
    names = [c.name for c in connector_status.columns]
    naive = [
        tuple(v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in r)
        for r in ([r[n] for n in names] for r in back)
    ]
    assert naive == stored


def test_parquet_without_pyarrow_is_one_line(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # an import of it now fails
    code, out, err = run(
        capsys, "export", "measurement", "--db", db, "-o", str(tmp_path / "m.parquet")
    )
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        "charged: Parquet export needs pyarrow: pip install pyarrow (in a checkout of "
        "charged: pip install '.[parquet]'), or choose --format csv/jsonl"
    ]


# ---------------------------------------------------------------- plot


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_plot_energy_of_a_chargers_morning(
    db: str, morning: Morning, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cp = max(morning.charge_point_ids, key=lambda c: sum(k[0] == c for k in morning.truth))
    png, svg = tmp_path / "energy.png", tmp_path / "energy.svg"
    for target in (png, svg):
        code, out, err = run(capsys, "plot", "energy", "--db", db, "--charger", cp, "--date", DAY,
                             "-o", str(target))  # fmt: skip
        assert code == 0, err
        size = "1000×540 px, 100 dpi" if target.suffix == ".png" else "10×5.4 in"
        assert out.strip() == f"wrote {target} ({size})"
    assert png_size(png) == (1000, 540) and png.stat().st_size > 20_000
    text = svg.read_text()
    for label in ("energy of the session (kWh)", "time (UTC)", f"Charger {cp}", "start", "end"):
        assert label in text
    assert "power, ∑ current × voltage (W)" in text
    for key in (k for k in morning.truth if k[0] == cp):
        assert f"session {key[2]} (conn. {key[1]}" in text  # one legend entry per session


def test_plot_energy_without_a_date_draws_the_chargers_latest_day(
    db: str, morning: Morning, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the usage shows --date as optional: without it, the day of the latest session
    cp = morning.charge_point_ids[0]
    with_date, without = tmp_path / "with.svg", tmp_path / "without.svg"
    code, _, err = run(capsys, "plot", "energy", "--db", db, "--charger", cp, "--date", DAY,
                       "-o", str(with_date))  # fmt: skip
    assert code == 0, err
    code, out, err = run(capsys, "plot", "energy", "--db", db, "--charger", cp, "-o", str(without))
    assert code == 0, err
    assert out.strip().startswith(f"wrote {without}")
    assert err.strip() == (
        f"charged: no --date given: drawing {DAY}, the day of the charger's latest session"
    )
    assert f"Charger {cp}: energy and power per session, {DAY} (UTC)" in without.read_text()
    code, _, err = run(capsys, "plot", "energy", "--db", db, "--charger", "NOPE", "-o",
                       str(tmp_path / "x.png"))  # fmt: skip
    assert code == 1 and "no sessions stored for charger NOPE" in err


def test_plots_for_a_paper_pdf_size_and_dpi(
    db: str, morning: Morning, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cp = morning.charge_point_ids[0]
    pdf, png = tmp_path / "energy.pdf", tmp_path / "garage.png"
    code, out, err = run(capsys, "plot", "energy", "--db", db, "--charger", cp, "--date", DAY,
                         "--size", "3.5x2.6", "-o", str(pdf))  # fmt: skip
    assert code == 0, err
    assert out.strip() == f"wrote {pdf} (3.5×2.6 in)"
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    # the page is the size asked for: 3.5 × 2.6 in = 252 × 187.2 pt
    assert b"/MediaBox [ 0 0 252 187.2 ]" in data
    code, out, err = run(capsys, "plot", "garage", "--db", db, "--date", DAY,
                         "--size", "6x4", "--dpi", "300", "-o", str(png))  # fmt: skip
    assert code == 0, err
    assert png_size(png) == (1800, 1200)
    assert out.strip() == f"wrote {png} (1800×1200 px, 300 dpi)"
    for bad, says in (
        (["--size", "big"], "--size takes WIDTHxHEIGHT in inches"),
        (["--size", "0x4"], "must be 1-50 inches"),
        (["--dpi", "5"], "--dpi must be 20-1200"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(["plot", "garage", "--db", db, "--date", DAY, "-o", str(png), *bad])
        assert exit_.value.code == 2 and says in capsys.readouterr().err
    code, _, err = run(capsys, "plot", "garage", "--db", db, "--date", DAY, "-o", "g.jpg")
    assert code == 1 and "name the file .png, .svg or .pdf" in err


def _boxes_overlap(a: Any, b: Any) -> bool:
    return bool(a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1)


def test_a_short_sessions_phase_plot_keeps_legend_and_labels_off_the_data() -> None:
    # eight polls, the limit changed twice in them: spans of a poll or two
    start = datetime(2026, 1, 5, 8, 0)
    times = [start + timedelta(seconds=30 * k) for k in range(8)]
    amps = [16.0, 16.0, 10.0, 10.0, 16.0, 16.0, 16.0, 3.5]
    series = SessionSeries(
        session={
            "session_id": 7, "charge_point_id": "CP", "connector_id": 1, "phases": 3,
            "start_time": start, "end_time": times[-1] + timedelta(seconds=30),
            "idle_after_s": 0.0,
        },
        times=times,
        energy_kwh=[0.1 * k for k in range(8)],
        power_w=[a * 690 for a in amps],
        phase_currents={p: list(amps) for p in ("L1", "L2", "L3")},
    )  # fmt: skip
    limits = [
        (None, None),
        (times[2] - timedelta(seconds=5), 10.0),
        (times[4] - timedelta(seconds=5), None),
    ]
    figure = phase_currents_figure(series, limits, "short session")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    for size in ((10.0, 5.4), (3.5, 2.6)):  # the default, and a paper's column
        figure.set_size_inches(*size)
        canvas.draw()
        renderer = canvas.get_renderer()
        (ax,) = figure.axes
        (legend,) = figure.legends
        data_box = ax.get_window_extent(renderer)
        assert not _boxes_overlap(legend.get_window_extent(renderer), data_box)
        assert not ax.get_legend()  # nothing inside the axes
        labels = {"L1 (A)", "L2 (A)", "L3 (A)", "max-current limit (A)", "limit in force"}
        assert labels <= {t.get_text() for t in legend.get_texts()}
        texts = [t for t in ax.texts if t.get_text()]
        assert "limit 10 A" in [t.get_text() for t in texts]
        boxes = [t.get_window_extent(renderer) for t in texts]
        figure_box = figure.bbox
        for i, box in enumerate(boxes):
            assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1, texts[i].get_text()
            for j in range(i):
                both = (texts[i].get_text(), texts[j].get_text(), size)
                assert not _boxes_overlap(box, boxes[j]), both


async def test_phase_plot_overlays_the_audited_limit(morning: Morning) -> None:
    assert LIMITED.target is not None
    cp, connector = LIMITED.target
    engine = create_engine(morning.db_url)
    try:
        async with engine.connect() as conn:
            (row,) = [
                r
                for r in await find_sessions(conn, charger=cp, connector=connector)
                if r["first_poll"]
                <= MORNING.replace(tzinfo=None) + timedelta(seconds=INTERVAL * LIMIT_FROM)
            ][-1:]
            series = await session_series(conn, row)
            limits = await current_limits(conn, cp, connector, row["last_poll"])
    finally:
        await engine.dispose()
    assert [v for _, v in limits] == [None, 10.0, None]
    figure = phase_currents_figure(series, limits, "t")
    (ax,) = figure.axes
    assert ax.get_ylabel() == "current per phase (A)" and ax.get_xlabel() == "time (UTC)"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert {"L1 (A)", "L2 (A)", "L3 (A)", "max-current limit (A)"} <= set(lines)
    limit = lines["max-current limit (A)"]
    assert 10.0 in list(limit.get_ydata())
    # the car draws just under the limit: the limit is drawn above every phase line, …
    assert all(limit.get_zorder() > lines[f"L{n} (A)"].get_zorder() for n in (1, 2, 3))
    # … the phases are nested (wide L1, narrower L2, L3 on top) so equal currents stay visible
    widths = [lines[f"L{n} (A)"].get_linewidth() for n in (1, 2, 3)]
    orders = [lines[f"L{n} (A)"].get_zorder() for n in (1, 2, 3)]
    assert widths == sorted(widths, reverse=True) and orders == sorted(orders)
    assert len(set(widths)) == 3
    # … the limited span is shaded and the time without a limit says so
    assert "limit in force" in ax.get_legend_handles_labels()[1]
    texts = [t.get_text() for t in ax.texts]
    assert "limit 10 A" in texts and texts.count("no limit") == 2
    # while limited the car drew under 10 A on every phase
    limited_from = tick_time(LIMITED.since_tick + 2)  # the car follows within a poll or two
    limited_until = tick_time(LIMITED.since_tick + LIMIT_TICKS)
    during = [i for i, t in enumerate(series.times) if limited_from <= t < limited_until]
    assert during and all(series.phase_currents["L1"][i] < 10.0 for i in during)


async def test_phase_plot_marks_the_time_plugged_in_after_charging(morning: Morning) -> None:
    engine = create_engine(morning.db_url)
    try:
        async with engine.connect() as conn:
            row = max(await find_sessions(conn), key=lambda r: r["idle_after_s"] or 0.0)
            series = await session_series(conn, row)
    finally:
        await engine.dispose()
    assert row["idle_after_s"] > 600
    figure = phase_currents_figure(series, [], "t")
    (ax,) = figure.axes
    minutes = round(row["idle_after_s"] / 60)
    label = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
    assert f"plugged in, not charging\n{label}" in [t.get_text() for t in ax.texts]


def test_plot_phases_and_garage_through_the_cli(
    db: str, morning: Morning, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert LIMITED.target is not None
    sid = max(k[2] for k in morning.truth if k[:2] == LIMITED.target)
    phases = tmp_path / "phases.svg"
    code, _, err = run(capsys, "plot", "phases", "--db", db, "--session", str(sid),
                       "--charger", LIMITED.target[0], "-o", str(phases))  # fmt: skip
    assert code == 0, err
    assert "max-current limit (A)" in phases.read_text()
    garage = tmp_path / "garage.png"
    code, _, err = run(capsys, "plot", "garage", "--db", db, "--date", DAY, "-o", str(garage))
    assert code == 0, err
    assert png_size(garage) == (1000, 540) and garage.stat().st_size > 20_000
    garage_svg = tmp_path / "garage.svg"
    assert run(capsys, "plot", "garage", "--db", db, "--date", DAY, "-o", str(garage_svg))[0] == 0
    text = garage_svg.read_text()
    for label in ("total power (kW)", "L1 total (A)", "L3 total (A)", "time (UTC)"):
        assert label in text


def test_plot_without_matplotlib_says_how_to_install_it(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run(
        capsys, "plot", "garage", "--db", db, "--date", DAY, "-o", str(tmp_path / "g.png")
    )
    assert code == 1
    assert err.strip().splitlines() == [
        "charged: charged plot needs matplotlib: pip install matplotlib (in a checkout of "
        "charged: pip install '.[plot]')"
    ]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["sessions", "--db", "/nonexistent/x.db"], 2, "no SQLite file at /nonexistent/x.db"),
        (["export", "nosuchtable", "--db", "{db}"], 2, "no table named 'nosuchtable'"),
        (["export", "measurement", "--db", "{db}", "--format", "parquet"], 1, "-o FILE.parquet"),
        (["plot", "energy", "--db", "{db}", "-o", "{tmp}/x.png"], 2, "needs --charger"),
        (["plot", "garage", "--db", "{db}", "-o", "{tmp}/x.gif", "--date", DAY], 1, ".svg or .pdf"),
        (["plot", "phases", "--db", "{db}", "--session", "999999", "-o", "{tmp}/x.png"], 1,
         "no session 999999"),
        (["sessions", "--db", "{db}", "--since", "2026-01-06", "--until", "2026-01-05"], 2,
         "--until must be after --since"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_a_nonzero_exit(
    argv: list[str], code: int, says: str, db: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    got, _, err = run(capsys, *(a.format(db=db, tmp=tmp_path) for a in argv))
    assert got == code
    assert len(err.strip().splitlines()) == 1 and says in err, err


def test_a_database_without_the_sessions_table_says_to_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    legacy = tmp_path / "legacy.db"
    with sqlite3.connect(legacy) as conn:
        conn.execute("CREATE TABLE connector_status (id INTEGER PRIMARY KEY, status TEXT)")
    code, _, err = run(capsys, "sessions", "--db", str(legacy))
    assert code == 1
    assert err.strip() == (
        "charged: the database has no charging_session table; run `charged db upgrade` on it "
        "first (same -c, or --db-url)"
    )


def test_sessions_reads_the_database_named_in_the_config(
    db: str, morning: Morning, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: sqlite+aiosqlite:///{db}\n")
    config.chmod(0o600)
    code, out, err = run(capsys, "sessions", "-c", str(config), "--json", "--no-update")
    assert code == 0, err
    assert len(json.loads(out)["sessions"]) == len(morning.truth)


async def test_csv_export_streams_from_sqlite_and_mariadb(db_url: str) -> None:
    import io

    from charged.analysis.export import export_table

    await collect_morning(db_url, chargers=2, ticks=30, reconcile=False)
    out = io.StringIO()
    engine = create_engine(db_url)
    try:
        # chunks far smaller than the table: the rows come through in many partitions
        count = await export_table(engine, measurement, fmt="csv", out=out, path=None, chunk_rows=7)
    finally:
        await engine.dispose()
    out.seek(0)
    reader = csv.reader(out)
    header = next(reader)
    back = [
        tuple(_typed(v, measurement.c[h]) for h, v in zip(header, r, strict=True)) for r in reader
    ]
    stored = await _table_rows(db_url, "measurement")
    assert count == len(stored) > 7
    assert sorted(back, key=lambda r: r[0]) == stored
