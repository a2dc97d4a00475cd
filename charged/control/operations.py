"""Reading and changing charger settings, with read-back verification and an audit row each.

Every settings write is read–modify–write of the whole object (the vendor resets omitted
fields) followed by a second read: a field that does not read back as asked makes the change
*failed*, even though the vendor answered 200.  Targets are checked against the account's own
chargers and connectors before anything is sent, so a typo never reaches somebody's car.

Commands read the status first and again after: a stop with no session running, or a start
where one runs, sends nothing (*unchanged*, saying why); an offline charger is sent nothing
(*failed*); a start or stop whose effect the status does not show after a few reads is
*unverified* (the vendor accepted it; the charger may act later).  A reboot is *ok* once the
vendor accepts it: it leaves no state to read back.  Every attempt is audited (see
:mod:`charged.control.audit`), the rows of a change written before it is sent.

One :class:`Controller` may serve many concurrent requests: changes to the same connector (or
the same charge point's settings) are serialised so two read–modify–writes cannot undo each
other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog

from charged.chargeamps.errors import ApiError, ChargeAmpsError
from charged.chargeamps.models import (
    ChargePoint,
    ChargePointSettings,
    ChargePointStatus,
    ConnectorSettings,
    ConnectorStatus,
)
from charged.chargeamps.states import NO_VEHICLE
from charged.clock import Clock
from charged.control.audit import ATTEMPTED, RELEASE_ACTION, AuditRecord, AuditSink, json_text
from charged.control.results import (
    ChangeResult,
    ChargerOverview,
    ConnectorOverview,
    FieldChange,
    Outcome,
    UnknownTarget,
    chargepoint_settings_json,
    connector_settings_json,
)
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
# After a remote start or stop: status reads (this many, so far apart) looking for its effect.
VERIFY_READS = 3
VERIFY_INTERVAL = 2.0


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


# actions that are commands (no settings object): their "old" is the status before
COMMANDS: Final = ("remote_start", "remote_stop", "reboot")


@dataclass(frozen=True, slots=True)
class _Done:
    """What an attempt found out."""

    changes: tuple[FieldChange, ...]
    outcome: Outcome
    error: str | None = None
    note: str | None = None
    conflict: bool = False


class _NotAudited(Exception):
    """The ``attempted`` rows could not be written: the change must not be sent."""


class _Run:
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
            raise _NotAudited(type(exc).__name__) from exc


Attempt = Callable[[_Run], Awaitable[_Done]]


class Controller:
    """The control operations; ``verify_reads`` status reads, ``verify_interval`` seconds
    apart, look for a start's or stop's effect before it is called unverified."""

    def __init__(
        self,
        client: ControlClient,
        audit: AuditSink,
        *,
        actor: str,
        clock: Clock,
        fleet_ttl: float = FLEET_TTL,
        verify_reads: int = VERIFY_READS,
        verify_interval: float = VERIFY_INTERVAL,
        logger: Any = None,
    ) -> None:
        if verify_reads < 1:
            raise ValueError(f"verify_reads must be at least 1, got {verify_reads}")
        self._client = client
        self._audit = audit
        self.actor = actor
        self._clock = clock
        self._fleet_ttl = fleet_ttl
        self._verify_reads = verify_reads
        self._verify_interval = verify_interval
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
                current=max(
                    (m.current for m in c.measurements if m.current is not None), default=None
                ),
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

    async def check_connector(self, cp_id: str, connector_id: int) -> None:
        """UnknownTarget unless the account owns ``cp_id`` and it has ``connector_id``."""
        await self._connector(cp_id, connector_id)

    async def check_charger(self, cp_id: str) -> None:
        """UnknownTarget unless the account owns ``cp_id``."""
        await self._charger(cp_id)

    async def connector_settings(self, cp_id: str, connector_id: int) -> ConnectorSettings:
        await self._connector(cp_id, connector_id)
        return await self._client.connector_settings(cp_id, connector_id)

    async def chargepoint_settings(self, cp_id: str) -> ChargePointSettings:
        await self._charger(cp_id)
        return await self._client.chargepoint_settings(cp_id)

    # ------------------------------------------------------------ changing

    async def set_connector(
        self,
        cp_id: str,
        connector_id: int,
        change: ConnectorChange,
        *,
        unless: Callable[[ConnectorSettings], str | None] | None = None,
    ) -> ChangeResult:
        """``unless`` looks at the settings read just before the write: a reason it gives
        refuses the change (``rejected``, nothing sent; the balancer uses it not to overwrite
        a limit someone set since it last looked)."""
        wanted = change.wanted()

        async def attempt(run: _Run) -> _Done:
            await self._connector(cp_id, connector_id)
            before = await self._client.connector_settings(cp_id, connector_id)
            refusal = None if unless is None else unless(before)
            if refusal is not None:
                changes = _field_changes(wanted, connector_settings_json(before))
                return _Done(changes, Outcome.REJECTED, refusal, conflict=True)
            if not isinstance(change.max_current, Unset):
                check_installation_current(
                    change.max_current,
                    before.installation_current,
                    f"{cp_id} connector {connector_id}",
                )
            old = connector_settings_json(before)
            changes = _field_changes(wanted, old)
            if all(old[name] == value for name, value in wanted.items()):
                return _Done(changes, Outcome.UNCHANGED, note="already as asked: nothing sent")
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
            await run.sending(changes)
            await self._client.set_connector_settings(updated)
            after = await self._client.connector_settings(cp_id, connector_id)
            outcome, error = _verify(wanted, connector_settings_json(after))
            return _Done(changes, outcome, error)

        return await self._change(cp_id, connector_id, "connector_settings", wanted, attempt)

    async def set_chargepoint(self, cp_id: str, change: ChargePointChange) -> ChangeResult:
        wanted = change.wanted()

        async def attempt(run: _Run) -> _Done:
            await self._charger(cp_id)
            before = await self._client.chargepoint_settings(cp_id)
            if not isinstance(change.max_current, Unset):
                check_installation_current(change.max_current, before.installation_current, cp_id)
            old = chargepoint_settings_json(before)
            changes = _field_changes(wanted, old)
            if change.down_light is not None and before.down_light is None:
                # the reference: downLight is a Halo's; an Aura reports it as null.  The
                # charger cannot take it (409), whatever the value asked.
                no_light = (
                    f"charger {cp_id} has no down light (its downLight reads null; "
                    "a Halo has one): nothing sent"
                )
                return _Done(changes, Outcome.FAILED, no_light, conflict=True)
            if all(old[name] == value for name, value in wanted.items()):
                return _Done(changes, Outcome.UNCHANGED, note="already as asked: nothing sent")
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
            await run.sending(changes)
            await self._client.set_chargepoint_settings(updated)
            after = await self._client.chargepoint_settings(cp_id)
            outcome, error = _verify(wanted, chargepoint_settings_json(after))
            return _Done(changes, outcome, error)

        return await self._change(cp_id, None, "chargepoint_settings", wanted, attempt)

    async def remote_start(self, cp_id: str, connector_id: int, start: RemoteStart) -> ChangeResult:
        """Start a session; seen when the connector charges, or a new session is open (a car
        that is full, or a limit of 0, opens one without drawing)."""

        async def attempt(run: _Run) -> _Done:
            await self._connector(cp_id, connector_id)
            charger, before = await self._read_connector(cp_id, connector_id)
            changes = (_command("remoteStart", start.describe(), before),)
            if charger == OFFLINE:
                return _Done(changes, Outcome.FAILED, _offline(cp_id), conflict=True)
            if before is not None and _session_running(before):
                note = f"a session is already running ({before.status}): nothing sent"
                return _Done(changes, Outcome.UNCHANGED, note=note)
            # sent all the same: an OCPP charger may wait for the car to be plugged in
            no_vehicle = before is not None and before.state in NO_VEHICLE
            lock_off = await self._rfid_lock_off(cp_id, connector_id)
            await run.sending(changes)
            try:
                await self._client.remote_start(
                    cp_id,
                    connector_id,
                    rfid=start.rfid,
                    rfid_format=start.rfid_format,
                    rfid_length=start.rfid_length,
                )
            except ApiError as exc:
                if exc.status == 409 and no_vehicle:
                    return _Done(
                        changes, Outcome.FAILED, f"{exc}; {NO_VEHICLE_HINT}", conflict=True
                    )
                raise
            old_session = None if before is None else before.session_id

            def started(c: ConnectorStatus) -> bool:
                return c.charging or (c.session_open and c.session_id != old_session)

            done = await self._watch(cp_id, connector_id, changes, started, "started", "start")
            if done.outcome is Outcome.UNVERIFIED and no_vehicle:
                # the vendor documents no refusal for this: it may accept and do nothing
                done = dataclasses.replace(done, error=f"{done.error}; {NO_VEHICLE_HINT}")
            if lock_off:
                note = f"{done.note}; {RFID_LOCK_OFF}" if done.note else RFID_LOCK_OFF
                done = dataclasses.replace(done, note=note)
            return done

        wanted: dict[str, JsonValue] = {"remoteStart": start.describe()}
        return await self._change(cp_id, connector_id, "remote_start", wanted, attempt)

    async def _rfid_lock_off(self, cp_id: str, connector_id: int) -> bool:
        """The connector's RFID lock is off (the vendor: a remote start "only makes sense"
        with it on); warned about, never a reason not to start.  Unreadable: not warned."""
        try:
            settings = await self._client.connector_settings(cp_id, connector_id)
        except ChargeAmpsError:
            return False
        if settings.rfid_lock:
            return False
        self._log.warning(
            "remote start with the RFID lock off",
            charge_point_id=cp_id,
            connector_id=connector_id,
            hint=RFID_LOCK_OFF,
        )
        return True

    async def remote_stop(self, cp_id: str, connector_id: int) -> ChangeResult:
        """Stop the running session; nothing is sent to a connector that has none."""

        async def attempt(run: _Run) -> _Done:
            await self._connector(cp_id, connector_id)
            charger, before = await self._read_connector(cp_id, connector_id)
            changes = (_command("remoteStop", None, before),)
            if charger == OFFLINE:
                return _Done(changes, Outcome.FAILED, _offline(cp_id), conflict=True)
            if before is not None and not _session_running(before):
                note = f"connector was not charging ({before.status}): nothing sent"
                return _Done(changes, Outcome.UNCHANGED, note=note)
            await run.sending(changes)
            await self._client.remote_stop(cp_id, connector_id)

            def stopped(c: ConnectorStatus) -> bool:
                return not _session_running(c)

            return await self._watch(cp_id, connector_id, changes, stopped, "stopped", "stop")

        wanted: dict[str, JsonValue] = {"remoteStop": None}
        return await self._change(cp_id, connector_id, "remote_stop", wanted, attempt)

    async def reboot(self, cp_id: str) -> ChangeResult:
        """Reboot; ok once the vendor accepts it (a reboot leaves nothing to read back)."""

        async def attempt(run: _Run) -> _Done:
            await self._charger(cp_id)
            status = await self._client.status(cp_id)
            changes = (FieldChange("reboot", None, status.status),)
            if status.status == OFFLINE:
                return _Done(changes, Outcome.FAILED, _offline(cp_id), conflict=True)
            await run.sending(changes)
            await self._client.reboot(cp_id)
            note = "the vendor accepted the reboot: the charger is offline while it restarts"
            return _Done(changes, Outcome.OK, note=note)

        wanted: dict[str, JsonValue] = {"reboot": None}
        return await self._change(cp_id, None, "reboot", wanted, attempt)

    async def release_pin(self, cp_id: str, connector_id: int) -> ChangeResult:
        """End a person's pin on a connector: the balancer drives it again from its next tick.
        Nothing is sent to the charger; the release is an audit row (``balancer_release``)."""

        async def attempt(run: _Run) -> _Done:
            await self._connector(cp_id, connector_id)
            note = "released: the balancer drives it again from its next tick"
            return _Done((FieldChange("release", None),), Outcome.OK, note=note)

        wanted: dict[str, JsonValue] = {"release": None}
        return await self._change(cp_id, connector_id, RELEASE_ACTION, wanted, attempt)

    async def reject(
        self,
        cp_id: str,
        connector_id: int | None,
        action: str,
        asked: Mapping[str, JsonValue],
        reason: str,
    ) -> ChangeResult:
        """Audit a request refused before it became an attempt (an invalid value): one
        ``rejected`` row per field it asked for (one without a field if it named none)."""
        changes = tuple(FieldChange(name, value) for name, value in asked.items())
        result = ChangeResult(cp_id, connector_id, action, changes, Outcome.REJECTED, reason)
        return await self._finish(self._run(cp_id, connector_id, action), result)

    # ------------------------------------------------------------ the common path

    async def _change(
        self,
        cp_id: str,
        connector_id: int | None,
        action: str,
        wanted: dict[str, JsonValue],
        attempt: Attempt,
    ) -> ChangeResult:
        """Run ``attempt`` under the target's lock; whatever happens, audit it."""
        asked = tuple(FieldChange(name, value) for name, value in wanted.items())
        run = self._run(cp_id, connector_id, action)

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
        except _NotAudited as exc:
            final = result(
                Outcome.FAILED,
                f"not sent: the audit row could not be written ({exc})",
                audit_error=f"audit row not written ({exc})",
            )
            self._log_result(final)
            return final
        except ChargeAmpsError as exc:
            # Refused (4xx), unreachable, or an answer we cannot read: the vendor's word.
            conflict = isinstance(exc, ApiError) and exc.status == 409
            final = result(Outcome.FAILED, await self._explain(cp_id, exc), conflict=conflict)
        except asyncio.CancelledError:
            # The request may or may not have reached the charger: say so, then stop.
            await self._finish(run, result(Outcome.FAILED, "cancelled before the end"))
            raise
        return await self._finish(run, final)

    async def _finish(self, run: _Run, result: ChangeResult) -> ChangeResult:
        """The outcome into the audit trail: the ``attempted`` rows updated, or new rows."""
        self._log_result(result)
        try:
            if run.keys is not None:
                await self._audit.finish(run.keys, result.outcome.value, result.error)
            else:
                await self._audit.record(self._records(result))
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

    def _run(self, cp_id: str, connector_id: int | None, action: str) -> _Run:
        return _Run(self._audit, self._records, cp_id, connector_id, action)

    def _records(self, result: ChangeResult) -> list[AuditRecord]:
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

    def _log_result(self, result: ChangeResult) -> None:
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

    # ------------------------------------------------------------ commands' effect

    async def _read_connector(
        self, cp_id: str, connector_id: int
    ) -> tuple[str, ConnectorStatus | None]:
        """The charger's Online/Offline and the connector's status (None if not listed)."""
        status = await self._client.status(cp_id)
        found = next((c for c in status.connector_statuses if c.connector_id == connector_id), None)
        return status.status, found

    async def _watch(
        self,
        cp_id: str,
        connector_id: int,
        changes: tuple[FieldChange, ...],
        done: Callable[[ConnectorStatus], bool],
        seen: str,
        command: str,
    ) -> _Done:
        """Read the status back until ``done`` holds: ok, or unverified after the reads."""
        last = "unknown"
        for read in range(self._verify_reads):
            if read:
                await self._clock.sleep(self._verify_interval)
            try:
                charger, status = await self._read_connector(cp_id, connector_id)
            except ChargeAmpsError as exc:
                last = f"unreadable ({exc})"
                continue
            if status is None:
                last = f"not listed (charger {charger})"
                continue
            if done(status):
                return _Done(changes, Outcome.OK, note=f"{seen}: connector now {status.status}")
            last = status.status
        waited = (self._verify_reads - 1) * self._verify_interval
        return _Done(
            changes,
            Outcome.UNVERIFIED,
            f"the vendor accepted the {command}, but {waited:g} s later the connector still "
            f"reads {last}; look again with `charged chargers`",
        )

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
            raise UnknownTarget(f"charger {cp_id} is not one of this account's chargers", cp_id)
        return cp

    async def _connector(self, cp_id: str, connector_id: int) -> None:
        cp = await self._charger(cp_id)
        ids = [c.connector_id for c in cp.connectors]
        if connector_id not in ids:
            have = ", ".join(str(i) for i in ids) or "none"
            raise UnknownTarget(
                f"charger {cp_id} has no connector {connector_id} (it has: {have})",
                cp_id,
                connector_id,
            )

    @contextlib.asynccontextmanager
    async def _target_lock(self, cp_id: str, connector_id: int | None) -> AsyncIterator[None]:
        lock = self._target_locks.setdefault((cp_id, connector_id), asyncio.Lock())
        async with lock:
            yield


OFFLINE: Final = "Offline"
RFID_LOCK_OFF: Final = (
    "the connector's RFID lock is off: a remote start only makes sense with it on (the "
    "vendor's description): set rfidLock on"
)
NO_VEHICLE_HINT: Final = "the connector read Available before the start: is a vehicle plugged in?"


def _offline(cp_id: str) -> str:
    return f"charger {cp_id} is Offline: nothing sent; try again when it is Online"


def _session_running(c: ConnectorStatus) -> bool:
    """A session is open on the connector: charging, paused (SuspendedEV/EVSE: a car held
    back by a limit has not ended its session), finishing, or plugged in with a session that
    has not ended (a full car, a limit of 0); see charged.chargeamps.states."""
    return c.session_open


def _command(field: str, new: JsonValue, before: ConnectorStatus | None) -> FieldChange:
    return FieldChange(field, new, UNSET if before is None else before.status)


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
