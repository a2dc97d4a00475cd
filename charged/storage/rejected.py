"""Rows the database refused for what they hold (a value too long, out of range, a broken
key), kept on disk instead of thrown away.

The writer isolates such rows from the rest of their batch (see :mod:`charged.storage.writer`)
and hands them here: one JSON line per row with when, which table and why, appended to
``rejected.jsonl`` next to the spool and fsynced.  Nothing in charged reads the file back; an
operator can inspect it, fix the cause and load the rows again.  The file is bounded: past
``max_bytes`` further rows are only counted as dropped.  Every row is counted in
``charged_rows_rejected_total{table}``; a new kind of refusal is logged once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import structlog

from charged.clock import Clock, SystemClock
from charged.metrics import Metrics

FILE_NAME = "rejected.jsonl"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# distinct refusal reasons remembered for "logged once" (a bound, not a tuning knob)
_REMEMBERED_REASONS = 64


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)  # e.g. a Decimal: the line stays readable rather than failing


class RejectedRows:
    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        logger: Any = None,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.path = Path(directory) / FILE_NAME
        self._max_bytes = max_bytes
        self._clock = clock or SystemClock()
        self._metrics = metrics or Metrics()
        self._log = logger or structlog.get_logger("charged.storage")
        self._reasons: set[str] = set()
        self._full_logged = False

    def add(self, table: str, rows: Sequence[Mapping[str, Any]], reason: str) -> None:
        """Keep ``rows`` of ``table``, refused by the database because of ``reason``."""
        if not rows:
            return
        self._metrics.rows_rejected.labels(table).inc(len(rows))
        key = f"{table}: {reason}"
        if key not in self._reasons:
            if len(self._reasons) < _REMEMBERED_REASONS:
                self._reasons.add(key)
            self._log.error(
                "the database refused rows; they are kept aside, the others were written",
                table=table,
                rows=len(rows),
                reason=reason,
                file=str(self.path),
            )
        when = self._clock.utcnow().isoformat()
        lines = b"".join(
            json.dumps(
                {"rejected_at": when, "table": table, "reason": reason, "row": dict(row)},
                default=_json_value,
                separators=(",", ":"),
            ).encode()
            + b"\n"
            for row in rows
        )
        if not self._write(lines):
            self._metrics.rows_dropped.labels(table).inc(len(rows))

    def _write(self, data: bytes) -> bool:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        except OSError:
            size = 0  # the open below reports what is wrong
        if size + len(data) > self._max_bytes:
            if not self._full_logged:
                self._full_logged = True
                self._log.error(
                    "the file of refused rows is at its size limit; further refused rows are "
                    "only counted (charged_rows_dropped_total)",
                    file=str(self.path),
                    max_bytes=self._max_bytes,
                )
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)  # rare and precious: no interval, it is on disk when we go on
            finally:
                os.close(fd)
        except OSError as exc:
            self._log.error(
                "cannot keep refused rows on disk; they are counted as dropped",
                file=str(self.path),
                error=exc.strerror or str(exc),
            )
            return False
        return True
