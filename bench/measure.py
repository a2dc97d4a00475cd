"""What one process costs: CPU seconds, current and peak resident memory (Linux /proc)."""

from __future__ import annotations

import os
import resource
import time

_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    return time.process_time()


def rss_mb() -> float:
    """Resident memory now, in MiB (from /proc/self/statm; 0 where there is no /proc)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE / 2**20
    except OSError:
        return 0.0


def peak_rss_mb() -> float:
    """Highest resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
