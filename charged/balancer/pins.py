"""A person's limits: connectors the balancer must leave alone until they are released.

A connector is *pinned* when a person changed its ``maxCurrent`` or ``mode``: through the CLI
or the control API (their audit rows in ``control_action`` say so, with any actor but the
balancer's), or outside charged (the vendor's app: a setting that reads back other than what
the balancer left there).  ``charged balance release CP CONNECTOR`` (or the control API's
release route) writes a ``balancer_release`` row; from then on the balancer drives the
connector again.  Everything is in the audit table, so pins survive a restart and the table
says who pinned and who released.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from charged.balancer.model import ConnectorKey
from charged.control.audit import RELEASE_ACTION, AuditRecord, AuditSink, json_text

BALANCER_ACTOR = "balancer"
PINNING_FIELDS = ("maxCurrent", "mode")
# a change that was (or may have been) carried out pins; a refused or failed one does not
PINNING_RESULTS = ("ok", "unchanged", "unverified", "attempted")


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    actor: str
    charge_point_id: str
    connector_id: int | None
    action: str
    field: str | None
    new_value: str | None
    result: str


@dataclass(frozen=True, slots=True)
class Pin:
    key: ConnectorKey
    actor: str
    max_current: float | None  # what the person asked (None: no limit), if known
    mode: str | None
    since_row: int | None  # the audit row, None when found by a read-back


class AuditSource(Protocol):
    async def rows_after(self, last_id: int) -> Sequence[AuditRow]:
        """Connector-settings changes and releases with an id above ``last_id``, oldest first."""


class SqlAuditSource:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def rows_after(self, last_id: int) -> Sequence[AuditRow]:
        from charged.storage.schema import control_action as t

        query = (
            select(
                t.c.id,
                t.c.actor,
                t.c.charge_point_id,
                t.c.connector_id,
                t.c.action,
                t.c.field,
                t.c.new_value,
                t.c.result,
            )
            .where(t.c.id > last_id)
            .where(t.c.action.in_(("connector_settings", RELEASE_ACTION)))
            .order_by(t.c.id)
        )
        async with self._engine.connect() as conn:
            result = await conn.execute(query)
            return [AuditRow(*row) for row in result.all()]


class PinBook:
    """The pins in force, folded from the audit rows (and read-backs) in order."""

    def __init__(self) -> None:
        self._pins: dict[ConnectorKey, Pin] = {}
        self.last_id = 0

    def fold(self, rows: Sequence[AuditRow]) -> list[ConnectorKey]:
        """Apply new audit rows; returns the connectors whose pin changed."""
        changed: list[ConnectorKey] = []
        for row in rows:
            self.last_id = max(self.last_id, row.id)
            if row.connector_id is None:
                continue
            key = (row.charge_point_id, row.connector_id)
            if row.action == RELEASE_ACTION:
                if self._pins.pop(key, None) is not None:
                    changed.append(key)
                continue
            if row.actor == BALANCER_ACTOR or row.field not in PINNING_FIELDS:
                continue
            if row.result not in PINNING_RESULTS:
                continue  # rejected: nothing was sent
            old = self._pins.get(key)
            value = _json(row.new_value)
            max_current = old.max_current if old is not None else None
            mode = old.mode if old is not None else None
            if row.field == "maxCurrent":
                max_current = float(value) if isinstance(value, int | float) else None
            elif isinstance(value, str):
                mode = value
            self._pins[key] = Pin(key, row.actor, max_current, mode, row.id)
            changed.append(key)
        return changed

    def pin_outside(self, key: ConnectorKey) -> None:
        """A setting changed outside charged (read back other than left): a person did it."""
        if key not in self._pins:
            self._pins[key] = Pin(key, "outside charged", None, None, None)

    def get(self, key: ConnectorKey) -> Pin | None:
        return self._pins.get(key)

    def pinned(self) -> dict[ConnectorKey, Pin]:
        return dict(self._pins)


def _json(text: str | None) -> object:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


async def record_release(audit: AuditSink, key: ConnectorKey, actor: str, when: datetime) -> None:
    """Audit a release: the balancer drives the connector again from its next tick."""
    await audit.record(
        [
            AuditRecord(
                created=when,
                actor=actor,
                charge_point_id=key[0],
                connector_id=key[1],
                action=RELEASE_ACTION,
                field="release",
                old_value=None,
                new_value=json_text(None),
                result="ok",
                error=None,
            )
        ]
    )
