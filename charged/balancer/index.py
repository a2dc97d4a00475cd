"""The site as numbers: every fuse phase an index, every charger its list of them (pure).

The allocation and the guarantee run every tick over the same site; walking the fuse tree
and building each connector's fuse-phase tuple once per site, not once per connector per
tick, is most of what makes a tick of 10,000 connectors cheap (bench/allocation.py).  The
index is kept for the few sites last seen, by identity (a Site is immutable).
"""

from __future__ import annotations

from charged.balancer.model import ALL_TERMINALS, ChargerSpec, ConnectorKey, FusePhase, Site

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
        # every connector key of those chargers, in the same order
        self.keys: tuple[ConnectorKey, ...] = tuple(k for _, keys in self.chargers for k in keys)
        # each key's place in sorted order: ties between equal cars are broken by key, and
        # an integer compares faster than a (charger, connector) tuple
        rank = {k: n for n, k in enumerate(sorted(self.keys))}
        self.ranked: list[tuple[ChargerSpec, float, tuple[tuple[ConnectorKey, int], ...]]] = [
            (spec, spec.connector_max, tuple((k, rank[k]) for k in keys))
            for spec, keys in self.chargers
        ]
        self._memo: dict[tuple[str, frozenset[int]], tuple[int, ...]] = {}
        # one tuple object per distinct set of fuse phases: connectors of a row that draw on
        # the same phases share it, so the allocation can group them by it cheaply
        self._interned: dict[tuple[int, ...], tuple[int, ...]] = {}
        # (charger, terminals) -> (site phases, fuse phases, the fuse phases' number)
        self.counted_memo: dict[
            tuple[str, frozenset[int] | None], tuple[frozenset[int], tuple[int, ...], int]
        ] = {}
        self._numbers: dict[tuple[int, ...], int] = {}

    def placed(self, cp_id: str) -> bool:
        return bool(self._path.get(cp_id))

    def of(self, cp_id: str, phases: frozenset[int]) -> tuple[int, ...]:
        """The fuse phases a connector of ``cp_id`` counted on ``phases`` loads."""
        key = (cp_id, phases)
        found = self._memo.get(key)
        if found is None:
            found = tuple(n * 3 + p for n in self._path.get(cp_id, ()) for p in sorted(phases))
            found = self._memo[key] = self._interned.setdefault(found, found)
        return found

    def counted(
        self, spec: ChargerSpec, terminals: frozenset[int] | None
    ) -> tuple[frozenset[int], tuple[int, ...], int]:
        """The site phases a connector of ``spec`` whose car draws on ``terminals`` (None:
        not known, all three) is counted on, and the fuse phases it loads: what
        :func:`~charged.balancer.envelope.counted_phases` and :meth:`of` give, in one lookup;
        then a number that is the same for the same fuse phases (a cheap key to group by)."""
        key = (spec.id, terminals)
        found = self.counted_memo.get(key)
        if found is None:
            phases = ALL_TERMINALS if terminals is None else spec.rotation.to_site(terminals)
            capacities = self.of(spec.id, phases)
            number = self._numbers.setdefault(capacities, len(self._numbers))
            found = self.counted_memo[key] = (phases, capacities, number)
        return found


def index_of(site: Site) -> SiteIndex:
    for seen, index in _cache:
        if seen is site:
            return index
    index = SiteIndex(site)
    _cache.insert(0, (site, index))
    del _cache[_KEEP:]
    return index
