"""The audit trail of control actions: one row per field a request tried to change.

Rows are written after the attempt with its outcome, also when it failed or was refused, so
the table answers "who changed what on which charger, and did it work".  Values are stored as
JSON text so that a ``null`` maxCurrent (no limit) and an unknown old value (SQL NULL) stay
apart.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

# Column widths of the control_action table; longer text is cut, never refused.
ACTOR_CHARS = 128
VALUE_CHARS = 255
ERROR_CHARS = 1000


@dataclass(frozen=True, slots=True)
class AuditRecord:
    created: datetime  # naive UTC, like every timestamp charged stores
    actor: str  # "cli:<user>" or "api"
    charge_point_id: str
    connector_id: int | None
    action: str  # connector_settings, chargepoint_settings, remote_start, remote_stop, reboot
    field: str | None  # API field name (maxCurrent, mode, …); None for commands
    old_value: str | None  # JSON text; None when it was never read
    new_value: str | None  # JSON text of what was asked
    result: str  # ok, unchanged, failed, rejected
    error: str | None

    def to_row(self) -> dict[str, object]:
        return {
            "created": self.created,
            "actor": _cut(self.actor, ACTOR_CHARS),
            "charge_point_id": self.charge_point_id,
            "connector_id": self.connector_id,
            "action": self.action,
            "field": self.field,
            "old_value": None if self.old_value is None else _cut(self.old_value, VALUE_CHARS),
            "new_value": None if self.new_value is None else _cut(self.new_value, VALUE_CHARS),
            "result": self.result,
            "error": None if self.error is None else _cut(self.error, ERROR_CHARS),
        }


def json_text(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AuditSink(Protocol):
    async def record(self, records: Sequence[AuditRecord]) -> None:
        """Store ``records`` durably; raise if they could not be stored."""


class SqlAuditSink:
    """Inserts audit rows into ``control_action`` in one transaction per request."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        from charged.storage.schema import control_action

        async with self._engine.begin() as conn:
            await conn.execute(control_action.insert(), [r.to_row() for r in records])


class MemoryAuditSink:
    """Keeps the rows in a list: for tests and for read-only commands that audit nothing."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    async def record(self, records: Sequence[AuditRecord]) -> None:
        self.records.extend(records)
