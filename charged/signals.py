"""SIGINT/SIGTERM → a graceful stop; a second signal → stop at once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable


def install_stop_signals(stop: asyncio.Event, on_second: Callable[[], object]) -> None:
    """First SIGINT/SIGTERM sets ``stop``; a second one calls ``on_second``."""
    loop = asyncio.get_running_loop()

    def handler() -> None:
        if stop.is_set():
            on_second()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not on the main thread (tests) or not on Unix: the default handlers stay.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, handler)
