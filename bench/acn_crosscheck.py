"""``python -m bench.acn_crosscheck``: ACN-Sim's RoundRobin, first-come and LLF on the garage.

Issue 15's independent cross-check: the visits of the generated garage weekday (or month),
the same that ``charged balance evaluate --generated`` replays, run through acnportal's own
simulator and algorithms (https://acnportal.readthedocs.io), with nothing of charged in the
loop.  acnportal is not a dependency of charged.  Give it a virtualenv of its own: it
installs a top-level ``tests`` package, which hides charged's own tests in the venv it goes
into::

    python3 -m venv .venv-acn && .venv-acn/bin/pip install -e . acnportal
    .venv-acn/bin/python -m bench.acn_crosscheck

ACN-Sim models every charger as a one-phase load with a constraint per fuse phase over fixed
stations.  That is exact for a site where every charger is wired L1L2L3 (``bench/sites/
garage.yaml``): every car loads site L1, and L2 and L3 carry only the three-phase cars, so
no current on L2 or L3 is above the L1 of the same fuse and the L1 constraints are all that
bind.  A three-phase car is one station current with a third of its energy (what flows
through each phase); a car drawing half its limit has half its maximum rate.  Each period is
a minute, and a rate acts at once (no 30-s polls, no 30–60 s delay, no taper).  The sorted
algorithms give each car the highest allowed rate in turn: with ``--known-max`` (the default)
the algorithm knows each car's own maximum, without it a 10 A car is given 32 A of the fuse.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from charged.balancer.evaluate.generate import garage_day, garage_month
from charged.balancer.evaluate.metrics import jain_index
from charged.balancer.evaluate.scenario import Visit, assign_connectors
from charged.balancer.evaluate.sitefile import read_site_file
from charged.balancer.model import Site

VOLTAGE = 230.0  # per station: every station current is one phase's
RATES = [0, *range(6, 33)]  # a car stops under 6 A; whole amperes up to 32
ALGORITHMS = ("RoundRobin", "first-come", "least-laxity")


def _station(key: tuple[str, int]) -> str:
    return f"{key[0]}/{key[1]}"


def _not_plain(site: Site) -> str | None:
    """Why the one-phase model would not be exact for ``site`` (None: it is)."""
    rotated = [c.id for c in site.chargers if str(c.rotation) != "L1L2L3"]
    if rotated:
        return (
            f"acn_crosscheck: charger {rotated[0]} is not wired L1L2L3; the one-phase model is "
            "exact only when every charger is (use bench/sites/garage.yaml)"
        )
    return None


def run(
    site: Site, visits: tuple[Visit, ...], algorithm: str, *, known_max: bool
) -> dict[str, Any]:
    """One acnportal simulation of ``visits``; the energy figures as charged's table has them."""
    from acnportal import acnsim, algorithms  # type: ignore[import-untyped]
    from acnportal.acnsim.interface import Interface, SessionInfo  # type: ignore[import-untyped]
    from acnportal.acnsim.models.battery import Battery  # type: ignore[import-untyped]

    class KnownMaximum(Interface):  # type: ignore[misc]
        """The sessions as acnportal gives them, with each car's own maximum rate."""

        def _active_sessions(self) -> list[SessionInfo]:
            return [
                SessionInfo(
                    ev.station_id,
                    ev.session_id,
                    ev.requested_energy,
                    ev.energy_delivered,
                    ev.arrival,
                    ev.departure,
                    ev.estimated_departure,
                    self.current_time,
                    max_rates=ev.maximum_charging_power * 1000 / VOLTAGE,
                )
                for ev in self._active_evs
            ]

    network = acnsim.ChargingNetwork(violation_tolerance=1e-4, relative_tolerance=1e-7)
    stations = [_station(key) for key in site.connector_keys()]
    for station in stations:
        network.register_evse(acnsim.FiniteRatesEVSE(station, RATES), VOLTAGE, 0)
    below: dict[str, list[str]] = {f.name: [] for f in site.fuses()}
    for charger in site.chargers:
        for fuse in site.fuses_of(charger.id):
            below[fuse.name] += [_station(key) for key in charger.connector_keys()]
    for fuse in site.fuses():
        if below[fuse.name]:
            current = acnsim.Current(below[fuse.name])
            network.add_constraint(current, site.capacity(fuse)[0], name=fuse.name)
    start = min(v.arrival for v in visits) // 60 * 60
    events = acnsim.EventQueue()
    cars = []
    for number, v in enumerate(visits):
        rate = v.max_current * v.follows_limit
        ev = acnsim.EV(
            int((v.arrival - start) // 60),
            int((v.departure - start) // 60),
            v.energy_kwh / v.phases,
            _station(v.key),
            f"visit-{number}",
            Battery(capacity=1e9, init_charge=0, max_power=rate * VOLTAGE / 1000),
        )
        cars.append((ev, v))
        events.add_event(acnsim.PluginEvent(ev.arrival, ev))
    sort = {
        "RoundRobin": algorithms.first_come_first_served,
        "first-come": algorithms.first_come_first_served,
        "least-laxity": algorithms.least_laxity_first,
    }[algorithm]
    scheduler = (
        algorithms.RoundRobin(sort, continuous_inc=1)
        if algorithm == "RoundRobin"
        else algorithms.SortedSchedulingAlgo(sort)
    )
    extra = {"interface_type": KnownMaximum} if known_max else {}
    began = time.perf_counter()
    simulator = acnsim.Simulator(
        network,
        scheduler,
        events,
        datetime.fromtimestamp(start, UTC),
        period=1,
        verbose=False,
        **extra,
    )
    simulator.run()
    delivered = [min(ev.energy_delivered * v.phases, v.energy_kwh) for ev, v in cars]
    asked = sum(v.energy_kwh for v in visits)
    ratios = [
        d / v.energy_kwh if v.energy_kwh > 0 else 1.0
        for d, (_, v) in zip(delivered, cars, strict=True)
    ]
    return {
        "algorithm": algorithm,
        "energy_kwh": sum(delivered),
        "energy_pct": 100 * sum(delivered) / asked if asked else 100.0,
        "jain": jain_index(ratios),
        "lowest_ratio": min(ratios),
        "peak_root_a": float(simulator.charging_rates.sum(axis=0).max()),
        "run_s": time.perf_counter() - began,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.acn_crosscheck", description=__doc__)
    parser.add_argument("--site", type=Path, default=Path("bench/sites/garage.yaml"))
    parser.add_argument("--generated", choices=("garage", "garage-month"), default="garage")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--unknown-max",
        action="store_true",
        help="the algorithms do not know a car's own maximum (acnportal's default)",
    )
    args = parser.parse_args(argv)
    try:
        import acnportal  # noqa: F401
    except ImportError:
        print(
            "acn_crosscheck: acnportal is not installed; give it a venv of its own: "
            "python3 -m venv .venv-acn && .venv-acn/bin/pip install -e . acnportal",
            file=sys.stderr,
        )
        return 2
    site_file = read_site_file(args.site)
    site = site_file.site
    why = _not_plain(site)
    if why is not None:
        print(why, file=sys.stderr)
        return 2
    ids = [c.id for c in site.chargers]
    scenario = (
        garage_day(ids, seed=args.seed)
        if args.generated == "garage"
        else garage_month(ids, seed=args.seed, days=args.days)
    )
    visits = assign_connectors(scenario, list(site.connector_keys())).visits
    asked = sum(v.energy_kwh for v in visits)
    print(f"{scenario.name}: {len(visits)} visits, {asked:,.1f} kWh asked")
    for name in ALGORITHMS:
        got = run(site, visits, name, known_max=not args.unknown_max)
        print(
            f"{name:13s} {got['energy_kwh']:9,.1f} kWh ({got['energy_pct']:.1f} %)  "
            f"Jain {got['jain']:.3f}  lowest {got['lowest_ratio']:.2f}  "
            f"peak {got['peak_root_a']:.1f} A  {got['run_s']:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
