"""The evaluation's figures for the README and bench/README.md, as PNG and PDF.

One run of every policy on issue 15's simulated garage weekday (``--generated garage``, seed
1) on a site file (default ``bench/sites/garage.yaml``, every charger wired L1L2L3), then:

- ``evaluation-fuses``: the current per phase at every fuse against its limit, a row per policy;
- ``evaluation-energy``: energy served over the day per policy, with optimal and the ask;
- ``garage-before-after``: the README's garage figure under ``uncontrolled`` and ``charged``.

The first two are what ``charged balance evaluate --generated garage --site SITE --plot
F.png --plot-energy E.png`` draws.  Called by ``python -m charged.docs_figures --evaluation``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from charged.balancer.evaluate.command import POLICY_NAMES, evaluate
from charged.balancer.evaluate.engine import EngineParams
from charged.balancer.evaluate.generate import garage_day
from charged.balancer.evaluate.policies import PRICE_POLICY
from charged.balancer.evaluate.sitefile import read_site_file
from charged.balancer.evaluate.target_policy import NAME as TARGET_POLICY

SITE = Path("bench/sites/garage.yaml")
NAMES = ("evaluation-fuses", "evaluation-energy", "garage-before-after")
FORMATS = (".png", ".pdf")
DPI = 150


def evaluation_figures(out: Path, site: Path = SITE, *, seed: int = 1) -> list[Path]:
    """Run every policy once and write each figure as PNG and PDF into ``out``."""
    from charged.balancer.evaluate.plot import before_after_figure, energy_figure, fuse_figure

    site_file = read_site_file(site)
    scenario = garage_day([c.id for c in site_file.site.chargers], seed=seed)
    # the day has no prices, and one optimum is drawn
    names = [
        n
        for n in POLICY_NAMES
        if n not in (PRICE_POLICY, TARGET_POLICY, "optimal-cost", "optimal-peak")
    ]
    evaluation = evaluate(scenario, site_file, names, EngineParams(seed=seed, trace=True))
    runs = {r.policy: r for r in evaluation.runs}
    tz = scenario.tz
    figures: dict[str, Any] = {
        "evaluation-fuses": fuse_figure(evaluation.runs, evaluation.optimum, tz=tz),
        "evaluation-energy": energy_figure(evaluation.runs, scenario, evaluation.optimum, tz=tz),
        "garage-before-after": before_after_figure(runs["uncontrolled"], runs["charged"], tz=tz),
    }
    written = []
    for name in NAMES:
        for suffix in FORMATS:
            path = out / f"{name}{suffix}"
            figures[name].savefig(path, dpi=DPI)
            written.append(path)
    return written
