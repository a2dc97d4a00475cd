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
other.  The common path of every attempt (lock, audit, log) is :mod:`charged.control.attempt`,
the owned-charger checks :mod:`charged.control.owned`, the read-back verdicts
:mod:`charged.control.readback`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Final

import structlog

from charged.chargeamps.errors import ApiError, ChargeAmpsError
from charged.chargeamps.models import (
    ChargePoint,
    ChargePointSettings,
    ConnectorSettings,
    ConnectorStatus,
)
from charged.chargeamps.states import NO_VEHICLE
from charged.clock import Clock
from charged.control.attempt import AttemptRunner, Done, Run
from charged.control.audit import RELEASE_ACTION, AuditSink
from charged.control.client import ControlClient
from charged.control.owned import FLEET_TTL, OwnedFleet
from charged.control.readback import (
    NO_VEHICLE_HINT,
    OFFLINE,
    RFID_LOCK_OFF,
    command_change,
    field_changes,
    offline,
    session_running,
    verify,
)
from charged.control.results import (
    ChangeResult,
    ChargerOverview,
    ConnectorOverview,
    FieldChange,
    Outcome,
    chargepoint_settings_json,
    connector_settings_json,
)
from charged.control.validation import (
    ChargePointChange,
    ConnectorChange,
    JsonValue,
    RemoteStart,
    Unset,
    check_installation_current,
)

# After a remote start or stop: status reads (this many, so far apart) looking for its effect.
VERIFY_READS = 3
VERIFY_INTERVAL = 2.0

# actions that are commands (no settings object): their "old" is the status before
COMMANDS: Final = ("remote_start", "remote_stop", "reboot")


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
        self._clock = clock
        self._verify_reads = verify_reads
        self._verify_interval = verify_interval
        self._log = logger or structlog.get_logger("charged.control")
        self._fleet = OwnedFleet(client, clock, fleet_ttl)
        self._attempts = AttemptRunner(client, audit, actor=actor, clock=clock, logger=self._log)

    @property
    def actor(self) -> str:
        return self._attempts.actor

    # ------------------------------------------------------------ reading

    async def chargers(self) -> list[ChargePoint]:
        """The owned charge points, freshly listed."""
        return list((await self._fleet.owned(refresh=True)).values())

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
        cp = await self._fleet.charger(cp_id)
        return tuple(c.connector_id for c in cp.connectors)

    async def charger_ids(self) -> tuple[str, ...]:
        return tuple((await self._fleet.owned(refresh=False)).keys())

    async def check_connector(self, cp_id: str, connector_id: int) -> None:
        """UnknownTarget unless the account owns ``cp_id`` and it has ``connector_id``."""
        await self._fleet.connector(cp_id, connector_id)

    async def check_charger(self, cp_id: str) -> None:
        """UnknownTarget unless the account owns ``cp_id``."""
        await self._fleet.charger(cp_id)

    async def connector_settings(self, cp_id: str, connector_id: int) -> ConnectorSettings:
        await self._fleet.connector(cp_id, connector_id)
        return await self._client.connector_settings(cp_id, connector_id)

    async def chargepoint_settings(self, cp_id: str) -> ChargePointSettings:
        await self._fleet.charger(cp_id)
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

        async def attempt(run: Run) -> Done:
            await self._fleet.connector(cp_id, connector_id)
            before = await self._client.connector_settings(cp_id, connector_id)
            refusal = None if unless is None else unless(before)
            if refusal is not None:
                changes = field_changes(wanted, connector_settings_json(before))
                return Done(changes, Outcome.REJECTED, refusal, conflict=True)
            if not isinstance(change.max_current, Unset):
                check_installation_current(
                    change.max_current,
                    before.installation_current,
                    f"{cp_id} connector {connector_id}",
                )
            old = connector_settings_json(before)
            changes = field_changes(wanted, old)
            if all(old[name] == value for name, value in wanted.items()):
                return Done(changes, Outcome.UNCHANGED, note="already as asked: nothing sent")
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
            outcome, error = verify(wanted, connector_settings_json(after))
            return Done(changes, outcome, error)

        return await self._attempts.change(
            cp_id, connector_id, "connector_settings", wanted, attempt
        )

    async def set_chargepoint(self, cp_id: str, change: ChargePointChange) -> ChangeResult:
        wanted = change.wanted()

        async def attempt(run: Run) -> Done:
            await self._fleet.charger(cp_id)
            before = await self._client.chargepoint_settings(cp_id)
            if not isinstance(change.max_current, Unset):
                check_installation_current(change.max_current, before.installation_current, cp_id)
            old = chargepoint_settings_json(before)
            changes = field_changes(wanted, old)
            if change.down_light is not None and before.down_light is None:
                # the reference: downLight is a Halo's; an Aura reports it as null.  The
                # charger cannot take it (409), whatever the value asked.
                no_light = (
                    f"charger {cp_id} has no down light (its downLight reads null; "
                    "a Halo has one): nothing sent"
                )
                return Done(changes, Outcome.FAILED, no_light, conflict=True)
            if all(old[name] == value for name, value in wanted.items()):
                return Done(changes, Outcome.UNCHANGED, note="already as asked: nothing sent")
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
            outcome, error = verify(wanted, chargepoint_settings_json(after))
            return Done(changes, outcome, error)

        return await self._attempts.change(cp_id, None, "chargepoint_settings", wanted, attempt)

    async def remote_start(self, cp_id: str, connector_id: int, start: RemoteStart) -> ChangeResult:
        """Start a session; seen when the connector charges, or a new session is open (a car
        that is full, or a limit of 0, opens one without drawing)."""

        async def attempt(run: Run) -> Done:
            await self._fleet.connector(cp_id, connector_id)
            charger, before = await self._read_connector(cp_id, connector_id)
            changes = (command_change("remoteStart", start.describe(), before),)
            if charger == OFFLINE:
                return Done(changes, Outcome.FAILED, offline(cp_id), conflict=True)
            if before is not None and session_running(before):
                note = f"a session is already running ({before.status}): nothing sent"
                return Done(changes, Outcome.UNCHANGED, note=note)
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
                    return Done(changes, Outcome.FAILED, f"{exc}; {NO_VEHICLE_HINT}", conflict=True)
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
        return await self._attempts.change(cp_id, connector_id, "remote_start", wanted, attempt)

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

        async def attempt(run: Run) -> Done:
            await self._fleet.connector(cp_id, connector_id)
            charger, before = await self._read_connector(cp_id, connector_id)
            changes = (command_change("remoteStop", None, before),)
            if charger == OFFLINE:
                return Done(changes, Outcome.FAILED, offline(cp_id), conflict=True)
            if before is not None and not session_running(before):
                note = f"connector was not charging ({before.status}): nothing sent"
                return Done(changes, Outcome.UNCHANGED, note=note)
            await run.sending(changes)
            await self._client.remote_stop(cp_id, connector_id)

            def stopped(c: ConnectorStatus) -> bool:
                return not session_running(c)

            return await self._watch(cp_id, connector_id, changes, stopped, "stopped", "stop")

        wanted: dict[str, JsonValue] = {"remoteStop": None}
        return await self._attempts.change(cp_id, connector_id, "remote_stop", wanted, attempt)

    async def reboot(self, cp_id: str) -> ChangeResult:
        """Reboot; ok once the vendor accepts it (a reboot leaves nothing to read back)."""

        async def attempt(run: Run) -> Done:
            await self._fleet.charger(cp_id)
            status = await self._client.status(cp_id)
            changes = (FieldChange("reboot", None, status.status),)
            if status.status == OFFLINE:
                return Done(changes, Outcome.FAILED, offline(cp_id), conflict=True)
            await run.sending(changes)
            await self._client.reboot(cp_id)
            note = "the vendor accepted the reboot: the charger is offline while it restarts"
            return Done(changes, Outcome.OK, note=note)

        wanted: dict[str, JsonValue] = {"reboot": None}
        return await self._attempts.change(cp_id, None, "reboot", wanted, attempt)

    async def release_pin(self, cp_id: str, connector_id: int) -> ChangeResult:
        """End a person's pin on a connector: the balancer drives it again from its next tick.
        Nothing is sent to the charger; the release is an audit row (``balancer_release``)."""

        async def attempt(run: Run) -> Done:
            await self._fleet.connector(cp_id, connector_id)
            note = "released: the balancer drives it again from its next tick"
            return Done((FieldChange("release", None),), Outcome.OK, note=note)

        wanted: dict[str, JsonValue] = {"release": None}
        return await self._attempts.change(cp_id, connector_id, RELEASE_ACTION, wanted, attempt)

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
        return await self._attempts.finish(
            self._attempts.new_run(cp_id, connector_id, action), result
        )

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
    ) -> Done:
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
                return Done(changes, Outcome.OK, note=f"{seen}: connector now {status.status}")
            last = status.status
        waited = (self._verify_reads - 1) * self._verify_interval
        return Done(
            changes,
            Outcome.UNVERIFIED,
            f"the vendor accepted the {command}, but {waited:g} s later the connector still "
            f"reads {last}; look again with `charged chargers`",
        )
