"""Sending the balancer's limits: through the audited, read-back control path, actor balancer.

Every write is a :meth:`~charged.control.operations.Controller.set_connector` call: the
settings are read, changed, written and read again, with ``control_action`` rows before and
after, so the audit table shows every limit the balancer set and whether it held.  Writes go
out in the plan's order (decreases first) one at a time, at most ``max_writes`` per tick; the
first write the vendor fails (5xx, timeout, rate limit) ends the tick's writes, since the next
ones would most likely fail too and only add load to a struggling API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from charged.balancer.model import Write
from charged.chargeamps.models import ConnectorSettings
from charged.control.results import ChangeResult, Outcome
from charged.control.validation import ConnectorChange

Unless = Callable[[ConnectorSettings], str | None]


class SetConnector(Protocol):
    async def set_connector(
        self,
        cp_id: str,
        connector_id: int,
        change: ConnectorChange,
        *,
        unless: Unless | None = None,
    ) -> ChangeResult: ...


class Sent(StrEnum):
    CONFIRMED = "confirmed"  # read back as sent (or already so)
    REFUSED = "refused"  # not carried out: offline, invalid, not ours
    UNKNOWN = "unknown"  # may or may not have been carried out: read it back next tick
    NOT_SENT = "not_sent"  # the tick's writes stopped before this one


@dataclass(frozen=True, slots=True)
class WriteResult:
    write: Write
    sent: Sent
    forbidden: bool = False  # the vendor answered 403: this connector is not ours to drive
    changed_outside: bool = False  # found set by someone else since last read: not sent
    error: str | None = None


class Actuator:
    def __init__(self, controller: SetConnector, *, max_writes: int) -> None:
        self._controller = controller
        self._max_writes = max_writes

    async def send(
        self,
        writes: Sequence[Write],
        unless: Callable[[Write], Unless | None] = lambda write: None,
    ) -> list[WriteResult]:
        """Send ``writes`` in order; ``unless(write)`` may give a check of the settings read
        just before each write that refuses it (someone changed the connector meanwhile)."""
        results: list[WriteResult] = []
        stopped = False
        for index, write in enumerate(writes):
            if stopped or index >= self._max_writes:
                results.append(WriteResult(write, Sent.NOT_SENT))
                continue
            # the vendor's maxCurrent is whole amperes (0 pauses); the plan never asks for less
            # than a whole ampere less than it meant, so round down, never up
            limit = int(write.limit)
            check = unless(write)
            result = await self._controller.set_connector(
                write.key[0], write.key[1], ConnectorChange(max_current=limit), unless=check
            )
            outcome = _sent(result)
            outside = check is not None and result.outcome is Outcome.REJECTED and result.conflict
            results.append(
                WriteResult(
                    write,
                    outcome,
                    forbidden=bool(result.error and "403" in result.error),
                    changed_outside=outside,
                    error=result.error,
                )
            )
            if outcome is Sent.UNKNOWN:
                stopped = True
        return results


def _sent(result: ChangeResult) -> Sent:
    if result.outcome in (Outcome.OK, Outcome.UNCHANGED):
        return Sent.CONFIRMED
    if result.outcome is Outcome.REJECTED or result.conflict:
        return Sent.REFUSED
    return Sent.UNKNOWN
