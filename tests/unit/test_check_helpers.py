"""The pieces of `charged check` that need no I/O: time limits, masking, exit code, summary."""

from __future__ import annotations

import asyncio
import io

import pytest

from charged.check import CheckResult, CheckTimeout, Status, exit_code, mask_urls, within
from charged.check_cli import print_text, summary
from charged.clock import FakeClock


async def test_within_returns_the_result_before_the_limit() -> None:
    clock = FakeClock(auto_advance=False)
    assert await within(clock, 5, asyncio.sleep(0, result="done")) == "done"


async def test_within_gives_up_when_the_clock_passes_the_limit() -> None:
    clock = FakeClock(auto_advance=False)
    never = asyncio.get_running_loop().create_future()
    pending = asyncio.create_task(within(clock, 5, never))
    await clock.advance(4.9)
    assert not pending.done()
    await clock.advance(0.1)
    with pytest.raises(CheckTimeout):
        await pending
    assert never.cancelled()  # the abandoned work is cancelled, not left running


async def test_within_does_not_swallow_its_own_cancellation() -> None:
    clock = FakeClock(auto_advance=False)
    never = asyncio.get_running_loop().create_future()
    pending = asyncio.create_task(within(clock, 5, never))
    await asyncio.sleep(0)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert never.cancelled()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mysql+asyncmy://u:pw@h:3306/d", "mysql+asyncmy://u:***@h:3306/d"),
        ("got 'postgresql://u:p@ss@h/d' here", "got 'postgresql://u:***@h/d' here"),
        ("mysql+asyncmy://u@h/d", "mysql+asyncmy://u@h/d"),
        ("sqlite+aiosqlite:////var/lib/charged.db", "sqlite+aiosqlite:////var/lib/charged.db"),
        ("https://eapi.charge.space/api/v5", "https://eapi.charge.space/api/v5"),
    ],
)
def test_mask_urls(text: str, masked: str) -> None:
    assert mask_urls(text) == masked


def results(*statuses: tuple[Status, int]) -> list[CheckResult]:
    return [CheckResult(f"c{i}", status, "m", code) for i, (status, code) in enumerate(statuses)]


def test_exit_code_is_the_first_failures() -> None:
    assert exit_code(results((Status.OK, 0), (Status.WARN, 0))) == 0
    assert exit_code(results((Status.OK, 0), (Status.FAIL, 69), (Status.FAIL, 77))) == 69
    assert exit_code(results((Status.FAIL, 78), (Status.SKIP, 0))) == 78


def test_text_report_lines_and_summary() -> None:
    report = [
        CheckResult("config", Status.OK, "/etc/charged/config.yaml"),
        CheckResult("token cache", Status.WARN, "/x: not writable"),
        CheckResult("api", Status.FAIL, "login refused", 77),
    ]
    out = io.StringIO()
    print_text(report, out)
    assert out.getvalue().splitlines() == [
        "ok   config       /etc/charged/config.yaml",
        "warn token cache  /x: not writable",
        "FAIL api          login refused",
        "not ready: 1 check failed, 1 warning (exit 77); fix them and run charged check again",
    ]
    assert summary(report[:2]) == "ready, with 1 warning: read them before enabling the service"
    assert summary(report[:1]) == "ready: every check passed"
