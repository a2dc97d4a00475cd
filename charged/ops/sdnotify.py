"""systemd's notify protocol (``sd_notify``), a no-op when not started by systemd.

systemd names a unix datagram socket in ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the
abstract namespace); each datagram is newline-separated ``KEY=value`` assignments such as
``READY=1``.  ``$WATCHDOG_USEC`` (with ``$WATCHDOG_PID`` naming the process meant) asks for
``WATCHDOG=1`` more often than that.  Sending never raises: a service must not die because
its supervisor's socket went away.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from charged.clock import Clock


class SystemdNotifier:
    def __init__(self, env: Mapping[str, str] | None = None, *, logger: Any = None) -> None:
        self._env = os.environ if env is None else env
        self._log = logger or structlog.get_logger("charged.sdnotify")
        self._address = self._parse_address(self._env.get("NOTIFY_SOCKET", ""))
        self._sock: socket.socket | None = None
        self._failing = False  # log a failed send once per transition, not per ping

    def _parse_address(self, raw: str) -> str | None:
        if not raw:
            return None
        if raw.startswith("@"):
            return "\0" + raw[1:]  # Linux abstract namespace
        if raw.startswith("/"):
            return raw
        # e.g. vsock: addresses (VMs); we only speak unix sockets
        self._log.warning(
            "NOTIFY_SOCKET is not a unix socket path; systemd notifications are off",
            notify_socket=raw,
        )
        return None

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self._address is not None

    def notify(self, *states: str) -> bool:
        """Send ``states`` (e.g. ``"READY=1"``) in one datagram; False if not delivered."""
        if self._address is None or not states:
            return False
        message = "\n".join(states).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, self._address)
        except OSError as exc:
            if not self._failing:
                self._log.warning("cannot notify systemd", error=exc.strerror or str(exc))
                self._failing = True
            self.close()
            return False
        if self._failing:
            self._log.info("systemd notifications delivered again")
            self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        states = ["READY=1"]
        if status is not None:
            states.append(_status_line(status))
        return self.notify(*states)

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(_status_line(text))

    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings (half the timeout), or None if not asked."""
        raw = self._env.get("WATCHDOG_USEC", "")
        try:
            usec = int(raw)
        except ValueError:
            return None
        if usec <= 0:
            return None
        pid = self._env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process systemd watches; a child that inherited the
        # environment must not ping in its parent's place
        if pid and pid != str(os.getpid()):
            return None
        return usec / 2 / 1_000_000

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status_line(text: str) -> str:
    # a newline would start another assignment (e.g. a forged READY=1)
    return "STATUS=" + " ".join(text.split())


class TickNotifier:
    """The daemon's side of the contract: READY=1 once the first tick is safe (its rows
    committed or spooled), WATCHDOG=1 with every safe tick after it, STOPPING=1 at shutdown.

    A tick counts however many chargers answered: a tick of gaps during a vendor outage is
    the collector doing its job (it records the gaps), so it feeds the watchdog; a collector
    whose ticks stop completing, or whose writer stops taking rows, stops feeding it.  When
    ticks come further apart than systemd's watchdog allows, :meth:`keep_alive` pings in
    between, for as long as the caller's ``alive()`` says the tick loop and writer still work.
    """

    def __init__(self, notifier: SystemdNotifier) -> None:
        self._notifier = notifier
        self._ready = False

    @property
    def ready_sent(self) -> bool:
        return self._ready

    def tick_stored(self, status: str | None = None) -> None:
        if not self._ready:
            self._notifier.ready(status)
            self._ready = True
            return
        states = ["WATCHDOG=1"]
        if status is not None:
            states.append(_status_line(status))
        self._notifier.notify(*states)

    def stopping(self) -> None:
        self._notifier.stopping()

    def watchdog_timeout(self) -> float | None:
        """systemd's WatchdogSec for this process in seconds, or None if it asks for none."""
        half = self._notifier.watchdog_interval()
        return None if half is None else 2 * half

    def timer_period(self, longest_tick_gap: float) -> float | None:
        """How often :meth:`keep_alive` must ping between ticks: half the watchdog timeout,
        or None when no watchdog is asked for or when the ticks alone are often enough (the
        timeout is longer than ``longest_tick_gap``, the longest a healthy collector can go
        between two safe ticks)."""
        timeout = self.watchdog_timeout()
        if timeout is None or timeout > longest_tick_gap:
            return None
        return timeout / 2

    async def keep_alive(self, clock: Clock, period: float, alive: Callable[[], bool]) -> None:
        """Every ``period`` seconds, WATCHDOG=1 if READY=1 was sent and ``alive()``; forever
        (cancel it).  Before READY=1 systemd does not watch yet."""
        while True:
            await clock.sleep(period)
            if self._ready and alive():
                self._notifier.watchdog()
