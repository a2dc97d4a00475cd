"""sd_notify against a real unix datagram socket standing in for systemd."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from charged.clock import FakeClock
from charged.ops.sdnotify import SystemdNotifier, TickNotifier


class RecordingLogger:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.calls.append(("info", event))

    def warning(self, event: str, **kw: Any) -> None:
        self.calls.append(("warning", event))


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield sock, str(path)
    sock.close()


def test_states_arrive_as_datagrams(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready()
    assert sock.recv(4096) == b"READY=1"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.status("3 chargers, last tick ok")
    assert sock.recv(4096) == b"STATUS=3 chargers, last tick ok"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    assert notifier.notify("RELOADING=1", "MONOTONIC_USEC=5")
    assert sock.recv(4096) == b"RELOADING=1\nMONOTONIC_USEC=5"
    notifier.close()


def test_ready_with_status_and_no_injected_lines(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    notifier.ready(status="first tick\nREADY=1 stored")
    assert sock.recv(4096) == b"READY=1\nSTATUS=first tick READY=1 stored"
    notifier.close()


def test_abstract_socket_name() -> None:
    name = f"charged-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"
        notifier.close()
    finally:
        sock.close()


def test_no_op_without_systemd() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.stopping() is False
    assert notifier.watchdog_interval() is None


def test_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = SystemdNotifier()
    assert not notifier.enabled
    assert notifier.watchdog_interval() == 2.0


def test_unsupported_address_is_reported_once_and_ignored() -> None:
    log = RecordingLogger()
    notifier = SystemdNotifier({"NOTIFY_SOCKET": "vsock:2:1234"}, logger=log)
    assert not notifier.enabled and notifier.ready() is False
    assert [lvl for lvl, _ in log.calls] == ["warning"]


def test_vanished_socket_never_raises_and_logs_transitions(tmp_path: Path) -> None:
    path = tmp_path / "gone"
    log = RecordingLogger()
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)}, logger=log)
    assert notifier.watchdog() is False
    assert notifier.watchdog() is False
    assert log.calls == [("warning", "cannot notify systemd")]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    try:
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert log.calls[-1] == ("info", "systemd notifications delivered again")
    finally:
        sock.close()
        notifier.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "2000000"}, 1.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another pid
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert SystemdNotifier(env).watchdog_interval() == expected


def test_tick_notifier_ready_once_then_watchdog(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    ticks = TickNotifier(notifier)
    assert not ticks.ready_sent
    ticks.tick_stored("30 chargers")
    assert ticks.ready_sent
    assert sock.recv(4096) == b"READY=1\nSTATUS=30 chargers"
    ticks.tick_stored()
    assert sock.recv(4096) == b"WATCHDOG=1"
    ticks.tick_stored("29 chargers, 1 failed")
    assert sock.recv(4096) == b"WATCHDOG=1\nSTATUS=29 chargers, 1 failed"
    ticks.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.close()


class Passing(SystemdNotifier):
    """The real notifier, recording what it was asked to send and whether it was sent."""

    def __init__(self, env: dict[str, str], logger: RecordingLogger) -> None:
        super().__init__(env, logger=logger)
        self.asked: list[tuple[str, ...]] = []
        self.delivered: list[bool] = []

    def notify(self, *states: str) -> bool:
        self.asked.append(states)
        self.delivered.append(super().notify(*states))
        return self.delivered[-1]


def test_tick_notifier_without_systemd_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[object] = []
    # silent means no socket at all, not a datagram nobody reads
    monkeypatch.setattr("charged.ops.sdnotify.socket.socket", lambda *a, **kw: opened.append(a))
    log = RecordingLogger()
    notifier = Passing({}, log)
    ticks = TickNotifier(notifier)
    ticks.tick_stored()
    ticks.tick_stored("2 chargers")
    ticks.stopping()
    assert ticks.ready_sent  # the daemon's side of the contract goes on as under systemd
    assert notifier.asked == [("READY=1",), ("WATCHDOG=1", "STATUS=2 chargers"), ("STOPPING=1",)]
    assert notifier.delivered == [False, False, False]
    assert opened == [] and log.calls == []


class Recording(SystemdNotifier):
    def __init__(self, env: dict[str, str], clock: FakeClock) -> None:
        super().__init__(env)
        self.clock = clock
        self.sent: list[tuple[float, tuple[str, ...]]] = []

    def notify(self, *states: str) -> bool:
        self.sent.append((self.clock.monotonic(), states))
        return True


@pytest.mark.parametrize(
    ("usec", "gap", "period"),
    [
        (None, 72.0, None),  # no watchdog asked for
        ("120000000", 72.0, None),  # WatchdogSec=120 outlasts the ticks: no timer needed
        ("60000000", 72.0, 30.0),  # 60 s could fall between two ticks: ping every 30 s
        ("2000000", 2.9, 1.0),
    ],
)
def test_timer_period_only_when_ticks_alone_are_too_rare(
    usec: str | None, gap: float, period: float | None
) -> None:
    env = {} if usec is None else {"WATCHDOG_USEC": usec}
    ticks = TickNotifier(SystemdNotifier(env))
    assert ticks.timer_period(gap) == period
    assert ticks.watchdog_timeout() == (None if usec is None else int(usec) / 1e6)


async def test_keep_alive_pings_after_ready_while_alive() -> None:
    clock = FakeClock(auto_advance=False)
    notifier = Recording({"WATCHDOG_USEC": "20000000"}, clock)
    ticks = TickNotifier(notifier)
    alive = True
    start = clock.monotonic()
    task = asyncio.create_task(ticks.keep_alive(clock, 10.0, lambda: alive))
    try:
        await clock.advance(30)
        assert notifier.sent == []  # not READY yet: systemd does not watch
        ticks.tick_stored("first tick")
        await clock.advance(30)
        assert [at - start for at, _ in notifier.sent] == [30, 40, 50, 60]
        assert [s for _, s in notifier.sent[1:]] == [("WATCHDOG=1",)] * 3
        alive = False  # e.g. the last safe tick is too old: let systemd act
        await clock.advance(60)
        assert len(notifier.sent) == 4
        alive = True
        await clock.advance(10)
        assert len(notifier.sent) == 5
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
