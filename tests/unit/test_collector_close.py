"""Daemon.close() and run() pass a cancellation of their caller on, after cleaning up."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from charged.config import settings_from_mapping
from charged.daemon.service import Daemon
from charged.ops.sdnotify import SystemdNotifier


class RecordingNotifier(SystemdNotifier):
    def __init__(self) -> None:
        super().__init__({})
        self.sent: list[tuple[str, ...]] = []
        self.closed = False

    def notify(self, *states: str) -> bool:
        self.sent.append(states)
        return True

    def close(self) -> None:
        self.closed = True


def collector(tmp_path: Path, notifier: SystemdNotifier) -> Daemon:
    settings = settings_from_mapping(
        {
            "api": {"email": "a@b.invalid", "password": "p", "api_key": "k"},
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"},
            "spool": {"directory": str(tmp_path / "spool")},
            "ops": {"enabled": False},
        },
        source="test",
    )
    return Daemon(settings, notifier=notifier)


async def test_cancelling_close_propagates_and_still_releases_everything(
    tmp_path: Path,
) -> None:
    notifier = RecordingNotifier()
    c = collector(tmp_path, notifier)
    tracker_cancelled, release = asyncio.Event(), asyncio.Event()

    async def slow_tracker() -> None:
        # a pass that, once cancelled, takes a while to end and swallows the cancellation
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            tracker_cancelled.set()
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    c._tasks.append(asyncio.create_task(slow_tracker()))  # a daemon task
    closing = asyncio.create_task(c.close())
    await tracker_cancelled.wait()
    closing.cancel()  # e.g. the task running close() is cancelled at shutdown
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert closing.cancelled()
    # the steps after the one that was waiting ran all the same
    assert notifier.closed
    assert ("STOPPING=1",) in notifier.sent


async def test_close_uncancelled_returns(tmp_path: Path) -> None:
    notifier = RecordingNotifier()
    c = collector(tmp_path, notifier)
    c._tasks.append(asyncio.create_task(asyncio.Event().wait()))
    await c.close()
    assert notifier.closed and c._tasks == []
