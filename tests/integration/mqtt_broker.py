"""A real MQTT broker for the tests: mosquitto on a free 127.0.0.1 port, anonymous, in memory.

Outside CI the tests that need it skip, saying why, when mosquitto is not installed; under
``CI=true`` they fail instead (``.ci/run`` installs it), so CI never passes by skipping.
Readiness is mosquitto's own "running" line on its log, read as it comes (no polling).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import IN_CI

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
)
ABSENT = (
    "mosquitto is not installed (apt-get install mosquitto): the site meters' MQTT tests "
    "need a real broker"
)


def need_mosquitto() -> str:
    if MOSQUITTO is None:
        if IN_CI:
            pytest.fail(ABSENT + "; under CI=true they must not skip")
        pytest.skip(ABSENT)
    return MOSQUITTO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """One broker process; :meth:`stop` and :meth:`start` again keep the port."""

    def __init__(self, directory: Path) -> None:
        self.binary = need_mosquitto()
        self.port = free_port()
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            "persistence false\nlog_dest stderr\nlog_type all\n"
        )
        self.log: list[str] = []
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        for line in process.stderr:  # blocks until mosquitto writes, or exits (EOF)
            self.log.append(line.rstrip())
            if " running" in line:
                break
        else:
            process.wait()
            raise RuntimeError(f"mosquitto did not start: {self.log[-3:]}")
        # keep reading its log, or a full pipe would stop the broker
        threading.Thread(target=self._drain, args=(process,), daemon=True).start()
        self._process = process

    def _drain(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.log.append(line.rstrip())

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
