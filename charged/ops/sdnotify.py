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
from collections.abc import Mapping
from typing import Any

import structlog


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
    """The daemon's side of the contract: READY=1 once the first tick is stored, WATCHDOG=1
    with every stored tick after it (so a stuck collector stops feeding the watchdog even
    though the process is alive), STOPPING=1 at shutdown."""

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
