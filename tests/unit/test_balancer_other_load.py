"""The site less the building's load (site meters): what allocate() and plan() see of a fuse."""

from __future__ import annotations

from charged.balancer.model import ChargerSpec, Fuse, Site

ROW_A = Fuse("row-a", (32.0, 32.0, 32.0), chargers=("A",))
ROW_B = Fuse("row-b", (32.0, 32.0, 32.0), chargers=("B",))
SITE = Site(
    Fuse("main", (63.0, 63.0, 63.0), children=(ROW_A, ROW_B)),
    (ChargerSpec("A"), ChargerSpec("B")),
    margin=2.0,
)


def caps(site: Site) -> dict[str, tuple[float, float, float]]:
    return {f.name: site.capacity(f) for f in site.fuses()}


def test_a_meter_lowers_its_fuse_and_every_fuse_above_it() -> None:
    site = SITE.with_other_load({"row-a": (10.0, 0.0, 4.0)})
    assert caps(site) == {
        "main": (51.0, 61.0, 57.0),
        "row-a": (20.0, 30.0, 26.0),
        "row-b": (30.0, 30.0, 30.0),
    }
    assert caps(SITE.with_other_load({})) == caps(SITE)  # no meters: the site as it was
    assert SITE.with_other_load({}) == SITE


def test_a_meter_above_counts_at_least_what_the_meters_below_it_read() -> None:
    site = SITE.with_other_load(
        {"main": (15.0, 30.0, 0.0), "row-a": (10.0, 0.0, 4.0), "row-b": (8.0, 0.0, -5.0)}
    )
    # L1: main reads 15 < 10 + 8 read below (taken at another moment): 18 counts
    assert site.other_load_of(site.root) == (18.0, 30.0, 4.0)
    assert caps(site)["row-b"] == (22.0, 30.0, 30.0)  # an export (-5 A) counts as 0
    # the capacity never goes below 0, however much the building draws
    assert caps(SITE.with_other_load({"row-a": (50.0, 50.0, 50.0)}))["row-a"] == (0.0, 0.0, 0.0)
