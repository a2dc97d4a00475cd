from __future__ import annotations

import pytest

from charged.balancer.model import (
    ALL_TERMINALS,
    ChargerSpec,
    ConnectorState,
    Fuse,
    Rotation,
    Site,
    all_rotations,
)


def test_rotation_parses_every_permutation_and_prints_it_back() -> None:
    texts = sorted(str(r) for r in all_rotations())
    assert texts == ["L1L2L3", "L1L3L2", "L2L1L3", "L2L3L1", "L3L1L2", "L3L2L1"]
    for text in texts:
        assert str(Rotation.parse(text)) == text
    assert Rotation.parse("l2-l3-l1").site_phases == (1, 2, 0)


@pytest.mark.parametrize("bad", ["L1L1L2", "L1L2", "L1L2L4", "", "123", "L1L2L3L1"])
def test_rotation_refuses_what_is_not_a_permutation(bad: str) -> None:
    with pytest.raises(ValueError, match="rotation"):
        Rotation.parse(bad)


def test_rotation_maps_terminals_and_currents_to_site_phases() -> None:
    rot = Rotation.parse("L2L3L1")
    assert rot.site_phase(0) == 1
    assert rot.to_site(frozenset({0})) == frozenset({1})
    assert rot.currents_to_site((16.0, 0.0, 2.0)) == (2.0, 16.0, 0.0)


def test_site_knows_each_chargers_fuse_path_and_capacity() -> None:
    sub = Fuse("sub", (40.0, 40.0, 40.0), chargers=("B",))
    root = Fuse("main", (63.0, 63.0, 50.0), children=(sub,), chargers=("A",))
    site = Site(root, (ChargerSpec("A"), ChargerSpec("B", installation_current=16)), margin=3)
    assert [f.name for f in site.fuses_of("B")] == ["main", "sub"]
    assert [f.name for f in site.fuses_of("A")] == ["main"]
    assert site.fuses_of("nowhere") == ()
    assert site.capacity(root) == (60.0, 60.0, 47.0)
    assert site.charger("B") is not None and site.charger("B").connector_max == 16  # type: ignore[union-attr]
    assert site.connector_keys() == (("A", 1), ("A", 2), ("B", 1), ("B", 2))
    assert sorted(root.all_chargers()) == ["A", "B"]


def test_unknown_terminals_count_as_all_three() -> None:
    assert ConnectorState(("A", 1)).drawing_terminals == ALL_TERMINALS
    assert ConnectorState(("A", 1), terminals=frozenset({0})).drawing_terminals == {0}
