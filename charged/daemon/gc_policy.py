"""The cyclic garbage collector's settings while the daemon ticks.

Profiling the collector (bench/README.md, "collector's CPU per charger") found about a
tenth of its CPU in the garbage collector, work a bare HTTP loop does not do:

- every full collection walked the whole heap the start had left behind (imported modules,
  SQLAlchemy's tables and compiled statements, the settings: ~130,000 objects, ~80 ms a
  pass on the benchmark machine), though none of it ever becomes garbage;
- the young generation was collected every 700 allocations, ~50 times per tick of 1,000
  chargers, for answers, models and rows that reference counting frees on its own anyway.

So while the daemon ticks, what the start built is frozen (``gc.freeze``: kept out of every
collection) and the young generation is collected every :data:`YOUNG_THRESHOLD`
allocations.  Cycles are still collected, only less often: at most that many young objects
wait a little longer.  Leaving restores the thresholds and unfreezes, so a process that runs
a daemon and then goes on (the tests, ``charged demo``) is left as it was.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Allocations (less deallocations) between two young collections; CPython's default is 700.
YOUNG_THRESHOLD = 10_000

_active = 0  # daemons ticking in this process: the settings are process-wide
_saved: tuple[int, int, int] | None = None


@contextmanager
def ticking_gc() -> Iterator[None]:
    """The collector settings above for the ``with`` block (nested or concurrent daemons of
    one process share them; the last one out restores them)."""
    global _active, _saved
    if _active == 0:
        _saved = gc.get_threshold()
        gc.collect()  # what is garbage now must not be frozen for good
        gc.freeze()
        gc.set_threshold(max(YOUNG_THRESHOLD, _saved[0]), _saved[1], _saved[2])
    _active += 1
    try:
        yield
    finally:
        _active -= 1
        if _active == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            gc.unfreeze()
            _saved = None
