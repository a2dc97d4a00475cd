"""One control attempt from start to audit row: run under its target's lock, its
``attempted`` rows written before anything is sent, whatever happens (a refusal, a vendor
error, a cancellation) turned into a :class:`ChangeResult`, logged and audited.

The operations themselves (what each attempt reads, sends and checks) are
:mod:`charged.control.operations`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from charged.chargeamps.errors import ApiError, ChargeAmpsError
from charged.clock import Clock
from charged.control.audit import ATTEMPTED, AuditRecord, AuditSink, json_text
from charged.control.client import ControlClient
from charged.control.readback import OFFLINE
from charged.control.results import ChangeResult, FieldChange, Outcome, UnknownTarget
from charged.control.validation import InvalidValue, JsonValue, Unset


@dataclass(frozen=True, slots=True)
class Done:
    """What an attempt found out."""

    changes: tuple[FieldChange, ...]
    outcome: Outcome
    error: str | None = None
    note: str | None = None
    conflict: bool = False


class NotAudited(Exception):
    """The ``attempted`` rows could not be written: the change must not be sent."""


class Run:
    """One attempt's audit state: the ``attempted`` rows, once written.

    ``records`` renders a result as its audit rows, ``audit`` is where they go."""

    def __init__(
        self,
        audit: AuditSink,
        records: Callable[[ChangeResult], list[AuditRecord]],
        cp_id: str,
        connector_id: int | None,
        action: str,
    ) -> None:
        self._audit = audit
        self._records = records
        self._cp_id = cp_id
        self._connector_id = connector_id
        self._action = action
        self.keys: tuple[int, ...] | None = None
        self.changes: tuple[FieldChange, ...] = ()

    async def sending(self, changes: tuple[FieldChange, ...]) -> None:
        """Call right before the vendor call that changes something: audit it first."""
        self.changes = changes
        provisional = ChangeResult(
            self._cp_id, self._connector_id, self._action, changes, Outcome.FAILED
        )
        records = [
            dataclasses.replace(r, result=ATTEMPTED, error=None) for r in self._records(provisional)
        ]
        try:
            self.keys = await self._audit.begin(records)
        except Exception as exc:
            raise NotAudited(type(exc).__name__) from exc


Attempt = Callable[[Run], Awaitable[Done]]


class AttemptRunner:
    """Runs attempts for one actor: serialised per target, audited, logged."""

    def __init__(
        self, client: ControlClient, audit: AuditSink, *, actor: str, clock: Clock, logger: Any
    ) -> None:
        self._client = client
        self._audit = audit
        self.actor = actor
        self._clock = clock
        self._log = logger
        self._target_locks: dict[tuple[str, int | None], asyncio.Lock] = {}

    async def change(
        self,
        cp_id: str,
        connector_id: int | None,
        action: str,
        wanted: dict[str, JsonValue],
        attempt: Attempt,
    ) -> ChangeResult:
        """Run ``attempt`` under the target's lock; whatever happens, audit it."""
        asked = tuple(FieldChange(name, value) for name, value in wanted.items())
        run = self.new_run(cp_id, connector_id, action)

        def result(outcome: Outcome, error: str | None, **kw: Any) -> ChangeResult:
            return ChangeResult(
                cp_id, connector_id, action, run.changes or asked, outcome, error, **kw
            )

        try:
            async with self._target_lock(cp_id, connector_id):
                done = await attempt(run)
            final = ChangeResult(
                cp_id,
                connector_id,
                action,
                done.changes,
                done.outcome,
                done.error,
                note=done.note,
                conflict=done.conflict,
            )
        except UnknownTarget as exc:
            final = result(Outcome.REJECTED, _reason(exc), unknown_target=True)
        except InvalidValue as exc:
            final = result(Outcome.REJECTED, _reason(exc))
        except NotAudited as exc:
            final = result(
                Outcome.FAILED,
                f"not sent: the audit row could not be written ({exc})",
                audit_error=f"audit row not written ({exc})",
            )
            self.log_result(final)
            return final
        except ChargeAmpsError as exc:
            # Refused (4xx), unreachable, or an answer we cannot read: the vendor's word.
            conflict = isinstance(exc, ApiError) and exc.status == 409
            final = result(Outcome.FAILED, await self._explain(cp_id, exc), conflict=conflict)
        except asyncio.CancelledError:
            # The request may or may not have reached the charger: say so, then stop.
            await self.finish(run, result(Outcome.FAILED, "cancelled before the end"))
            raise
        return await self.finish(run, final)

    async def finish(self, run: Run, result: ChangeResult) -> ChangeResult:
        """The outcome into the audit trail: the ``attempted`` rows updated, or new rows."""
        self.log_result(result)
        try:
            if run.keys is not None:
                await self._audit.finish(run.keys, result.outcome.value, result.error)
            else:
                await self._audit.record(self.records(result))
        except Exception as exc:  # the change happened (or not) either way: report, not raise
            self._log.error(
                "control audit not written", action=result.action, error=type(exc).__name__
            )
            problem = (
                f"audit row left as 'attempted' ({type(exc).__name__})"
                if run.keys is not None
                else f"audit row not written ({type(exc).__name__})"
            )
            return dataclasses.replace(result, audit_error=problem)
        return result

    def new_run(self, cp_id: str, connector_id: int | None, action: str) -> Run:
        return Run(self._audit, self.records, cp_id, connector_id, action)

    def records(self, result: ChangeResult) -> list[AuditRecord]:
        when = self._clock.utcnow().replace(tzinfo=None, microsecond=0)

        def row(field: str | None, old: str | None, new: str | None) -> AuditRecord:
            return AuditRecord(
                created=when,
                actor=self.actor,
                charge_point_id=result.charger,
                connector_id=result.connector,
                action=result.action,
                field=field,
                old_value=old,
                new_value=new,
                result=result.outcome.value,
                error=result.error,
            )

        if not result.changes:  # a refused request that named no field
            return [row(None, None, None)]
        return [
            row(
                change.field,
                None if isinstance(change.old, Unset) else json_text(change.old),
                json_text(change.new),
            )
            for change in result.changes
        ]

    def log_result(self, result: ChangeResult) -> None:
        # A refusal is the asker's mistake and already told to them: not a warning.
        quiet = (Outcome.OK, Outcome.UNCHANGED, Outcome.REJECTED)
        log = self._log.info if result.outcome in quiet else self._log.warning
        log(
            "control action",
            actor=self.actor,
            charge_point_id=result.charger,
            connector_id=result.connector,
            action=result.action,
            fields=[c.field for c in result.changes],
            result=result.outcome.value,
            error=result.error,
        )

    async def _explain(self, cp_id: str, exc: ChargeAmpsError) -> str:
        """The vendor's refusal, and why when the status can tell (a 409 from an offline
        charger)."""
        if isinstance(exc, ApiError) and exc.status == 409:
            with contextlib.suppress(ChargeAmpsError):
                if (await self._client.status(cp_id)).status == OFFLINE:
                    return (
                        f"charger {cp_id} is Offline (restarting or out of reach): the vendor "
                        "refused the change (HTTP 409); try again when it is Online"
                    )
        return str(exc)

    @contextlib.asynccontextmanager
    async def _target_lock(self, cp_id: str, connector_id: int | None) -> AsyncIterator[None]:
        lock = self._target_locks.setdefault((cp_id, connector_id), asyncio.Lock())
        async with lock:
            yield


def _reason(exc: BaseException) -> str:
    # LookupError's str() quotes its argument; a person should see the plain sentence.
    return str(exc.args[0]) if exc.args else type(exc).__name__
