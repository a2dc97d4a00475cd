"""The evaluation's figures: written, not blank, on the same axes, and true to the figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from charged.balancer.evaluate.command import Evaluation, evaluate
from charged.balancer.evaluate.engine import EngineParams
from charged.balancer.evaluate.scenario import parse_scenario
from charged.balancer.evaluate.sitefile import parse_site_file
from charged.cli import main

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")

SITE = """\
site:
  margin: 0
  fuse:
    name: main
    limit: 40
    children:
      - {name: row, limit: [25, 25, 25], chargers: [CP1, CP2]}
    chargers: [CP3]
  rotations: {CP2: L2L3L1, CP3: L3L1L2}
"""

# six cars on a 40 A main: uncontrolled overloads L1 of the row and of the main
SCENARIO = """\
arrival,departure,energy_kwh,phases,max_current,charger,connector,follows_limit
2026-03-02T08:00:10+01:00,2026-03-02T12:00:10+01:00,20,3,16,CP1,1,
2026-03-02T08:03:20+01:00,2026-03-02T11:03:20+01:00,12,1,32,CP1,2,
2026-03-02T08:06:40+01:00,2026-03-02T12:06:40+01:00,15,3,32,CP2,1,
2026-03-02T08:10:50+01:00,2026-03-02T10:10:50+01:00,6,1,16,CP2,2,0.5
2026-03-02T08:15:00+01:00,2026-03-02T11:15:00+01:00,18,3,16,CP3,1,
2026-03-02T08:25:00+01:00,2026-03-02T11:25:00+01:00,10,1,16,CP3,2,
"""
POLICIES = ("uncontrolled", "round-robin", "charged", "optimal")


def xy(line: Any) -> tuple[list[float], list[float]]:
    """A drawn line's points as floats."""
    return [float(v) for v in line.get_xdata()], [float(v) for v in line.get_ydata()]


def last_y(line: Any) -> float:
    return xy(line)[1][-1]


def assert_drawn(path: Path, min_bytes: int) -> None:
    """A PNG or PDF of some size, and (a PNG) not one colour: something was drawn."""
    data = path.read_bytes()
    assert len(data) > min_bytes, (path, len(data))
    if path.suffix == ".pdf":
        assert data.startswith(b"%PDF")
        return
    assert data.startswith(b"\x89PNG")
    from matplotlib.image import imread

    pixels = imread(path)
    ink = (pixels[..., :3].sum(axis=2) < 2.4).mean()  # share of pixels that are not white
    assert 0.02 < ink < 0.6, ink


def files(tmp_path: Path) -> list[str]:
    site, scenario = tmp_path / "site.yaml", tmp_path / "day.csv"
    site.write_text(SITE)
    scenario.write_text(SCENARIO)
    return ["--scenario", str(scenario), "--site", str(site)]


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    site_file = parse_site_file(yaml.safe_load(SITE))
    scenario = parse_scenario(SCENARIO, name="six-cars")
    return evaluate(scenario, site_file, POLICIES, EngineParams(trace=True))


def test_the_command_writes_both_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fuses, energy = tmp_path / "fuses.png", tmp_path / "energy.pdf"
    plots = ["--plot", str(fuses), "--plot-energy", str(energy)]
    code = main(["balance", "evaluate", *files(tmp_path), "--policy", ",".join(POLICIES), *plots])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"wrote {fuses}" in err and f"wrote {energy}" in err
    assert_drawn(fuses, 30_000)
    assert_drawn(energy, 5_000)


def test_a_plot_to_an_unwritable_place_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = ["--plot-energy", str(tmp_path / "no" / "e.png")]
    code = main(["balance", "evaluate", *files(tmp_path), "--policy", "uncontrolled", *plot])
    err = capsys.readouterr().err
    assert code == 1 and "cannot write" in err


def test_the_fuse_figure_is_a_row_per_policy_on_the_same_axes(evaluation: Evaluation) -> None:
    from charged.balancer.evaluate.plot import fuse_figure

    figure = fuse_figure(evaluation.runs, evaluation.optimum, tz=evaluation.scenario.tz)
    axes = figure.get_axes()
    assert len(axes) == len(POLICIES) * 2  # the rows of every policy, optimal too; two fuses
    assert len({ax.get_ylim() for ax in axes}) == 1
    assert len({ax.get_xlim() for ax in axes}) == 1
    labels = [axes[2 * r].get_ylabel().split("\n")[0] for r in range(len(POLICIES))]
    assert labels == list(POLICIES)
    # the overload is written on uncontrolled's main panel, nothing on charged's
    uncontrolled_main = " ".join(t.get_text() for t in axes[0].texts)
    charged_main = " ".join(t.get_text() for t in axes[4].texts)
    assert "0 A·s above" not in uncontrolled_main and " A·s above" in uncontrolled_main
    assert charged_main.endswith(", 0 A·s above")
    # hours of the scenario's own day (it was written at +01:00): the cars come at 08:00
    first_data = min(min(xy(line)[0]) for line in axes[0].get_lines()[:3])
    assert 7.5 <= first_data <= 8.1


def test_the_energy_curves_end_at_what_each_policy_delivered(evaluation: Evaluation) -> None:
    from charged.balancer.evaluate.plot import energy_figure

    ev = evaluation
    figure = energy_figure(ev.runs, ev.scenario, ev.optimum)
    lines = {
        str(line.get_label()).split(" (")[0]: line for line in figure.get_axes()[0].get_lines()
    }
    assert set(lines) == {"asked by the cars arrived", *POLICIES}
    by_policy = {f.policy: f for f in ev.figures}
    for name in POLICIES:
        final = last_y(lines[name])
        assert final == pytest.approx(by_policy[name].energy_kwh, rel=0.01), name
        # never above what the cars that had arrived asked for
        assert final <= ev.scenario.energy_asked_kwh + 1e-6
    assert last_y(lines["asked by the cars arrived"]) == pytest.approx(81.0)
    # optimal is an upper bound of every policy that keeps the fuses (uncontrolled does not)
    keeping = [n for n in POLICIES if by_policy[n].ampere_seconds_above == 0]
    assert "charged" in keeping and "uncontrolled" not in keeping
    assert last_y(lines["optimal"]) >= max(last_y(lines[n]) for n in keeping) - 1e-6


def test_before_and_after_share_their_axes(evaluation: Evaluation, tmp_path: Path) -> None:
    from charged.balancer.evaluate.plot import before_after_figure

    runs = {r.policy: r for r in evaluation.runs}
    figure = before_after_figure(runs["uncontrolled"], runs["charged"])
    power_before, power_after, amps_before, amps_after = figure.get_axes()
    assert power_before.get_ylim() == power_after.get_ylim()
    assert amps_before.get_ylim() == amps_after.get_ylim()
    assert power_before.get_title() == "before: uncontrolled"
    assert power_after.get_title() == "after: charged"
    # the power is each tick's mean: its integral is the energy delivered
    line = power_after.get_lines()[0]
    xs, kw = xy(line)
    kwh = sum((b - a) * p for a, b, p in zip(xs, xs[1:], kw, strict=False))
    assert kwh == pytest.approx(runs["charged"].energy_kwh[-1], rel=1e-6)
    for suffix in (".png", ".pdf"):
        figure.savefig(tmp_path / f"garage{suffix}", dpi=100)
        assert_drawn(tmp_path / f"garage{suffix}", 10_000)


def test_the_paper_figures_are_written_as_png_and_pdf(tmp_path: Path) -> None:
    from charged.balancer.evaluate.paper_figures import NAMES, evaluation_figures

    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    written = evaluation_figures(tmp_path, site)
    assert sorted(p.name for p in written) == sorted(
        f"{name}{suffix}" for name in NAMES for suffix in (".png", ".pdf")
    )
    for path in written:
        assert_drawn(path, 5_000)
