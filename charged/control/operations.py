"""Reading and changing charger settings, with read-back verification and an audit row each.

Every settings write is read–modify–write of the whole object (the vendor resets omitted
fields) followed by a second read: a field that does not read back as asked makes the change
*failed*, even though the vendor answered 200.  Targets are checked against the account's own
chargers and connectors before anything is sent, so a typo never reaches somebody's car.

One :class:`Controller` may serve many concurrent requests: changes to the same connector (or
the same charge point's settings) are serialised so two read–modify–writes cannot undo each
other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import structlog

from charged.chargeamps.errors import ChargeAmpsError
from charged.chargeamps.models import (
    ChargePoint,
    ChargePointSettings,
    ChargePointStatus,
    ConnectorSettings,
)
from charged.clock import Clock
from charged.control.audit import AuditRecord, AuditSink, json_text
from charged.control.validation import (
    UNSET,
    ChargePointChange,
    ConnectorChange,
    InvalidValue,
    JsonValue,
    RemoteStart,
    Unset,
    check_installation_current,
)

# How long the list of owned chargers is trusted before it is read again.
FLEET_TTL = 60.0


class ControlClient(Protocol):
    """What the controller needs of :class:`~charged.chargeamps.client.ChargeAmpsClient`."""

    async def owned_chargepoints(self, *, deadline: float | None = None) -> list[ChargePoint]: ...

    async def status(self, cp_id: str, *, deadline: float | None = None) -> ChargePointStatus: ...

    async def chargepoint_settings(
        self, cp_id: str, *, deadline: float | None = None
    ) -> ChargePointSettings: ...

    async def set_chargepoint_settings(
        self, settings: ChargePointSettings, *, deadline: float | None = None
    ) -> None: ...

    async def connector_settings(
        self, cp_id: str, connector_id: int, *, deadline: float | None = None
    ) -> ConnectorSettings: ...

    async def set_connector_settings(
        self, settings: ConnectorSettings, *, deadline: float | None = None
    ) -> None: ...

    async def remote_start(
        self,
        cp_id: str,
        connector_id: int,
        *,
        rfid: str,
        rfid_format: str = "Hex",
        rfid_length: int | None = None,
        external_transaction_id: str | None = None,
        deadline: float | None = None,
    ) -> None: ...

    async def remote_stop(
        self, cp_id: str, connector_id: int, *, deadline: float | None = None
    ) -> None: ...

    async def reboot(self, cp_id: str, *, deadline: float | None = None) -> None: ...


class UnknownTarget(LookupError):
    """A charger the account does not own, or a connector the charger does not have."""


class Outcome(StrEnum):
    OK = "ok"  # written and read back as asked (or the command was accepted)
    UNCHANGED = "unchanged"  # already as asked: nothing was written
    FAILED = "failed"  # the vendor refused or failed, or the value did not stick
    REJECTED = "rejected"  # invalid value or unknown target: nothing was sent


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    new: JsonValue
    old: JsonValue | Unset = UNSET  # UNSET: never read (e.g. the target was refused)

    def to_json(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {"field": self.field}
        if not isinstance(self.old, Unset):
            out["old"] = self.old
        out["new"] = self.new
        return out


@dataclass(frozen=True, slots=True)
class ChangeResult:
    charger: str
    connector: int | None
    action: str
    changes: tuple[FieldChange, ...]
    outcome: Outcome
    error: str | None = None
    audit_error: str | None = None  # the audit row could not be written
    unknown_target: bool = False  # rejected because the charger or connector is not ours

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.OK, Outcome.UNCHANGED) and self.audit_error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "charger": self.charger,
            "connector": self.connector,
            "action": self.action,
            "changes": [change.to_json() for change in self.changes],
            "result": self.outcome.value,
            "ok": self.ok,
            "error": self.error,
            "auditError": self.audit_error,
        }


@dataclass(frozen=True, slots=True)
class ConnectorOverview:
    connector_id: int
    status: str
    current: float | None  # the highest phase current (A); None when not charging
    power_kw: float | None
    energy_kwh: float | None  # energy of the current session


@dataclass(frozen=True, slots=True)
class ChargerOverview:
    id: str
    name: str | None
    type: str | None
    status: str  # Online / Offline, or "unknown" when the status could not be read
    connectors: tuple[ConnectorOverview, ...]
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "error": self.error,
            "connectors": [dataclasses.asdict(c) for c in self.connectors],
        }


def connector_settings_json(settings: ConnectorSettings) -> dict[str, JsonValue]:
    return {
        **settings.to_json(),
        "maxCurrent": _amps(settings.max_current),
        "installationCurrent": settings.installation_current,
    }


def chargepoint_settings_json(settings: ChargePointSettings) -> dict[str, JsonValue]:
    return {
        **settings.to_json(),
        "maxCurrent": _amps(settings.max_current),
        "installationCurrent": settings.installation_current,
    }


def _amps(value: float | None) -> JsonValue:
    """Whole amperes as an int (the vendor may send 10.0): what a person typed reads back."""
    if value is not None and float(value).is_integer():
        return int(value)
    return value


class Controller:
    def __init__(
        self,
        client: ControlClient,
        audit: AuditSink,
        *,
        actor: str,
        clock: Clock,
        fleet_ttl: float = FLEET_TTL,
        logger: Any = None,
    ) -> None:
        self._client = client
        self._audit = audit
        self.actor = actor
        self._clock = clock
        self._fleet_ttl = fleet_ttl
        self._log = logger or structlog.get_logger("charged.control")
        self._fleet: dict[str, ChargePoint] = {}
        self._fleet_read_at: float | None = None
        self._fleet_lock = asyncio.Lock()
        self._target_locks: dict[tuple[str, int | None], asyncio.Lock] = {}

    # ------------------------------------------------------------ reading

    async def chargers(self) -> list[ChargePoint]:
        """The owned charge points, freshly listed."""
        return list((await self._owned(refresh=True)).values())

    async def overview(self) -> list[ChargerOverview]:
        """Every owned charger with its live status, read concurrently."""
        fleet = await self.chargers()
        return list(await asyncio.gather(*(self._overview(cp) for cp in fleet)))

    async def _overview(self, cp: ChargePoint) -> ChargerOverview:
        try:
            status = await self._client.status(cp.id)
        except ChargeAmpsError as exc:
            connectors = tuple(
                ConnectorOverview(c.connector_id, "unknown", None, None, None)
                for c in cp.connectors
            )
            return ChargerOverview(cp.id, cp.name, cp.type, "unknown", connectors, str(exc))
        connectors = tuple(
            ConnectorOverview(
                connector_id=c.connector_id,
                status=c.status,
                current=max((m.current for m in c.measurements), default=None),
                power_kw=c.charging_power_kw,
                energy_kwh=c.total_consumption_kwh,
            )
            for c in status.connector_statuses
        )
        return ChargerOverview(cp.id, cp.name, cp.type, status.status, connectors)

    async def connector_ids(self, cp_id: str) -> tuple[int, ...]:
        """The connectors of an owned charger; UnknownTarget if the account has no such one."""
        cp = await self._charger(cp_id)
        return tuple(c.connector_id for c in cp.connectors)

    async def charger_ids(self) -> tuple[str, ...]:
        return tuple((await self._owned(refresh=False)).keys())

    async def connector_settings(self, cp_id: str, connector_id: int) -> ConnectorSettings:
        await self._connector(cp_id, connector_id)
        return await self._client.connector_settings(cp_id, connector_id)

    async def chargepoint_settings(self, cp_id: str) -> ChargePointSettings:
        await self._charger(cp_id)
        return await self._client.chargepoint_settings(cp_id)

    # ------------------------------------------------------------ changing

    async def set_connector(
        self, cp_id: str, connector_id: int, change: ConnectorChange
    ) -> ChangeResult:
        wanted = change.wanted()

        async def attempt() -> tuple[tuple[FieldChange, ...], Outcome, str | None]:
            await self._connector(cp_id, connector_id)
            before = await self._client.connector_settings(cp_id, connector_id)
            if not isinstance(change.max_current, Unset):
                check_installation_current(
                    change.max_current,
                    before.installation_current,
                    f"{cp_id} connector {connector_id}",
                )
            old = connector_settings_json(before)
            changes = _field_changes(wanted, old)
            if all(old[name] == value for name, value in wanted.items()):
                return changes, Outcome.UNCHANGED, None
            updated = dataclasses.replace(
                before,
                mode=change.mode if change.mode is not None else before.mode,
                max_current=(
                    before.max_current
                    if isinstance(change.max_current, Unset)
                    else change.max_current
                ),
                rfid_lock=change.rfid_lock if change.rfid_lock is not None else before.rfid_lock,
                cable_lock=(
                    change.cable_lock if change.cable_lock is not None else before.cable_lock
                ),
            )
            await self._client.set_connector_settings(updated)
            after = await self._client.connector_settings(cp_id, connector_id)
            outcome, error = _verify(wanted, connector_settings_json(after))
            return changes, outcome, error

        return await self._change(cp_id, connector_id, "connector_settings", wanted, attempt)

    async def set_chargepoint(self, cp_id: str, change: ChargePointChange) -> ChangeResult:
        wanted = change.wanted()

        async def attempt() -> tuple[tuple[FieldChange, ...], Outcome, str | None]:
            await self._charger(cp_id)
            before = await self._client.chargepoint_settings(cp_id)
            if not isinstance(change.max_current, Unset):
                check_installation_current(change.max_current, before.installation_current, cp_id)
            old = chargepoint_settings_json(before)
            changes = _field_changes(wanted, old)
            if all(old[name] == value for name, value in wanted.items()):
                return changes, Outcome.UNCHANGED, None
            updated = dataclasses.replace(
                before,
                dimmer=change.dimmer if change.dimmer is not None else before.dimmer,
                down_light=(
                    change.down_light if change.down_light is not None else before.down_light
                ),
                max_current=(
                    before.max_current
                    if isinstance(change.max_current, Unset)
                    else change.max_current
                ),
            )
            await self._client.set_chargepoint_settings(updated)
            after = await self._client.chargepoint_settings(cp_id)
            outcome, error = _verify(wanted, chargepoint_settings_json(after))
            return changes, outcome, error

        return await self._change(cp_id, None, "chargepoint_settings", wanted, attempt)

    async def remote_start(self, cp_id: str, connector_id: int, start: RemoteStart) -> ChangeResult:
        async def attempt() -> tuple[tuple[FieldChange, ...], Outcome, str | None]:
            await self._connector(cp_id, connector_id)
            await self._client.remote_start(
                cp_id,
                connector_id,
                rfid=start.rfid,
                rfid_format=start.rfid_format,
                rfid_length=start.rfid_length,
            )
            return (FieldChange("remoteStart", start.describe()),), Outcome.OK, None

        wanted: dict[str, JsonValue] = {"remoteStart": start.describe()}
        return await self._change(cp_id, connector_id, "remote_start", wanted, attempt)

    async def remote_stop(self, cp_id: str, connector_id: int) -> ChangeResult:
        async def attempt() -> tuple[tuple[FieldChange, ...], Outcome, str | None]:
            await self._connector(cp_id, connector_id)
            await self._client.remote_stop(cp_id, connector_id)
            return (FieldChange("remoteStop", True),), Outcome.OK, None

        return await self._change(cp_id, connector_id, "remote_stop", {"remoteStop": True}, attempt)

    async def reboot(self, cp_id: str) -> ChangeResult:
        async def attempt() -> tuple[tuple[FieldChange, ...], Outcome, str | None]:
            await self._charger(cp_id)
            await self._client.reboot(cp_id)
            return (FieldChange("reboot", True),), Outcome.OK, None

        return await self._change(cp_id, None, "reboot", {"reboot": True}, attempt)

    # ------------------------------------------------------------ the common path

    async def _change(
        self,
        cp_id: str,
        connector_id: int | None,
        action: str,
        wanted: dict[str, JsonValue],
        attempt: Callable[[], Awaitable[tuple[tuple[FieldChange, ...], Outcome, str | None]]],
    ) -> ChangeResult:
        """Run ``attempt`` under the target's lock; whatever happens, audit it."""
        asked = tuple(FieldChange(name, value) for name, value in wanted.items())
        try:
            async with self._target_lock(cp_id, connector_id):
                changes, outcome, error = await attempt()
        except UnknownTarget as exc:
            result = ChangeResult(
                cp_id, connector_id, action, asked, Outcome.REJECTED, _reason(exc), None, True
            )
            return await self._record(result)
        except InvalidValue as exc:
            changes, outcome, error = asked, Outcome.REJECTED, _reason(exc)
        except ChargeAmpsError as exc:
            # Refused (4xx), unreachable, or an answer we cannot read: the vendor's word.
            changes, outcome, error = asked, Outcome.FAILED, str(exc)
        except asyncio.CancelledError:
            # The request may or may not have reached the charger: say so, then stop.
            result = ChangeResult(
                cp_id, connector_id, action, asked, Outcome.FAILED, "cancelled before the end"
            )
            await self._record(result)
            raise
        result = ChangeResult(cp_id, connector_id, action, changes, outcome, error)
        return await self._record(result)

    async def _record(self, result: ChangeResult) -> ChangeResult:
        when = self._clock.utcnow().replace(tzinfo=None, microsecond=0)
        records = [
            AuditRecord(
                created=when,
                actor=self.actor,
                charge_point_id=result.charger,
                connector_id=result.connector,
                action=result.action,
                field=change.field,
                old_value=None if isinstance(change.old, Unset) else json_text(change.old),
                new_value=json_text(change.new),
                result=result.outcome.value,
                error=result.error,
            )
            for change in result.changes
        ]
        log = (
            self._log.info
            if result.outcome in (Outcome.OK, Outcome.UNCHANGED)
            else self._log.warning
        )
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
        try:
            await self._audit.record(records)
        except Exception as exc:  # the change happened (or not) either way: report, not raise
            self._log.error(
                "control audit not written", action=result.action, error=type(exc).__name__
            )
            return dataclasses.replace(
                result, audit_error=f"audit row not written ({type(exc).__name__})"
            )
        return result

    # ------------------------------------------------------------ targets

    async def _owned(self, *, refresh: bool) -> dict[str, ChargePoint]:
        async with self._fleet_lock:
            now = self._clock.monotonic()
            stale = self._fleet_read_at is None or now - self._fleet_read_at >= self._fleet_ttl
            if refresh or stale:
                fleet = await self._client.owned_chargepoints()
                self._fleet = {cp.id: cp for cp in fleet}
                self._fleet_read_at = now
            return self._fleet

    async def _charger(self, cp_id: str) -> ChargePoint:
        cp = (await self._owned(refresh=False)).get(cp_id)
        if cp is None:
            raise UnknownTarget(f"charger {cp_id} is not one of this account's chargers")
        return cp

    async def _connector(self, cp_id: str, connector_id: int) -> None:
        cp = await self._charger(cp_id)
        ids = [c.connector_id for c in cp.connectors]
        if connector_id not in ids:
            have = ", ".join(str(i) for i in ids) or "none"
            raise UnknownTarget(f"charger {cp_id} has no connector {connector_id} (it has: {have})")

    @contextlib.asynccontextmanager
    async def _target_lock(self, cp_id: str, connector_id: int | None) -> AsyncIterator[None]:
        lock = self._target_locks.setdefault((cp_id, connector_id), asyncio.Lock())
        async with lock:
            yield


def _field_changes(
    wanted: dict[str, JsonValue], old: dict[str, JsonValue]
) -> tuple[FieldChange, ...]:
    return tuple(FieldChange(name, value, old.get(name)) for name, value in wanted.items())


def _verify(
    wanted: dict[str, JsonValue], after: dict[str, JsonValue]
) -> tuple[Outcome, str | None]:
    """Compare the read-back with what was asked; every field that differs is named."""
    wrong = [
        f"{name} reads back {json_text(after.get(name))} (asked {json_text(value)})"
        for name, value in wanted.items()
        if after.get(name) != value
    ]
    if wrong:
        return Outcome.FAILED, "did not stick: " + "; ".join(wrong)
    return Outcome.OK, None


def _reason(exc: BaseException) -> str:
    # LookupError's str() quotes its argument; a person should see the plain sentence.
    return str(exc.args[0]) if exc.args else type(exc).__name__
