"""SIGINT/SIGTERM → a graceful stop; a second signal → stop at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_stop_signals(stop: asyncio.Event, on_second: Callable[[], object]) -> None:
    """First SIGINT/SIGTERM sets ``stop``; a second one calls ``on_second``."""
    loop = asyncio.get_running_loop()

    def handler() -> None:
        if stop.is_set():
            on_second()
        stop.set()

    for sig in STOP_SIGNALS:
        # Not on the main thread (tests) or not on Unix: the default handlers stay.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, handler)


def exit_on_stop_signals(code: int = 0) -> None:
    """From here on, SIGINT/SIGTERM end the process at once with ``code``.

    For the last steps of a command whose work is done (everything written or spooled):
    the event loop's handlers go, and closing the loop would bring back the defaults, under
    which a late second signal kills the process by SIGTERM or raises KeyboardInterrupt with
    a traceback while the interpreter shuts down.
    """

    def leave(signum: int, frame: FrameType | None) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a write in progress on it: leave it
                stream.flush()
        os._exit(code)

    # Held back while the handlers change hands: taking the loop's away restores the default
    # for a moment.  One that arrived meanwhile is delivered to `leave` below.
    blocked = _block(STOP_SIGNALS)
    try:
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to take back
            loop = asyncio.get_running_loop()
            for sig in STOP_SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
        for sig in STOP_SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(sig, leave)
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _block(signals: tuple[signal.Signals, ...]) -> bool:
    if not hasattr(signal, "pthread_sigmask"):
        return False
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    return True
