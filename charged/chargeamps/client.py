"""The Charge Amps external API over aiohttp: typed calls, retries, rate limits, tokens.

Every request goes through one path (:meth:`Transport._request`, charged/chargeamps/
transport.py): bearer token from the :class:`TokenManager` (a 401 renews it and retries
once), a slot from the rate limiter, a per-attempt timeout that never outlives the caller's
deadline, and retries for transient failures only.  Metrics label requests by path
*template*, never by id or token.  This module holds the vendor's calls and their models.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import structlog

from charged.chargeamps.auth import TokenManager, TokenStore, account_key
from charged.chargeamps.errors import (
    ApiError,
    ApiUnavailable,
    AuthenticationError,
    BodyNotJson,
    ChargeAmpsError,
    DeadlineExceeded,
    PayloadError,
)
from charged.chargeamps.models import (
    ChargePoint,
    ChargePointSettings,
    ChargePointStatus,
    ChargingSession,
    ConnectorSettings,
    LoginResult,
    Schedule,
    User,
    has_numbered_status,
    parse_chargepoint,
    parse_chargepoint_settings,
    parse_charging_session,
    parse_connector_settings,
    parse_list,
    parse_login,
    parse_override,
    parse_refresh,
    parse_schedule,
    parse_status,
)
from charged.chargeamps.ratelimit import RateLimiter
from charged.chargeamps.retry import BackoffPolicy
from charged.chargeamps.status_wire import decode_status
from charged.chargeamps.transport import (
    DEFAULT_MAX_BODY_BYTES,
    LOGIN_REFUSED,
    Transport,
)
from charged.clock import Clock, SystemClock
from charged.metrics import Metrics

T = TypeVar("T")

RFID_FORMATS = ("Hex", "Dec", "ReverseDec")
# Path templates: the metric label and the `endpoint` of errors.
LOGIN = "/auth/login"
REFRESH = "/auth/refreshtoken"
OWNED = "/chargepoints/owned"
CHARGEPOINT = "/chargepoints/{id}"
STATUS = "/chargepoints/{id}/status"
CP_SETTINGS = "/chargepoints/{id}/settings"
CONNECTOR_SETTINGS = "/chargepoints/{id}/connectors/{connector}/settings"
SESSIONS = "/chargepoints/{id}/chargingsessions"
CONNECTOR_SESSIONS = "/chargepoints/{id}/connectors/{connector}/chargingsessions"
SESSION = "/chargepoints/{id}/chargingsessions/{session}"
REMOTE_START = "/chargepoints/{id}/connectors/{connector}/remotestart"
REMOTE_STOP = "/chargepoints/{id}/connectors/{connector}/remotestop"
REBOOT = "/chargepoints/{id}/reboot"
SCHEDULES = "/chargepoints/{id}/schedules"
SCHEDULE = "/chargepoints/{id}/schedules/{schedule}"
CALLBACKS = "/chargepoints/callbacks/{action}"
ORGANISATION_STATUSES = "/organisations/{org}/chargepoints/statuses"
SCHEDULE_OVERRIDE = "/chargepoints/{id}/connectors/{connector}/schedule/override"
SCHEDULE_OVERRIDE_STATUS = "/chargepoints/{id}/schedule/override/status"
# An organisation's statuses hold every charger: its cap is this much per charger expected
# (a status of two charging connectors is about 1 KiB), or api.max_body_bytes if larger.
ORGANISATION_BYTES_PER_CHARGER = 16 * 1024


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # naive means UTC, as everywhere in charged
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _AuthCalls:
    """The login and refresh HTTP calls, as the TokenManager wants them."""

    def __init__(self, client: ChargeAmpsClient) -> None:
        self._client = client

    async def login(self, *, deadline: float | None = None) -> LoginResult:
        return await self._client._login_call(deadline)

    async def refresh(
        self, token: str, refresh_token: str, *, deadline: float | None = None
    ) -> tuple[str, str | None]:
        return await self._client._refresh_call(token, refresh_token, deadline)


class ChargeAmpsClient(Transport):
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        email: str,
        password: str,
        api_key: str,
        api_version: str = "v5",
        clock: Clock | None = None,
        max_concurrency: int = 10,
        max_requests_per_second: float | None = 20.0,
        request_timeout: float = 10.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        token_store: TokenStore | None = None,
        metrics: Metrics | None = None,
        logger: Any = None,
        rng: random.Random | None = None,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(
                f"api.base_url must start with https:// (or http:// for a local simulator), "
                f"got {base_url!r}"
            )
        for name, value in (("email", email), ("password", password), ("api_key", api_key)):
            if not value:
                raise ValueError(f"api.{name} is empty; set it in the config or its env variable")
        if request_timeout <= 0:
            raise ValueError(f"api.request_timeout must be positive, got {request_timeout}")
        if max_body_bytes < 1:
            raise ValueError(f"api.max_body_bytes must be positive, got {max_body_bytes}")
        clock = clock or SystemClock()
        super().__init__(
            session,
            root=f"{base_url.rstrip('/')}/api/{api_version.strip('/')}",
            api_key=api_key,
            clock=clock,
            metrics=metrics or Metrics(),
            logger=logger or structlog.get_logger("charged.chargeamps"),
            rng=rng or random.Random(),
            request_timeout=request_timeout,
            max_body_bytes=max_body_bytes,
            policy=BackoffPolicy(max_attempts, backoff_base, backoff_max),
            limiter=RateLimiter(
                clock,
                max_concurrency=max_concurrency,
                max_requests_per_second=max_requests_per_second,
            ),
        )
        self._email = email
        self._password = password
        self._tokens = TokenManager(
            _AuthCalls(self),
            account=account_key(email, base_url),
            clock=self._clock,
            store=token_store,
            metrics=self._metrics,
            logger=self._log,
        )
        self._payload_failing: set[str] = set()
        # ocppVersion by charger, from the lists and charger reads: it says what a numbered
        # connector status means (a name means itself on every charger)
        self._ocpp_versions: dict[str, str | None] = {}
        self._unknown_statuses: set[str] = set()  # raw values warned about once each

    def __repr__(self) -> str:
        return f"ChargeAmpsClient({self._root!r})"

    @property
    def tokens(self) -> TokenManager:
        return self._tokens

    @property
    def user(self) -> User | None:
        """The account's user, as the last login returned it (None before a login)."""
        return self._tokens.user

    # ------------------------------------------------------------ authentication

    async def login(self, *, force: bool = False, deadline: float | None = None) -> None:
        """Make sure the client holds a valid token; raises AuthenticationError if refused.

        Without ``force`` a cached or refreshable token is used as it is (every login mints a
        new token, and the vendor logs out the oldest of an account's 10).
        """
        if force:
            await self._tokens.login(deadline=deadline)
        else:
            await self._tokens.ensure(deadline=deadline)

    async def _login_call(self, deadline: float | None) -> LoginResult:
        body = {"email": self._email, "password": self._password}
        data = await self._request("POST", LOGIN, body=body, auth="login", deadline=deadline)
        return parse_login(data)

    async def _refresh_call(
        self, token: str, refresh_token: str, deadline: float | None
    ) -> tuple[str, str | None]:
        body = {"token": token, "refreshToken": refresh_token}
        data = await self._request("POST", REFRESH, body=body, auth="refresh", deadline=deadline)
        return parse_refresh(data)

    # ------------------------------------------------------------ charge points

    async def owned_chargepoints(self, *, deadline: float | None = None) -> list[ChargePoint]:
        """Every charge point of the account; one that cannot be parsed is logged and skipped."""
        data = await self._fetch(OWNED, {}, deadline=deadline)
        if data is None:
            return []
        if not isinstance(data, list):
            raise self._payload_problem(
                PayloadError("expected a JSON array of charge points"), OWNED, None
            )
        found: list[ChargePoint] = []
        for item in data:
            cp_id = item.get("id") if isinstance(item, dict) else None
            key = cp_id if isinstance(cp_id, str) else None
            try:
                cp = parse_chargepoint(item)
            except PayloadError as exc:
                self._payload_problem(exc, OWNED, key)
                continue
            self._payload_recovered(key)
            self._ocpp_versions[cp.id] = cp.ocpp_version
            found.append(cp)
        return found

    async def chargepoint(
        self, cp_id: str, *, expand_settings: bool = False, deadline: float | None = None
    ) -> ChargePoint:
        params = {"expand": "settings"} if expand_settings else None
        cp = await self._get(
            CHARGEPOINT, {"id": cp_id}, parse_chargepoint, cp_id, params=params, deadline=deadline
        )
        self._ocpp_versions[cp.id] = cp.ocpp_version
        return cp

    async def status(self, cp_id: str, *, deadline: float | None = None) -> ChargePointStatus:
        """The charger's status, connector statuses normalised (charged.chargeamps.states)."""
        data = await self._fetch(
            STATUS, {"id": cp_id}, cp_id=cp_id, deadline=deadline, decode=decode_status
        )
        if isinstance(data, ChargePointStatus):
            # the usual answer, decoded typed (charged.chargeamps.status_wire): no numbered
            # status in it, so nothing to learn of the charger's protocol first
            self._payload_recovered(cp_id)
            self._warn_unknown_statuses(data)
            return data
        if cp_id not in self._ocpp_versions and has_numbered_status(data):
            # a numbered status means one thing on CAPI, another on OCPP: learn which once
            await self.chargepoint(cp_id, deadline=deadline)
        return self._status_of(data, cp_id, STATUS)

    async def organisation_statuses(
        self, organisation_id: str, *, chargers: int = 1, deadline: float | None = None
    ) -> tuple[list[ChargePointStatus], list[str]]:
        """Every charger of the organisation in one call (v5).

        ``chargers``: how many the caller expects; the answer may be
        ``max(api.max_body_bytes, chargers × ORGANISATION_BYTES_PER_CHARGER)`` long.
        → (the statuses that parse, the ids of those that do not: each counted and logged
        as a payload error of its own, so one bad charger does not cost the others).
        """
        self._body_caps[ORGANISATION_STATUSES] = max(
            self._max_body, chargers * ORGANISATION_BYTES_PER_CHARGER
        )
        path = {"org": organisation_id}
        data = await self._fetch(ORGANISATION_STATUSES, path, deadline=deadline)
        if data is None:
            return [], []
        if not isinstance(data, list):
            raise self._payload_problem(
                PayloadError("expected a JSON array of charge point statuses"),
                ORGANISATION_STATUSES,
                None,
            )
        unknown_kind = {
            item["id"]
            for item in data
            if isinstance(item, dict)
            and isinstance(item.get("id"), str)
            and item["id"] not in self._ocpp_versions
            and has_numbered_status(item)
        }
        if unknown_kind:
            await self.owned_chargepoints(deadline=deadline)  # one list for all of them
        statuses: list[ChargePointStatus] = []
        broken: list[str] = []
        for item in data:
            cp_id = item.get("id") if isinstance(item, dict) else None
            key = cp_id if isinstance(cp_id, str) else None
            try:
                statuses.append(self._status_of(item, key, ORGANISATION_STATUSES))
            except PayloadError:
                if key is not None:
                    broken.append(key)
        return statuses, broken

    def _status_of(self, data: object, cp_id: str | None, template: str) -> ChargePointStatus:
        version = self._ocpp_versions.get(cp_id) if cp_id is not None else None
        try:
            status = parse_status(data, version)
        except PayloadError as exc:
            raise self._payload_problem(exc, template, cp_id) from exc
        self._payload_recovered(cp_id)
        self._warn_unknown_statuses(status)
        return status

    def _warn_unknown_statuses(self, status: ChargePointStatus) -> None:
        for c in status.connector_statuses:
            if c.state is None and c.status not in self._unknown_statuses:
                # stored as it came; a value no document names may be a new firmware's
                self._unknown_statuses.add(c.status)
                self._log.warning(
                    "connector status no vendor document names; stored as it came",
                    status=c.status[:64],
                    charge_point_id=c.charge_point_id,
                    connector_id=c.connector_id,
                )

    async def chargepoint_settings(
        self, cp_id: str, *, deadline: float | None = None
    ) -> ChargePointSettings:
        return await self._get(
            CP_SETTINGS, {"id": cp_id}, parse_chargepoint_settings, cp_id, deadline=deadline
        )

    async def set_chargepoint_settings(
        self, settings: ChargePointSettings, *, deadline: float | None = None
    ) -> None:
        await self._write(
            "PUT",
            CP_SETTINGS,
            path={"id": settings.id},
            body=settings.to_json(),
            deadline=deadline,
        )

    async def connector_settings(
        self, cp_id: str, connector_id: int, *, deadline: float | None = None
    ) -> ConnectorSettings:
        return await self._get(
            CONNECTOR_SETTINGS,
            {"id": cp_id, "connector": connector_id},
            parse_connector_settings,
            cp_id,
            deadline=deadline,
        )

    async def set_connector_settings(
        self, settings: ConnectorSettings, *, deadline: float | None = None
    ) -> None:
        await self._write(
            "PUT",
            CONNECTOR_SETTINGS,
            path={"id": settings.charge_point_id, "connector": settings.connector_id},
            body=settings.to_json(),
            deadline=deadline,
        )

    # ------------------------------------------------------------ sessions

    async def charging_sessions(
        self,
        cp_id: str,
        connector_id: int | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        max_count: int | None = None,
        deadline: float | None = None,
    ) -> list[ChargingSession]:
        params: dict[str, str] = {}
        if start is not None:
            params["startTime"] = _iso(start)
        if end is not None:
            params["endTime"] = _iso(end)
        if max_count is not None:
            if max_count < 1:
                raise ValueError(f"max_count must be at least 1, got {max_count}")
            params["maxCount"] = str(max_count)
        path: dict[str, str | int] = {"id": cp_id}
        template = SESSIONS
        if connector_id is not None:
            template, path["connector"] = CONNECTOR_SESSIONS, connector_id
        return await self._get(
            template,
            path,
            lambda d: parse_list(d, parse_charging_session, "ChargingSession[]"),
            cp_id,
            params=params or None,
            deadline=deadline,
        )

    async def charging_session(
        self, cp_id: str, session_id: int, *, deadline: float | None = None
    ) -> ChargingSession:
        return await self._get(
            SESSION,
            {"id": cp_id, "session": session_id},
            parse_charging_session,
            cp_id,
            deadline=deadline,
        )

    # ------------------------------------------------------------ commands

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
    ) -> None:
        if rfid_format not in RFID_FORMATS:
            raise ValueError(
                f"rfid_format must be one of {', '.join(RFID_FORMATS)}, got {rfid_format!r}"
            )
        if rfid_length is None:
            if rfid_format != "Hex":
                raise ValueError(
                    f"rfid_length is needed for a {rfid_format} RFID; pass it in bytes"
                )
            rfid_length = len(rfid) // 2  # two hex digits per byte
        body: dict[str, Any] = {"rfidLength": rfid_length, "rfidFormat": rfid_format, "rfid": rfid}
        if external_transaction_id is not None:
            body["externalTransactionId"] = external_transaction_id
        # Not idempotent: a start that reached the charger must not be sent twice.
        await self._write(
            "PUT",
            REMOTE_START,
            path={"id": cp_id, "connector": connector_id},
            body=body,
            deadline=deadline,
            idempotent=False,
        )

    async def remote_stop(
        self, cp_id: str, connector_id: int, *, deadline: float | None = None
    ) -> None:
        # The vendor answers 403 to a PUT without a body: always send {}.  Retried like any
        # PUT: a second stop of a connector that has stopped changes nothing, and a stop
        # that gets through matters more than one request too many.
        await self._write(
            "PUT",
            REMOTE_STOP,
            path={"id": cp_id, "connector": connector_id},
            body={},
            deadline=deadline,
        )

    async def reboot(self, cp_id: str, *, deadline: float | None = None) -> None:
        # Not idempotent: a second reboot would interrupt the charger again.
        await self._write(
            "PUT", REBOOT, path={"id": cp_id}, body={}, deadline=deadline, idempotent=False
        )

    async def set_callbacks(
        self, cp_ids: list[str], *, enabled: bool, deadline: float | None = None
    ) -> None:
        await self._write(
            "PUT",
            CALLBACKS,
            path={"action": "enable" if enabled else "disable"},
            body={"chargePointIds": list(cp_ids)},
            deadline=deadline,
        )

    # ------------------------------------------------------------ schedules

    async def schedules(self, cp_id: str, *, deadline: float | None = None) -> list[Schedule]:
        return await self._get(
            SCHEDULES,
            {"id": cp_id},
            lambda d: parse_list(d, parse_schedule, "Schedule[]"),
            cp_id,
            deadline=deadline,
        )

    async def schedule(
        self, cp_id: str, schedule_id: str, *, deadline: float | None = None
    ) -> Schedule:
        return await self._get(
            SCHEDULE,
            {"id": cp_id, "schedule": schedule_id},
            parse_schedule,
            cp_id,
            deadline=deadline,
        )

    async def create_schedule(
        self, cp_id: str, schedule: Schedule, *, deadline: float | None = None
    ) -> Schedule:
        """POST a schedule; returns the vendor's copy when it sends one back."""
        data = await self._write(
            "POST", SCHEDULES, path={"id": cp_id}, body=schedule.to_json(), deadline=deadline
        )
        return self._parse(data, parse_schedule, SCHEDULES, cp_id) if data else schedule

    async def update_schedule(
        self, cp_id: str, schedule: Schedule, *, deadline: float | None = None
    ) -> None:
        await self._write(
            "PUT", SCHEDULES, path={"id": cp_id}, body=schedule.to_json(), deadline=deadline
        )

    async def override_schedule(
        self, cp_id: str, connector_id: int, *, deadline: float | None = None
    ) -> None:
        """Charge now on a connector whose schedule would hold it (v5; the PUT has no body)."""
        await self._write(
            "PUT",
            SCHEDULE_OVERRIDE,
            path={"id": cp_id, "connector": connector_id},
            deadline=deadline,
        )

    async def schedule_override_status(
        self, cp_id: str, *, deadline: float | None = None
    ) -> dict[int, bool]:
        """connector id → whether its schedule is overridden (v5: [{connectorId, isOverridden}])."""
        return await self._get(
            SCHEDULE_OVERRIDE_STATUS,
            {"id": cp_id},
            lambda d: dict(parse_list(d, parse_override, "ScheduleOverride[]")),
            cp_id,
            deadline=deadline,
        )

    async def delete_schedule(
        self, cp_id: str, schedule_id: str, *, deadline: float | None = None
    ) -> None:
        await self._write(
            "DELETE", SCHEDULE, path={"id": cp_id, "schedule": schedule_id}, deadline=deadline
        )

    async def _write(
        self,
        method: str,
        template: str,
        *,
        path: Mapping[str, str | int],
        body: Mapping[str, Any] | None = None,
        deadline: float | None = None,
        idempotent: bool = True,
    ) -> Any:
        """A change: the vendor describes its answers as application/octet-stream strings,
        so a 2xx is a success whatever its body (None when it is not JSON); the caller's
        read-back is what verifies the change."""
        try:
            return await self._request(
                method,
                template,
                path=path,
                body=body,
                deadline=deadline,
                idempotent=idempotent,
            )
        except BodyNotJson:
            return None

    # ------------------------------------------------------------ parsing

    async def _fetch(
        self,
        template: str,
        path: Mapping[str, str | int],
        *,
        cp_id: str | None = None,
        params: Mapping[str, str] | None = None,
        deadline: float | None = None,
        decode: Callable[[bytes], Any] = json.loads,
    ) -> Any:
        try:
            return await self._request(
                "GET", template, path=path, params=params, deadline=deadline, decode=decode
            )
        except PayloadError as exc:  # the body was not JSON at all
            raise self._payload_problem(exc, template, cp_id) from exc

    async def _get(
        self,
        template: str,
        path: Mapping[str, str | int],
        parse: Callable[[object], T],
        cp_id: str,
        *,
        params: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> T:
        data = await self._fetch(template, path, cp_id=cp_id, params=params, deadline=deadline)
        return self._parse(data, parse, template, cp_id)

    def _parse(self, data: object, parse: Callable[[object], T], template: str, cp_id: str) -> T:
        try:
            result = parse(data)
        except PayloadError as exc:
            raise self._payload_problem(exc, template, cp_id) from exc
        self._payload_recovered(cp_id)
        return result

    def _payload_problem(self, exc: PayloadError, template: str, cp_id: str | None) -> PayloadError:
        """Count it; log it the first time for this charger (then only count)."""
        self._metrics.payload_errors.labels(template).inc()
        key = cp_id if cp_id is not None else template
        if key not in self._payload_failing:
            self._payload_failing.add(key)
            self._log.warning(
                "unparseable payload from the vendor API",
                charge_point_id=cp_id,
                endpoint=template,
                reason=str(exc),
            )
        where = f" of {cp_id}" if cp_id is not None else ""
        return PayloadError(f"{template}{where}: {exc}", charge_point_id=cp_id, endpoint=template)

    def _payload_recovered(self, cp_id: str | None) -> None:
        if cp_id is not None and self._payload_failing and cp_id in self._payload_failing:
            self._payload_failing.discard(cp_id)
            self._log.info("payload parseable again", charge_point_id=cp_id)


__all__ = [
    "LOGIN_REFUSED",
    "ApiError",
    "ApiUnavailable",
    "AuthenticationError",
    "ChargeAmpsClient",
    "ChargeAmpsError",
    "DeadlineExceeded",
    "PayloadError",
]
