"""The site: and balancer: sections: validated like the rest of the config, one line each."""

from __future__ import annotations

from typing import Any

import pytest

from charged.balancer.configured import params_from_settings, runtime_mode, site_from_settings
from charged.balancer.model import Rotation
from charged.config import ConfigError, settings_from_mapping

SITE: dict[str, Any] = {
    "margin": 2,
    "fuse": {
        "name": "main",
        "limit": 63,
        "chargers": ["C"],
        "children": [{"name": "row", "limit": [40, 40, 32], "chargers": ["A", "B"]}],
    },
    "rotations": {"B": "L2L3L1"},
    "vendor_balancing_off": ["A"],
}


def load(**sections: Any) -> Any:
    return settings_from_mapping(sections, source="t.yaml", require_secrets=False)


def test_the_site_becomes_the_models_site() -> None:
    settings = load(site=SITE, balancer={"mode": "active", "settle_s": 90})
    site = site_from_settings(settings.site)
    assert [f.name for f in site.fuses()] == ["main", "row"]
    assert site.fuses()[1].limit == (40.0, 40.0, 32.0)
    assert site.margin == 2.0
    assert [f.name for f in site.fuses_of("B")] == ["main", "row"]
    spec = site.charger("B")
    assert spec is not None and spec.rotation == Rotation.parse("L2L3L1")
    a = site.charger("A")
    assert a is not None and a.vendor_balancing_off
    assert runtime_mode(settings.balancer) == "active"
    assert params_from_settings(settings.balancer).settle_s == 90
    assert runtime_mode(load(balancer={"mode": False}).balancer) is None  # YAML's bare off


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"balancer": {"mode": "shadow"}}, "balancer.mode is shadow but there is no site"),
        ({"site": {**SITE, "rotations": {"B": "L1L1L2"}}}, "site.rotations.B"),
        (
            {"site": {**SITE, "fuse": {**SITE["fuse"], "chargers": ["A"]}}},
            "charger A is under both",
        ),
        ({"site": {**SITE, "rotations": {"Z": "L1L2L3"}}}, "charger Z is under no fuse"),
        ({"site": {**SITE, "fuses": {}}}, "unknown key 'site.fuses'"),
        ({"balancer": {"mode": "on"}}, "balancer.mode"),
    ],
)
def test_a_bad_site_or_balancer_is_one_line_naming_the_key(
    sections: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(**sections)
