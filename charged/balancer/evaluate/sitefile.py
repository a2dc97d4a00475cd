"""The site file of ``charged balance evaluate``, read twice by two parsers that share no code.

The file is YAML: either a site on its own (``fuse``, ``rotations``, ``margin``,
``vendor_balancing_off``: the ``site:`` section's schema) or a config-shaped mapping with a
``site:`` section and, optionally, a ``balancer:`` section and a ``prices:`` section (its
rule, for ``charged-price``: ``dear_above`` or ``dear_share``, ``cap_kw``, ``connector_min``);
a garage's own config.yaml works (its other sections are not read).

* The policies see the site as **the daemon reads it**: the config's ``SiteSettings`` and
  ``BalancerSettings`` (:mod:`charged.config`) turned into the model by
  :mod:`charged.balancer.configured`, exactly as ``charged run`` does.
* The ground truth sees it as **the simulator reads it**: the ``fuse`` and ``rotations`` keys
  through :func:`charged.simulator.grid.grid_from_mapping`, which knows nothing of the
  balancer.  The margin is not physics: the truth judges every fuse at its real limit.

Were one of the parsers to misread a limit or a rotation, the balancer would be judged
against the wiring the simulator read, and :func:`differences` names what differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from charged.balancer.configured import (
    params_from_settings,
    site_from_settings,
    target_from_settings,
)
from charged.balancer.model import BalancerParams, Site
from charged.balancer.power_target import TargetSpec
from charged.config_site import BalancerSettings, PriceSettings, SiteSettings
from charged.prices.rule import DEFAULT_RULE, PriceRule, rule_from_settings
from charged.simulator import grid as simgrid

PHYSICAL_KEYS = ("fuse", "rotations")  # what the simulator's parser reads of a site


class SiteFileError(ValueError):
    """A site file that cannot be used; the message is one line naming the file and key."""


@dataclass(frozen=True, slots=True)
class SiteFile:
    site: Site  # as the balancer reads it (margin included)
    params: BalancerParams  # the balancer: section, defaults when absent
    grid: simgrid.GridSpec  # as the simulator reads it: the ground truth's wiring
    price_rule: PriceRule = DEFAULT_RULE  # the prices: section's rule
    target: TargetSpec | None = None  # site.power_target (the charged-target policy's)


def read_site_file(path: Path | str) -> SiteFile:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SiteFileError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "not YAML"
        raise SiteFileError(f"{path}: not YAML ({first})") from None
    if not isinstance(data, Mapping):
        raise SiteFileError(f"{path}: must be a mapping with a site (fuse, rotations, margin)")
    return parse_site_file(data, name=str(path))


def parse_site_file(data: Mapping[str, Any], *, name: str = "site file") -> SiteFile:
    if "site" in data:
        site_data, where = data["site"], "site."
        balancer_data = data.get("balancer") or {}
        price_data = data.get("prices") or {}
    else:
        site_data, where, balancer_data, price_data = data, "", {}, {}
    if not isinstance(price_data, Mapping):
        raise SiteFileError(f"{name}: prices must be a mapping of its settings")
    try:
        rule = rule_from_settings(PriceSettings.model_validate(price_data))
    except ValidationError as exc:
        raise SiteFileError(f"{name}: {_first_error(exc, 'prices.')}") from None
    if not isinstance(site_data, Mapping):
        raise SiteFileError(f"{name}: site must be a mapping with fuse and rotations")
    if not isinstance(balancer_data, Mapping):
        raise SiteFileError(f"{name}: balancer must be a mapping of its settings")
    try:
        settings = SiteSettings.model_validate(site_data)
        balancer = BalancerSettings.model_validate(balancer_data)
    except ValidationError as exc:
        prefix = where if exc.title == "SiteSettings" else "balancer."
        raise SiteFileError(f"{name}: {_first_error(exc, prefix)}") from None
    if settings.fuse is None:
        raise SiteFileError(f"{name}: {where}fuse is missing (the root fuse of the site)")
    try:
        site = site_from_settings(settings)
        params = params_from_settings(balancer)
    except ValueError as exc:
        raise SiteFileError(f"{name}: {exc}") from None
    physical = {k: site_data[k] for k in PHYSICAL_KEYS if k in site_data}
    try:
        grid = simgrid.grid_from_mapping(physical)
    except ValueError as exc:
        raise SiteFileError(f"{name}: the simulator reads it otherwise: {exc}") from None
    return SiteFile(site, params, grid, rule, target_from_settings(settings))


def _first_error(exc: ValidationError, prefix: str) -> str:
    first = exc.errors()[0]
    key = prefix + (".".join(str(part) for part in first["loc"]) or "(top level)")
    if first["type"] == "extra_forbidden":
        return f"unknown key '{key}'"
    return f"{key}: {first['msg'].removeprefix('Value error, ')}"


def differences(site: Site, grid: simgrid.GridSpec) -> list[str]:
    """What the balancer's reading and the simulator's reading of one file disagree on."""
    out: list[str] = []
    ours = {f.name: f for f in site.fuses()}
    theirs = {f.name: f for f in grid.root.walk()}
    for name in sorted(set(ours) | set(theirs)):
        a, b = ours.get(name), theirs.get(name)
        if a is None or b is None:
            out.append(f"fuse {name}: read by only one of the two parsers")
            continue
        if tuple(a.limit) != tuple(b.limit):
            out.append(f"fuse {name}: limit {a.limit} for the balancer, {b.limit} for the truth")
        if sorted(a.chargers) != sorted(b.chargers):
            out.append(f"fuse {name}: its chargers differ between the two parsers")
    for charger in site.chargers:
        truth = grid.rotations.get(charger.id, simgrid.DEFAULT_ROTATION)
        if str(charger.rotation) != truth:
            out.append(
                f"charger {charger.id}: rotation {charger.rotation} for the balancer, "
                f"{truth} for the truth"
            )
    return out
