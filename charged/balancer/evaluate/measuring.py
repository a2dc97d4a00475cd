"""The simulator's grid as the evaluation engine measures it, and a site as the grid's wiring.

:class:`MeasuringGrid` integrates, exactly over the grid's piecewise-constant currents, what
the figures need beyond the grid's own ampere-seconds: the root fuse's phase unbalance, the
energy through it (all of it, and the building's part), and per-tick peaks for the figures of
long runs.  The building's load (a meter series) is set on it as a current of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from charged.balancer.model import PhaseCurrents, Site
from charged.simulator import grid as simgrid


class MeasuringGrid(simgrid.Grid):
    """The simulator's grid, integrating two more things exactly over its piecewise-constant
    currents: the root fuse's phase unbalance and the energy through it, and (for figures of
    long runs) the highest current of every fuse phase since the last :meth:`window_peaks`."""

    def __init__(self, spec: simgrid.GridSpec, start: int, *, record: bool = False) -> None:
        super().__init__(spec, start, record=record)
        self.unbalance_mas = 0  # ∫ (max − min phase current) dt at the root, mA·s
        self.mean_mas = 0  # ∫ mean phase current dt at the root, mA·s
        self.loaded_s = 0  # seconds with any current at the root
        self.root_mas = 0  # ∫ (I1 + I2 + I3) dt at the root, mA·s
        self.building_ma = 0  # the building's I1 + I2 + I3 at the root, mA
        self.building_mas = 0  # ∫ building_ma dt
        self._building = [0] * len(self.current_ma)
        self._window = list(self.current_ma)

    def advance(self, to: int) -> None:
        dt = to - self.t
        if dt > 0:
            a, b, c = self.current_ma[0], self.current_ma[1], self.current_ma[2]
            total = a + b + c
            if total > 0:
                self.unbalance_mas += (max(a, b, c) - min(a, b, c)) * dt
                self.mean_mas += total * dt // 3
                self.root_mas += total * dt
                self.loaded_s += dt
            self.building_mas += self.building_ma * dt
        super().advance(to)

    def change(self, columns: Iterable[int], delta_ma: int) -> None:
        super().change(columns, delta_ma)
        window, current = self._window, self.current_ma
        for col in columns:
            if current[col] > window[col]:
                window[col] = current[col]

    def set_building(self, loads: Mapping[str, PhaseCurrents]) -> None:
        """The building's current through each fuse (A per site phase) from now on."""
        for index, fuse in enumerate(self.fuses):
            amps = loads.get(fuse.name, (0.0, 0.0, 0.0))
            for p in range(3):
                column = index * 3 + p
                new = round(amps[p] * 1000)
                delta = new - self._building[column]
                if delta:
                    self._building[column] = new
                    self.change((column,), delta)
        self.building_ma = sum(self._building[0:3])

    def window_peaks(self) -> list[int]:
        """The highest mA of every column since the last call (or the start)."""
        peaks, self._window = self._window, list(self.current_ma)
        return peaks


def grid_spec(site: Site) -> simgrid.GridSpec:
    """The simulator's description of the same site (the physics shares no balancer code)."""

    def convert(fuse: object) -> simgrid.Fuse:
        from charged.balancer.model import Fuse

        assert isinstance(fuse, Fuse)
        return simgrid.Fuse(
            name=fuse.name,
            limit=fuse.limit,
            children=tuple(convert(c) for c in fuse.children),
            chargers=fuse.chargers,
        )

    return simgrid.GridSpec(
        root=convert(site.root),
        rotations={c.id: str(c.rotation) for c in site.chargers},
    )
