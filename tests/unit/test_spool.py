"""The disk spool: order, durability across a killed process, corruption, the size bound."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from charged.clock import FakeClock
from charged.metrics import Metrics
from charged.storage.spool import RecordId, Spool, SpoolError
from charged.storage.spool_records import HEADER_SIZE


class RecordingLogger:
    """Stands in for a structlog logger and remembers every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def _record(self, level: str, event: str, **kw: Any) -> None:
        self.calls.append((level, event, kw))

    def debug(self, event: str, **kw: Any) -> None:
        self._record("debug", event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._record("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._record("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._record("error", event, **kw)

    def events(self, level: str) -> list[str]:
        return [event for lvl, event, _ in self.calls if lvl == level]


def batch_of(n: int, tick: int = 0) -> dict[str, list[dict[str, Any]]]:
    when = datetime(2026, 1, 1) + timedelta(seconds=30 * tick)
    return {
        "measurement": [
            {
                "charge_point_id": f"CP{i}",
                "connector_id": 1,
                "phase": "L1",
                "current": 6.5 + i,
                "voltage": 230.0,
                "comment": None,
                "date_created": when,
            }
            for i in range(n)
        ],
        "connector_status": [{"charge_point_id": "CP0", "status": "Charging", "tick": tick}],
    }


def drain(spool: Spool) -> list[dict[str, list[dict[str, Any]]]]:
    out = []
    while (item := spool.peek()) is not None:
        rid, batch = item
        out.append(batch)
        spool.ack(rid)
    return out


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.spool"))


def make(directory: Path, **kw: Any) -> tuple[Spool, Metrics, RecordingLogger]:
    metrics = Metrics()
    log = RecordingLogger()
    spool = Spool(directory, metrics=metrics, logger=log, **kw)
    spool.open()
    return spool, metrics, log


def test_round_trip_keeps_types_and_order(tmp_path: Path) -> None:
    spool, _, _ = make(tmp_path / "spool")
    batch = {
        "measurement": [
            {"a": 1, "b": 2.5, "c": "zürich ⚡", "d": None, "e": True, "f": False},
            # rows of one table need not share keys; both shapes and the order survive
            {"a": 2, "when": datetime(2026, 3, 4, 5, 6, 7, 891011)},
            {"a": 3, "b": 0.1 + 0.2, "c": ""},
        ],
        "other": [
            {
                "naive": datetime(2026, 1, 1, 12, 0),
                "aware": datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
                "offset": datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
                "day": date(2026, 2, 3),
                "big": 2**62,
                "neg": -7,
            }
        ],
        "empty": [],
    }
    assert spool.append(batch)
    item = spool.peek()
    assert item is not None
    _, got = item
    assert got == batch
    row = got["other"][0]
    assert type(row["naive"]) is datetime and row["naive"].tzinfo is None
    assert row["aware"].tzinfo is not None
    assert type(row["day"]) is date
    assert got["measurement"][0]["e"] is True and got["measurement"][0]["d"] is None
    assert list(got) == ["measurement", "other", "empty"]


def test_uncompressed_round_trip(tmp_path: Path) -> None:
    spool, _, _ = make(tmp_path, compress=False)
    spool.append(batch_of(3))
    assert drain(spool) == [batch_of(3)]


def test_fifo_and_counts(tmp_path: Path) -> None:
    spool, metrics, _ = make(tmp_path)
    assert not spool.pending() and spool.peek() is None
    for tick in range(5):
        assert spool.append(batch_of(2, tick))
    assert spool.records == 5 and spool.pending()
    assert (
        metrics.registry.get_sample_value("charged_rows_spooled_total", {"table": "measurement"})
        == 10
    )
    assert metrics.registry.get_sample_value("charged_spool_bytes") == spool.size_bytes > 0
    # peek without ack is stable: the writer may fail and try the same record again
    first = spool.peek()
    assert first is not None and spool.peek() == first
    assert [b["connector_status"][0]["tick"] for b in drain(spool)] == [0, 1, 2, 3, 4]
    assert spool.records == 0 and spool.size_bytes == 0 and not spool.pending()
    assert metrics.registry.get_sample_value("charged_spool_bytes") == 0


def test_ack_must_be_the_peeked_record(tmp_path: Path) -> None:
    spool, _, _ = make(tmp_path)
    spool.append(batch_of(1, 0))
    spool.append(batch_of(1, 1))
    item = spool.peek()
    assert item is not None
    rid = item[0]
    with pytest.raises(ValueError, match="out of order"):
        spool.ack(RecordId(rid.segment, rid.offset + rid.length, rid.length))
    spool.ack(rid)
    with pytest.raises(ValueError, match="out of order"):
        spool.ack(rid)  # twice is a bug in the caller, not a silent no-op


def test_killed_process_spool_is_replayed_in_order(tmp_path: Path) -> None:
    first, _, _ = make(tmp_path)
    for tick in range(3):
        first.append(batch_of(2, tick))
    # no close(): the process "dies"; a new instance takes over the directory
    second, _, log = make(tmp_path)
    assert second.records == 3
    assert "spool holds batches from an earlier run; they will be replayed first" in log.events(
        "info"
    )
    second.append(batch_of(2, 3))  # newer rows go after the old ones
    assert [b["connector_status"][0]["tick"] for b in drain(second)] == [0, 1, 2, 3]


def test_acked_records_are_not_replayed_after_restart(tmp_path: Path) -> None:
    first, _, _ = make(tmp_path)
    for tick in range(4):
        first.append(batch_of(1, tick))
    for _ in range(2):
        item = first.peek()
        assert item is not None
        first.ack(item[0])
    # killed without close or flush
    second, _, _ = make(tmp_path)
    assert second.records == 2
    assert [b["connector_status"][0]["tick"] for b in drain(second)] == [2, 3]
    second.close()
    third, _, _ = make(tmp_path)
    assert third.peek() is None and not third.pending()


def test_segment_files_roll_and_are_deleted_once_acked(tmp_path: Path) -> None:
    spool, _, _ = make(tmp_path, segment_bytes=1)  # every record gets its own segment
    for tick in range(3):
        spool.append(batch_of(5, tick))
    files = segments(tmp_path)
    assert len(files) == 3
    item = spool.peek()
    assert item is not None
    spool.ack(item[0])
    assert segments(tmp_path) == files[1:]
    drain(spool)
    assert segments(tmp_path) == []
    # numbering goes on, so a restart can never mistake new segments for acked ones
    spool.append(batch_of(1, 9))
    assert segments(tmp_path)[0].name > files[-1].name
    spool.close()
    again, _, _ = make(tmp_path)
    assert [b["connector_status"][0]["tick"] for b in drain(again)] == [9]


def test_torn_tail_is_cut_and_the_rest_replayed(tmp_path: Path) -> None:
    spool, _, _ = make(tmp_path)
    for tick in range(3):
        spool.append(batch_of(50, tick))
    spool.close()
    (seg,) = segments(tmp_path)
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.truncate(size - 10)  # the last record was being written when the process died
    again, _, log = make(tmp_path)
    assert "spool segment ends in an incomplete record; cutting it off" in log.events("warning")
    assert again.records == 2
    again.append(batch_of(1, 7))
    assert [b["connector_status"][0]["tick"] for b in drain(again)] == [0, 1, 7]


def test_torn_header_is_cut(tmp_path: Path) -> None:
    spool, _, _ = make(tmp_path)
    spool.append(batch_of(2, 0))
    spool.close()
    (seg,) = segments(tmp_path)
    with open(seg, "ab") as f:
        f.write(b"CHS")  # died three bytes into the next header
    again, _, log = make(tmp_path)
    assert log.events("warning")
    assert [b["connector_status"][0]["tick"] for b in drain(again)] == [0]


@pytest.mark.parametrize("where", ["payload", "length field", "magic"])
def test_flipped_byte_skips_only_that_record(tmp_path: Path, where: str) -> None:
    spool, _, _ = make(tmp_path)
    for tick in range(3):
        spool.append(batch_of(20, tick))
    spool.close()
    (seg,) = segments(tmp_path)
    data = bytearray(seg.read_bytes())
    # find where record 1 starts by walking the headers (length at bytes 5..9)
    second = HEADER_SIZE + int.from_bytes(data[5:9], "little")
    pos = {
        "payload": second + HEADER_SIZE + 7,
        "length field": second + 7,
        "magic": second + 1,
    }[where]
    data[pos] ^= 0x40
    seg.write_bytes(bytes(data))
    again, _, log = make(tmp_path)
    got = drain(again)
    assert [b["connector_status"][0]["tick"] for b in got] == [0, 2]
    assert log.events("warning") == ["corrupt spool data skipped"]
    assert got[1] == batch_of(20, 2)
    # skipping is remembered: after a restart nothing is read or reported twice
    again.close()
    third, _, log3 = make(tmp_path)
    assert third.peek() is None and log3.events("warning") == []


def test_full_spool_keeps_old_data_and_counts_drops(tmp_path: Path) -> None:
    probe, _, _ = make(tmp_path / "probe")
    probe.append(batch_of(10, 0))
    one = probe.size_bytes
    spool, metrics, log = make(tmp_path / "s", max_bytes=one * 3 + one // 2)
    assert all(spool.append(batch_of(10, t)) for t in range(3))
    assert not spool.full
    assert spool.append(batch_of(10, 3)) is False
    assert spool.append(batch_of(10, 4)) is False
    assert spool.full
    assert (
        metrics.registry.get_sample_value("charged_rows_dropped_total", {"table": "measurement"})
        == 20
    )
    assert (
        metrics.registry.get_sample_value(
            "charged_rows_dropped_total", {"table": "connector_status"}
        )
        == 2
    )
    assert len(log.events("warning")) == 1  # one warning per transition, not per tick
    # the oldest data was kept
    item = spool.peek()
    assert item is not None and item[1] == batch_of(10, 0)
    spool.ack(item[0])
    assert not spool.full
    # a warning too: the operator sees where the loss ended
    assert log.events("warning")[-1] == "spool has room again; spooling resumed"
    assert spool.append(batch_of(10, 5))
    assert spool.append(batch_of(10, 6)) is False
    assert len(log.events("warning")) == 3  # full again: a third transition
    assert [b["connector_status"][0]["tick"] for b in drain(spool)] == [1, 2, 5]


def test_a_batch_larger_than_the_limit_is_dropped_not_raised(tmp_path: Path) -> None:
    spool, metrics, log = make(tmp_path, max_bytes=64)
    assert spool.append(batch_of(100)) is False
    assert (
        metrics.registry.get_sample_value("charged_rows_dropped_total", {"table": "measurement"})
        == 100
    )
    assert not spool.pending()
    # an empty spool is not "full" (that would fail /readyz in the next outage for nothing)
    assert not spool.full
    assert log.events("warning") == [
        "a batch larger than the spool's size limit was dropped; raise spool.max_bytes"
    ]


def test_disk_error_drops_the_batch_and_leaves_no_half_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, metrics, log = make(tmp_path)
    assert spool.append(batch_of(3, 0))
    real_write = os.write

    def half_then_fail(fd: int, data: Any) -> int:
        real_write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_fail)
    assert spool.append(batch_of(3, 1)) is False
    monkeypatch.setattr(os, "write", real_write)
    assert spool.full and log.events("warning")
    assert (
        metrics.registry.get_sample_value("charged_rows_dropped_total", {"table": "measurement"})
        == 3
    )
    assert spool.append(batch_of(3, 2))
    assert [b["connector_status"][0]["tick"] for b in drain(spool)] == [0, 2]
    # full, then room again: no corruption reported
    assert log.events("warning") == [
        "spool full: keeping the oldest data, dropping new rows until it drains",
        "spool has room again; spooling resumed",
    ]


def test_failing_segment_creation_drops_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, _, _ = make(tmp_path, segment_bytes=1)  # every append opens a segment
    assert spool.append(batch_of(1, 0))
    real_open = os.open

    def no_more_files(path: Any, *args: Any, **kw: Any) -> int:
        if str(path).endswith(".spool"):
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, *args, **kw)

    monkeypatch.setattr(os, "open", no_more_files)
    assert spool.append(batch_of(1, 1)) is False
    monkeypatch.setattr(os, "open", real_open)
    assert spool.append(batch_of(1, 2))
    assert [b["connector_status"][0]["tick"] for b in drain(spool)] == [0, 2]


def test_failing_ack_file_is_a_warning_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, _, log = make(tmp_path)
    for tick in range(3):
        spool.append(batch_of(1, tick))
    real_replace = os.replace

    def disk_full(*args: Any, **kw: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    for _ in range(2):
        item = spool.peek()
        assert item is not None
        spool.ack(item[0])
    assert log.events("warning") == [
        "cannot record spool progress; a restart may replay stored rows"
    ]
    monkeypatch.setattr(os, "replace", real_replace)
    # killed now: the unrecorded acks mean a harmless replay, never a lost record
    again, _, _ = make(tmp_path)
    assert [b["connector_status"][0]["tick"] for b in drain(again)] == [0, 1, 2]


def test_unreadable_ack_file_replays_everything(tmp_path: Path) -> None:
    spool, _, _ = make(tmp_path)
    for tick in range(2):
        spool.append(batch_of(1, tick))
    item = spool.peek()
    assert item is not None
    spool.ack(item[0])
    spool.close()
    (tmp_path / "ack.json").write_text("{not json")
    again, _, log = make(tmp_path)
    assert "spool ack file unreadable; replaying the whole spool" in log.events("warning")
    assert [b["connector_status"][0]["tick"] for b in drain(again)] == [0, 1]


def test_directory_is_private_and_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "spool"
    spool, _, _ = make(target)
    spool.append(batch_of(1))
    assert target.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o077 == 0 for p in segments(target))


def test_misuse_gives_clear_errors(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(RuntimeError, match=r"open\(\) must be called"):
        spool.append(batch_of(1))
    spool.open()
    with pytest.raises(TypeError, match="cannot spool a value of type complex"):
        spool.append({"t": [{"x": 1j}]})
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        Spool(tmp_path, max_bytes=0)


def test_unreadable_spool_is_one_clear_error(tmp_path: Path) -> None:
    # a directory where a segment should be: unreadable as a file even for root
    (tmp_path / "000000000001.spool").mkdir()
    (tmp_path / "000000000001.spool" / "x").write_bytes(b"x")
    with pytest.raises(SpoolError, match=r"cannot read the spool in .*fix the permissions"):
        Spool(tmp_path, metrics=Metrics()).open()


def test_second_process_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    spool, _, _ = make(tmp_path)
    code = (
        "import sys; from pathlib import Path\n"
        "from charged.storage.spool import Spool, SpoolError\n"
        "try:\n    Spool(Path(sys.argv[1])).open()\nexcept SpoolError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 3, proc.stderr
    assert "in use by another process" in proc.stdout
    spool.close()
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


async def test_run_fsync_syncs_when_dirty_and_on_cancel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(auto_advance=False)
    spool = Spool(tmp_path, fsync_interval=1.0, clock=clock, metrics=Metrics())
    spool.open()
    synced: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    task = asyncio.create_task(spool.run_fsync())
    await clock.advance(1.0)
    assert synced == []  # nothing appended: nothing to sync
    spool.append(batch_of(1))
    synced.clear()
    await clock.advance(1.0)
    assert synced  # the segment (and directory) were synced
    synced.clear()
    await clock.advance(5.0)
    assert synced == []
    spool.append(batch_of(1, 1))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert synced  # shutdown made the last append durable before letting go
    spool.close()


def test_a_tick_of_ten_thousand_chargers_is_spooled_compact_and_whole(tmp_path: Path) -> None:
    """(How long the append takes is measured in bench/spool_append.py, not here.)"""
    when = datetime(2026, 1, 1)
    tick = {
        "measurement": [
            {
                "phase": f"L{p}",
                "current": 6.0 + i % 10,
                "voltage": 229.5,
                "connector_id": c,
                "charge_point_id": f"CP{i:06d}",
                "comment": None,
                "session_id": 100_000 + i,
                "date_created": when,
            }
            for i in range(10_000)
            for c in (1, 2)
            for p in (1, 2, 3)
        ],
        "connector_status": [
            {
                "charge_point_id": f"CP{i:06d}",
                "connector_id": c,
                "status": "Charging",
                "end_time": None,
                "date_created": when,
            }
            for i in range(10_000)
            for c in (1, 2)
        ],
    }
    spool, _, _ = make(tmp_path)
    assert spool.append(tick)
    assert spool.size_bytes < 2 * 1024**2  # compact: a few bytes a row, not a few hundred
    assert drain(spool) == [tick]
