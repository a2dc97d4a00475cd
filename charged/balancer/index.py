"""The site as numbers: every fuse phase an index, every charger its list of them (pure).

The allocation and the guarantee run every tick over the same site; walking the fuse tree
and building each connector's fuse-phase tuple once per site, not once per connector per
tick, is most of what makes a tick of 10,000 connectors cheap (bench/allocation.py).  The
index is kept for the few sites last seen, by identity (a Site is immutable).
"""

from __future__ import annotations

from charged.balancer.model import ChargerSpec, ConnectorKey, FusePhase, Site

_KEEP = 4  # sites indexed at once: the runtime has one, tests and the evaluation a few
_cache: list[tuple[Site, SiteIndex]] = []


class SiteIndex:
    """Fuse phase ``i`` is fuse number ``i // 3``, site phase ``i % 3`` (fuses in tree order)."""

    def __init__(self, site: Site) -> None:
        fuses = site.fuses()
        self.names: list[FusePhase] = [(f.name, p) for f in fuses for p in range(3)]
        self.capacity: list[float] = [amps for f in fuses for amps in site.capacity(f)]
        number = {f.name: n for n, f in enumerate(fuses)}
        self._path: dict[str, tuple[int, ...]] = {
            spec.id: tuple(number[f.name] for f in site.fuses_of(spec.id)) for spec in site.chargers
        }
        # the most each charger's connectors can be given (32 A or its installation current)
        self.connector_max: dict[str, float] = {
            spec.id: spec.connector_max for spec in site.chargers
        }
        # the placed chargers with their connector keys, in the site's order
        self.chargers: list[tuple[ChargerSpec, tuple[ConnectorKey, ...]]] = [
            (spec, spec.connector_keys()) for spec in site.chargers if self._path.get(spec.id)
        ]
        self._memo: dict[tuple[str, frozenset[int]], tuple[int, ...]] = {}

    def placed(self, cp_id: str) -> bool:
        return bool(self._path.get(cp_id))

    def of(self, cp_id: str, phases: frozenset[int]) -> tuple[int, ...]:
        """The fuse phases a connector of ``cp_id`` counted on ``phases`` loads."""
        key = (cp_id, phases)
        found = self._memo.get(key)
        if found is None:
            found = tuple(n * 3 + p for n in self._path.get(cp_id, ()) for p in sorted(phases))
            self._memo[key] = found
        return found


def index_of(site: Site) -> SiteIndex:
    for seen, index in _cache:
        if seen is site:
            return index
    index = SiteIndex(site)
    _cache.insert(0, (site, index))
    del _cache[_KEEP:]
    return index
