"""Row building: the session times' text, kept by value, is what strftime gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from charged.collector.rows import _iso


def test_a_session_time_is_written_in_utc_whatever_its_zone_and_however_often() -> None:
    utc = datetime(2026, 12, 4, 11, 2, 3, tzinfo=UTC)
    plus_two = datetime(2026, 12, 4, 13, 2, 3, tzinfo=timezone(timedelta(hours=2)))
    for _ in range(2):  # the second time from the kept text
        assert _iso(utc) == "2026-12-04T11:02:03Z"
        assert _iso(plus_two) == "2026-12-04T11:02:03Z"
        assert _iso(None) is None


def test_a_naive_time_is_read_as_astimezone_reads_it() -> None:
    naive = datetime(2026, 12, 4, 11, 2, 3)
    assert _iso(naive) == naive.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
