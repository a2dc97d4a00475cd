"""The scenario file: parsing, the one-line errors naming row and column, placing visits."""

from __future__ import annotations

import io
from datetime import date

import pytest

from charged.balancer.evaluate.generate import (
    ONE_PHASE_SHARE,
    garage_day,
    garage_month,
)
from charged.balancer.evaluate.scenario import (
    ScenarioError,
    assign_connectors,
    parse_scenario,
    read_scenario,
    write_scenario,
)

HEADER = "arrival,departure,energy_kwh,phases,max_current,charger,connector,follows_limit\n"
GOOD = "2026-03-02T07:41:00+01:00,2026-03-02T16:00:00+01:00,12.5,1,16,CP1,2,0.5\n"
SITE = [("CP1", 1), ("CP1", 2), ("CP2", 1), ("CP2", 2)]


def test_a_row_is_read_with_its_offset_and_optional_columns() -> None:
    scenario = parse_scenario(HEADER + GOOD)
    (visit,) = scenario.visits
    assert visit.row == 2
    assert visit.arrival == 1772433660.0  # 06:41 UTC
    assert visit.departure - visit.arrival == 8 * 3600 + 19 * 60
    assert (visit.energy_kwh, visit.phases, visit.max_current) == (12.5, 1, 16.0)
    assert (visit.charger, visit.connector, visit.follows_limit) == ("CP1", 2, 0.5)
    assert scenario.tz.utcoffset(None).total_seconds() == 3600


def test_optional_columns_may_be_absent_and_default() -> None:
    text = "arrival,departure,energy_kwh,phases,max_current\n"
    text += "2026-03-02T07:00:00Z,2026-03-02T08:00:00Z,3,3,16\n\n"
    (visit,) = parse_scenario(text).visits
    assert (visit.charger, visit.connector, visit.follows_limit) == (None, None, 1.0)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("2026-03-02T07:41:00,2026-03-02T16:00:00+01:00,1,1,16,,,", "row 2, column arrival:"),
        ("yesterday,2026-03-02T16:00:00+01:00,1,1,16,,,", "row 2, column arrival: not an ISO"),
        ("2026-03-02T17:00:00+01:00,2026-03-02T16:00:00+01:00,1,1,16,,,", "column departure"),
        ("2026-03-02T07:00:00+01:00,2026-03-02T16:00:00+01:00,-1,1,16,,,", "column energy_kwh"),
        ("2026-03-02T07:00:00+01:00,2026-03-02T16:00:00+01:00,lots,1,16,,,", "not a number"),
        ("2026-03-02T07:00:00+01:00,2026-03-02T16:00:00+01:00,1,2,16,,,", "column phases"),
        ("2026-03-02T07:00:00+01:00,2026-03-02T16:00:00+01:00,1,3,40,,,", "column max_current"),
        ("2026-03-02T07:00:00+01:00,2026-03-02T16:00:00+01:00,1,3,nan,,,", "finite"),
        ("2026-03-02T07:00:00+01:00,2026-03-02T16:00:00+01:00,1,3,16,,1,", "needs its charger"),
        ("2026-03-02T07:00:00+01:00,2026-03-02T16:00:00+01:00,1,3,16,CP1,x,", "column connector"),
        ("2026-03-02T07:00:00+01:00,2026-03-02T16:00:00+01:00,1,3,16,,,1.5", "follows_limit"),
        ("2026-03-02T07:00:00+01:00,2026-03-02T16:00:00+01:00,1,3,16,,,,9", "row 2: 9 cells"),
    ],
)
def test_a_bad_row_is_one_line_naming_row_and_column(row: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(HEADER + GOOD + row.replace("row 2", "") + "\n")
    message = str(caught.value)
    assert "\n" not in message
    assert expected.replace("row 2", "row 3") in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty file"),
        ("arrival,departure,energy_kwh,phases\n", "missing column 'max_current'"),
        (HEADER.replace("charger", "bay"), "unknown column 'bay'"),
        ("arrival,arrival,departure,energy_kwh,phases,max_current\n", "appears twice"),
    ],
)
def test_a_bad_header_is_row_1(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError, match=expected):
        parse_scenario(text)


def test_read_scenario_names_the_file(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    path = tmp_path / "day.csv"
    path.write_text(HEADER + GOOD.replace(",1,16,", ",4,16,"))
    with pytest.raises(ScenarioError, match=r"day\.csv: row 2, column phases"):
        read_scenario(path)
    with pytest.raises(ScenarioError, match="cannot read"):
        read_scenario(tmp_path / "missing.csv")


def _visit_row(arrival: str, departure: str, charger: str = "", connector: str = "") -> str:
    return f"2026-03-02T{arrival}:00Z,2026-03-02T{departure}:00Z,5,1,16,{charger},{connector},\n"


def test_blank_connectors_go_to_the_first_free_one_and_named_ones_are_kept() -> None:
    text = HEADER
    text += _visit_row("08:00", "12:00", "CP1", "1")  # named
    text += _visit_row("07:00", "09:00")  # CP1/1 is named from 08:00: first free is CP1/2
    text += _visit_row("07:30", "10:00")  # then CP2/1
    text += _visit_row("09:30", "11:00", "CP1")  # CP1/2 is free again at 09:00
    placed = assign_connectors(parse_scenario(text), SITE)
    by_row = {v.row: v.key for v in placed.visits}
    assert by_row == {2: ("CP1", 1), 3: ("CP1", 2), 4: ("CP2", 1), 5: ("CP1", 2)}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([_visit_row("08:00", "09:00", "CP9", "1")], "row 2, column charger: 'CP9'"),
        ([_visit_row("08:00", "09:00", "CP1", "3")], "has no connector 3"),
        (
            [_visit_row("08:00", "10:00", "CP1", "1"), _visit_row("09:00", "11:00", "CP1", "1")],
            "row 3, column connector: CP1/1 is still taken by row 2",
        ),
        ([_visit_row("08:00", "10:00", "CP2")] * 3, "row 4, column connector: no connector"),
    ],
)
def test_visits_that_do_not_fit_the_site_name_their_row(rows: list[str], expected: str) -> None:
    with pytest.raises(ScenarioError, match=expected):
        assign_connectors(parse_scenario(HEADER + "".join(rows)), SITE)


def test_a_written_scenario_reads_back_the_same() -> None:
    ids = [f"CP{n}" for n in range(1, 31)]
    scenario = garage_day(ids, seed=3)
    out = io.StringIO()
    write_scenario(scenario, out)
    again = parse_scenario(out.getvalue())
    assert len(again.visits) == len(scenario.visits)
    for a, b in zip(scenario.visits, again.visits, strict=True):
        assert (a.arrival, a.departure, a.phases, a.max_current, a.key) == (
            b.arrival,
            b.departure,
            b.phases,
            b.max_current,
            b.key,
        )
        assert abs(a.energy_kwh - b.energy_kwh) < 1e-3


def test_the_generated_garage_is_deterministic_and_as_described() -> None:
    ids = [f"CP{n}" for n in range(1, 31)]
    day = garage_day(ids, seed=1)
    assert day == garage_day(ids, seed=1)
    assert day != garage_day(ids, seed=2)
    one_phase = sum(v.phases == 1 for v in day.visits)
    assert one_phase == round(ONE_PHASE_SHARE * len(day.visits))
    # it fits the garage: no connector holds two cars at once
    assign_connectors(day, [(cp, c) for cp in ids for c in (1, 2)])
    # the month holds the same day (the same seed, the same date)
    month = garage_month(ids, seed=1, first_day=date(2026, 3, 2), days=3)
    first_day = [v for v in month.visits if v.arrival < day.visits[-1].arrival + 1]
    assert [v.arrival for v in first_day[: len(day.visits)]] == [v.arrival for v in day.visits]
