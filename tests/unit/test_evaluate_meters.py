"""The evaluation with a building: meter and price series, the fuses' truth, power and cost."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from pathlib import Path

import pytest

from charged.balancer.evaluate.engine import run
from charged.balancer.evaluate.meterseries import MeterSeries, parse_meter_csv, readings
from charged.balancer.evaluate.metrics import figures
from charged.balancer.evaluate.policies import Uncontrolled, make_policy
from charged.balancer.evaluate.power import power_figures, window_means
from charged.balancer.evaluate.scenario import ScenarioError
from charged.balancer.evaluate.telemetry import Telemetry
from charged.balancer.model import ConnectorKey, PhaseCurrents
from charged.cli import main
from charged.prices.series import PriceError, parse_price_csv, series_of
from tests.unit.test_evaluate_engine import T0, V, scenario, site, visit

HOUR = 3600


def building(*steps: tuple[float, float]) -> MeterSeries:
    """The main fuse's meter: (from, A on every phase) steps."""
    return readings(((t, "main", (a, a, a)) for t, a in steps), UTC)


def test_the_building_is_counted_in_the_fuse_and_the_slots() -> None:
    # one three-phase car at 16 A for 3 h on a 40 A main; the building draws 10 A, 30 A
    # from 09:00, 5 A from 10:00: the main carries 26, 46 (6 A over), 21 A
    meters = building((T0 - HOUR, 10.0), (T0 + HOUR, 30.0), (T0 + 2 * HOUR, 5.0))
    day = scenario(visit(T0 + 10, 3 * HOUR, 40.0, phases=3))
    result = run(day, site(40.0), Uncontrolled(site(40.0)), meters=meters)
    main = {p.phase: p for p in result.truth.phases if p.fuse == "main"}
    assert [main[p].peak for p in ("L1", "L2", "L3")] == [46.0, 46.0, 46.0]
    assert main["L1"].ampere_seconds_above == pytest.approx(6 * HOUR)
    assert main["L1"].seconds_above == HOUR
    (session,) = result.sessions
    assert session.delivered_kwh == pytest.approx(16 * 3 * V * 3 * HOUR / 3.6e6, rel=1e-9)
    # the first slot (08:00–08:15): the building's 15 min at 10 A, the car's 890 s at 16 A
    assert result.slot_times[0] == T0
    assert result.slot_building_kwh[0] == pytest.approx(10 * 3 * V * 900 / 3.6e6)
    assert result.slot_root_kwh[0] == pytest.approx((10 * 900 + 16 * 890) * 3 * V / 3.6e6)
    prices = parse_price_csv(
        "start,price\n2026-03-02T08:00:00Z,1.0\n2026-03-02T09:00:00Z,2.0\n"
        "2026-03-02T10:00:00Z,0.5\n"
    )
    f = figures(result, window_s=3600, prices=prices)
    assert f.power is not None
    # the hour 09:00–10:00: 46 A on three phases
    assert f.power.window_peak_kw == pytest.approx(46 * 3 * V / 1000)
    assert f.power.monthly_peaks_kw == (("2026-03", pytest.approx(46 * 3 * V / 1000)),)
    hour_kwh = 16 * 3 * V * HOUR / 3.6e6
    first_hour = 16 * 3 * V * (HOUR - 10) / 3.6e6
    assert f.power.cost == pytest.approx(first_hour * 1.0 + hour_kwh * 2.0 + hour_kwh * 0.5)
    assert f.power.price_per_kwh == pytest.approx(f.power.cost / f.power.charger_kwh)
    assert f.power.unpriced_kwh == pytest.approx(0.0, abs=1e-9)
    quarter = figures(result, window_s=900, prices=prices)
    assert quarter.power is not None
    assert quarter.power.window_peak_kw == pytest.approx(46 * 3 * V / 1000)


def test_the_policies_are_shown_what_the_meters_read_at_each_poll() -> None:
    seen: dict[float, Mapping[str, PhaseCurrents]] = {}

    class Recorder(Uncontrolled):
        def decide(self, telemetry: Telemetry) -> Mapping[ConnectorKey, float]:
            seen[telemetry.time] = telemetry.building
            return {}

    meters = building((T0 + 100, 12.0), (T0 + 1800, 20.0))
    run(scenario(visit(T0, HOUR, 1.0)), site(), Recorder(site()), meters=meters)
    assert seen[T0 + 90] == {}
    assert seen[T0 + 120] == {"main": (12.0, 12.0, 12.0)}
    assert seen[T0 + 1800] == {"main": (20.0, 20.0, 20.0)}


def test_charged_keeps_the_fuse_with_the_building_where_uncontrolled_does_not() -> None:
    meters = building((T0 - HOUR, 25.0))
    day = scenario(
        visit(T0 + 10, 3 * HOUR, 30.0, phases=3, amps=16.0),
        visit(T0 + 400, 3 * HOUR, 30.0, phases=3, amps=16.0, charger="CP2"),
    )
    loose = run(day, site(40.0), Uncontrolled(site(40.0)), meters=meters)
    assert loose.truth.ampere_seconds_above > 0
    kept = run(day, site(40.0), make_policy("charged", site(40.0)), meters=meters)
    assert kept.truth.ampere_seconds_above == 0
    delivered = sum(s.delivered_kwh for s in kept.sessions)
    # 40 − 25 − 2 A of headroom: 13 A on three phases, for most of the 3 h 390 s of cars
    most = 13 * 3 * V * (3 * HOUR + 390) / 3.6e6
    assert 0.8 * most < delivered <= most
    assert max(p.peak for p in kept.truth.phases) == 25 + 13


def test_room_at_arrival_counts_the_building_then() -> None:
    from charged.balancer.evaluate.engine import room_at_arrival

    # two one-phase cars on L1 of a 20 A main: room for 6 A each, unless the building takes
    # more than 8 A when the second arrives
    day = scenario(visit(T0, HOUR, 5.0), visit(T0 + 600, HOUR, 5.0, charger="CP2"))
    assert room_at_arrival(day, site(20.0)) == {0: True, 1: True}
    steps = building((T0 + 300, 9.0)).steps()
    assert room_at_arrival(day, site(20.0), steps) == {0: True, 1: False}


def test_window_means_and_monthly_peaks_by_hand() -> None:
    # four 15-min slots of 08:00 and three of 09:00 (the 09:00 hour is not whole)
    times = [T0 + k * 900 for k in range(7)]
    kwh = [1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0]
    assert window_means(times, kwh, 3600) == [(T0, 10.0)]
    assert max(kw for _, kw in window_means(times, kwh, 900)) == 40.0
    building_kwh = [0.5] * 7
    prices = series_of([(T0, T0 + HOUR, 2.0)], UTC)
    p = power_figures(times, kwh, building_kwh, window_s=900, prices=prices)
    assert p.window_peak_kw == 40.0 and p.monthly_peak_kw == 10.0
    assert p.cost == pytest.approx((0.5 + 1.5 + 2.5 + 3.5) * 2.0)
    assert p.unpriced_kwh == pytest.approx(9.5 * 3)
    assert p.price_per_kwh == pytest.approx(2.0)
    assert p.building_kwh == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("time,fuse,l1,l2\n", "column 'l3' must appear once"),
        ("time,fuse,l1,l2,l3\n2026-03-02T08:00:00Z,main,1,x,3\n", "row 2, column l2"),
        ("time,fuse,l1,l2,l3\n2026-03-02T08:00:00,main,1,2,3\n", "row 2, column time"),
        ("time,fuse,l1,l2,l3\n2026-03-02T08:00:00Z,main,1,2,3\n2026-03-02T09:00Z,,1,2,3\n",
         "row 3, column fuse"),
        ("time,fuse,l1,l2,l3\n2026-03-02T08:00:00Z,main,1,-2,3\n", "must be 0 A or more"),
    ],
)  # fmt: skip
def test_a_bad_meter_row_names_row_and_column(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError, match=expected):
        parse_meter_csv(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty file"),
        ("start,price,area\n", "unknown column 'area'"),
        ("start,price\n2026-03-02T08:00:00Z,cheap\n", "row 2, column price"),
        ("start,price\n2026-03-02T09:00:00Z,1\n2026-03-02T08:00:00Z,1\n", "row 3, column start"),
        ("start,price\n", "no prices"),
    ],
)
def test_a_bad_price_row_names_row_and_column(text: str, expected: str) -> None:
    with pytest.raises(PriceError, match=expected):
        parse_price_csv(text)


def test_a_price_holds_until_the_next_and_the_last_as_long_as_the_one_before() -> None:
    prices = parse_price_csv(
        "price,start\n1.5,2026-03-02T09:00:00+01:00\n-0.1,2026-03-02T09:15:00+01:00\n"
    )
    assert prices.price_at(T0 - 1) is None
    assert prices.price_at(T0) == 1.5 and prices.price_at(T0 + 899) == 1.5
    assert prices.price_at(T0 + 900) == -0.1 and prices.price_at(T0 + 1799) == -0.1
    assert prices.price_at(T0 + 1800) is None


def test_bad_series_files_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.test_evaluate_command import SCENARIO, SITE

    site_file, day = tmp_path / "site.yaml", tmp_path / "day.csv"
    site_file.write_text(SITE)
    day.write_text(SCENARIO)
    meters = tmp_path / "meters.csv"
    meters.write_text("time,fuse,l1,l2,l3\n2026-03-02T08:00:00Z,garage,1,2,3\n")
    base = ["balance", "evaluate", "--scenario", str(day), "--site", str(site_file)]
    assert main([*base, "--policy", "charged", "--meters", str(meters)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "row 2, column fuse" in err and "'garage'" in err
    prices = tmp_path / "prices.csv"
    prices.write_text("start,price\n2026-03-02T08:00:00Z,\n")
    assert main([*base, "--policy", "charged", "--prices", str(prices)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "row 2, column price" in err


def test_the_table_shows_peaks_and_cost_against_the_baselines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.test_evaluate_command import SCENARIO, SITE

    site_file, day = tmp_path / "site.yaml", tmp_path / "day.csv"
    site_file.write_text(SITE)
    day.write_text(SCENARIO)
    code = main([
        "balance", "evaluate", "--scenario", str(day), "--site", str(site_file),
        "--policy", "uncontrolled,evcc-like,charged", "--meters", "generated",
        "--prices", "generated", "--peak-window", "15",
    ])  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    for label in (
        "highest 15-min mean power kW",
        "monthly hourly peak kW",
        "  monthly peak vs uncontrolled",
        "  monthly peak vs evcc-like",
        "chargers' energy cost",
    ):
        assert any(line.startswith(label + "  ") for line in lines), label
