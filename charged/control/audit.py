"""The audit trail of control actions: one row per field a request tried to change.

Every attempt leaves rows, also when it failed or was refused, so the table answers "who
changed what on which charger, and did it work".  An attempt that sends something to the
vendor writes its rows *before* sending, with result ``attempted``, and updates them with the
outcome afterwards: a process killed between the vendor's answer and the update still leaves
the ``attempted`` rows ("it may have been carried out"), never nothing.  Attempts that send
nothing (refused values, unknown targets, already as asked) are written once, with their
outcome.  Values are stored as JSON text so that a ``null`` maxCurrent (no limit) and an
unknown old value (SQL NULL) stay apart.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

# Column widths of the control_action table; longer text is cut, never refused.
ACTOR_CHARS = 128
VALUE_CHARS = 255
ERROR_CHARS = 1000
FIELD_CHARS = 32
# result of the rows written before a change is sent, until its outcome replaces it
ATTEMPTED: Final = "attempted"
# a person's pin on a connector ended: the balancer drives it again (charged/balancer/pins.py)
RELEASE_ACTION: Final = "balancer_release"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    created: datetime  # naive UTC, like every timestamp charged stores
    actor: str  # "cli:<user>" or "control-api"
    charge_point_id: str
    connector_id: int | None
    action: str  # connector_settings, chargepoint_settings, remote_start, remote_stop, reboot
    field: str | None  # API field name (maxCurrent, mode, …) or the command; None: no field asked
    old_value: str | None  # JSON text; None when it was never read
    new_value: str | None  # JSON text of what was asked
    result: str  # attempted, ok, unchanged, unverified, failed, rejected
    error: str | None

    def to_row(self) -> dict[str, object]:
        return {
            "created": self.created,
            "actor": _cut(self.actor, ACTOR_CHARS),
            "charge_point_id": self.charge_point_id,
            "connector_id": self.connector_id,
            "action": self.action,
            "field": None if self.field is None else _cut(self.field, FIELD_CHARS),
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

    async def begin(self, records: Sequence[AuditRecord]) -> tuple[int, ...]:
        """Store ``records`` (result ``attempted``) durably before the change is sent;
        returns their keys for :meth:`finish`.  Raises if they could not be stored."""

    async def finish(self, keys: tuple[int, ...], result: str, error: str | None) -> None:
        """Set the outcome of rows stored by :meth:`begin`; raise if it could not be stored."""


class SqlAuditSink:
    """Audit rows in ``control_action``, one transaction per step of a request."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        from charged.storage.schema import control_action

        async with self._engine.begin() as conn:
            await conn.execute(control_action.insert(), [r.to_row() for r in records])

    async def begin(self, records: Sequence[AuditRecord]) -> tuple[int, ...]:
        from charged.storage.schema import control_action

        keys: list[int] = []
        async with self._engine.begin() as conn:
            # one INSERT per row (a request has a handful): each reports its own id on
            # MySQL and SQLite alike
            for record in records:
                row = replace(record, result=ATTEMPTED).to_row()
                result = await conn.execute(control_action.insert(), row)
                key = result.inserted_primary_key
                assert key is not None  # a single-row INSERT always reports its key
                keys.append(int(key[0]))
        return tuple(keys)

    async def finish(self, keys: tuple[int, ...], result: str, error: str | None) -> None:
        if not keys:
            return
        from charged.storage.schema import control_action

        async with self._engine.begin() as conn:
            await conn.execute(
                control_action.update()
                .where(control_action.c.id.in_(keys))
                .values(result=result, error=None if error is None else _cut(error, ERROR_CHARS))
            )


class MemoryAuditSink:
    """Keeps the rows in a list: for tests and for read-only commands that audit nothing."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    async def record(self, records: Sequence[AuditRecord]) -> None:
        self.records.extend(records)

    async def begin(self, records: Sequence[AuditRecord]) -> tuple[int, ...]:
        start = len(self.records)
        self.records.extend(replace(r, result=ATTEMPTED) for r in records)
        return tuple(range(start, len(self.records)))

    async def finish(self, keys: tuple[int, ...], result: str, error: str | None) -> None:
        for key in keys:
            self.records[key] = replace(self.records[key], result=result, error=error)
