"""The Charge Amps external API over aiohttp: typed calls, retries, rate limits, tokens.

Every request goes through one path (:meth:`ChargeAmpsClient._request`): bearer token from
the :class:`TokenManager` (a 401 renews it and retries once), a slot from the rate limiter,
a per-attempt timeout that never outlives the caller's deadline, and tenacity retries for
transient failures only.  Metrics label requests by path *template*, never by id or token.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import aiohttp
import structlog
from yarl import URL

from charged.chargeamps.auth import TokenManager, TokenStore, account_key
from charged.chargeamps.errors import (
    ApiAddressError,
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
from charged.chargeamps.retry import BackoffPolicy, call_with_retries
from charged.chargeamps.status_wire import decode_status
from charged.clock import Clock, SystemClock
from charged.metrics import Metrics

T = TypeVar("T")
AuthMode = Literal["bearer", "login", "refresh"]

LOGIN_REFUSED = (
    "login refused: wrong email, password or apiKey (HTTP {status}); "
    "check api.email / api.password / api.api_key in the config"
)
AUTH_NOT_FOUND = (
    "{what}: HTTP 404: the vendor API has no such endpoint under {root}; check api.base_url "
    "(the host only, e.g. https://eapi.charge.space, without /api/v5) and api.version"
)
# Why a command that may have been carried out is not sent a second time.
NOT_REPEATED = (
    "not repeated: the charger may have carried it out; check its status before trying again"
)
RFID_FORMATS = ("Hex", "Dec", "ReverseDec")
# The largest answer read from the vendor.  A status is ~1 KiB and the longest list of
# sessions a few hundred KiB: 4 MiB is far above any real answer, and bounds what one
# request in flight can hold (an unbounded read of a 300 MB answer took the daemon to 1 GB).
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
BODY_TOO_LARGE = "{what}: the answer is larger than {cap} bytes (api.max_body_bytes); not read"

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
# What of an error body goes into the message: the vendor's own words, one line, short.
ERROR_TEXT_LIMIT = 160

_HINTS = {
    400: "the vendor rejected the request as invalid",
    401: "the token was refused even after renewing it",
    403: "not allowed for this account (or the charger is owner-read-only)",
    404: "unknown charge point, connector or session; check the id",
    409: "conflict with the charger's current state; read it again and retry later",
}


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # naive means UTC, as everywhere in charged
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_text(raw: bytes) -> str:
    """An error body as the vendor describes it (an application/octet-stream string, or a
    JSON ``{"error"/"message"}``) → one short printable line; empty if there is none."""
    text = raw[: ERROR_TEXT_LIMIT * 4].decode("utf-8", "replace").strip()
    if text.startswith(("{", '"')):
        try:
            parsed = json.loads(raw)
        except ValueError:
            pass
        else:
            if isinstance(parsed, dict):
                parsed = parsed.get("error") or parsed.get("message") or ""
            text = parsed if isinstance(parsed, str) else ""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if len(line) > ERROR_TEXT_LIMIT:
        line = line[: ERROR_TEXT_LIMIT - 1] + "…"
    return line


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


# URL paths kept built (one per charger and endpoint): far above any fleet's, and a bound.
PATH_CACHE_SIZE = 65_536


@dataclass(slots=True)
class _Call:
    """What stays the same over the attempts of one logical call."""

    method: str
    template: str
    what: str  # "GET /chargepoints/X/status": for messages
    url: URL | str  # str only where yarl refused it: aiohttp then says why, as always
    params: Mapping[str, str] | None
    payload: bytes | None
    auth: AuthMode
    deadline: float | None
    idempotent: bool
    decode: Callable[[bytes], Any]  # a 2xx body → its value (json.loads, or a typed decoder)
    # a 401 renews the token once per call, not once per attempt
    renewed_after_401: bool = False


class ChargeAmpsClient:
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
        self._session = session
        self._root = f"{base_url.rstrip('/')}/api/{api_version.strip('/')}"
        self._email = email
        self._password = password
        self._api_key = api_key
        self._clock = clock or SystemClock()
        self._metrics = metrics or Metrics()
        self._log = logger or structlog.get_logger("charged.chargeamps")
        self._rng = rng or random.Random()
        self._timeout = request_timeout
        # Built once: every request without a nearer deadline shares it (a ClientTimeout per
        # request, like the closures and label lookups below, was CPU the bare loop does not
        # spend: bench/README.md, "client overhead").
        self._client_timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._max_body = max_body_bytes
        # (template, path values) -> the URL path and the whole URL, quoted and parsed once
        # per charger and endpoint (aiohttp parses a str URL on every request)
        self._paths: dict[tuple[str, tuple[tuple[str, str | int], ...]], tuple[str, URL | str]] = {}
        # (template, outcome) -> the metric's child: prometheus' labels() is a locked lookup
        self._request_counters: dict[tuple[str, str], Any] = {}
        # (token, headers with Content-Type, headers without): built once per token
        self._bearer_headers: tuple[str, dict[str, str], dict[str, str]] | None = None
        self._policy = BackoffPolicy(max_attempts, backoff_base, backoff_max)
        self._limiter = RateLimiter(
            self._clock,
            max_concurrency=max_concurrency,
            max_requests_per_second=max_requests_per_second,
        )
        self._tokens = TokenManager(
            _AuthCalls(self),
            account=account_key(email, base_url),
            clock=self._clock,
            store=token_store,
            metrics=self._metrics,
            logger=self._log,
        )
        self._api_up: bool | None = None
        self._payload_failing: set[str] = set()
        # ocppVersion by charger, from the lists and charger reads: it says what a numbered
        # connector status means (a name means itself on every charger)
        self._ocpp_versions: dict[str, str | None] = {}
        self._unknown_statuses: set[str] = set()  # raw values warned about once each
        # answers that hold many chargers get a cap of their own (by path template)
        self._body_caps: dict[str, int] = {}

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

    # ------------------------------------------------------------ transport

    async def _request(
        self,
        method: str,
        template: str,
        *,
        path: Mapping[str, str | int] | None = None,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        auth: AuthMode = "bearer",
        deadline: float | None = None,
        idempotent: bool = True,
        decode: Callable[[bytes], Any] = json.loads,
    ) -> Any:
        """One logical call: JSON in, decoded JSON (or None for an empty body) out; ``decode``
        reads a 2xx body (its ValueError: the body is not JSON).

        A call that is not ``idempotent`` (remote start, reboot) is repeated only when the
        first attempt certainly did not reach the vendor (no connection, or a 429); after a
        5xx, 408, timeout or a connection lost mid-request it fails with the reason instead.
        """
        filled, url = self._filled_path(template, path)
        call = _Call(
            method=method,
            template=template,
            what=f"{method} {filled}",
            url=url,
            params=params,
            payload=None if body is None else json.dumps(body).encode(),
            auth=auth,
            deadline=deadline,
            idempotent=idempotent,
            decode=decode,
        )
        # Almost every call succeeds at once, and building the retry machinery cost more CPU
        # per request than parsing the answer (bench/README.md): try once without it.  A
        # failure is handed to the retry loop as its first attempt, so what is retried, the
        # backoff and the attempt count stay exactly the retry policy's.
        try:
            result = await self._attempt_once(call)
        except Exception as exc:
            result = await self._retried(call, exc)
        if self._api_up is not True:
            if self._api_up is False:
                self._log.info("vendor API reachable again", endpoint=template)
            self._api_up = True
        return result

    async def _retried(self, call: _Call, first: Exception) -> Any:
        """The retry loop for a call whose first attempt raised ``first``."""

        async def attempt() -> Any:
            return await self._attempt_once(call)

        try:
            return await call_with_retries(
                attempt,
                what=call.what,
                policy=self._policy,
                clock=self._clock,
                rng=self._rng,
                deadline=call.deadline,
                on_retry=self._metrics.api_retries.labels(call.template).inc,
                first_failure=first,
            )
        except ApiUnavailable as exc:
            if self._api_up is not False:
                self._api_up = False
                self._log.warning("vendor API unavailable", endpoint=call.template, reason=str(exc))
            raise

    async def _attempt_once(self, call: _Call) -> Any:
        try:
            return await self._attempt(call)
        except ApiUnavailable as exc:
            if call.idempotent or not exc.retryable or not exc.sent:
                raise
            raise ApiUnavailable(
                f"{exc}; {NOT_REPEATED}",
                endpoint=exc.endpoint,
                status=exc.status,
                retryable=False,
            ) from exc

    async def _attempt(self, call: _Call) -> Any:
        while True:
            token = ""
            if call.auth == "bearer":
                try:
                    token = await self._tokens.token(deadline=call.deadline)
                except ApiUnavailable as exc:
                    # Login/refresh already retried on their own: don't multiply them.
                    raise ApiUnavailable(
                        f"{call.what}: no token: {exc}", endpoint=call.template, retryable=False
                    ) from exc
                headers = self._bearer_headers_for(token, call)
            else:
                # The auth endpoints take the apiKey instead of a bearer token.
                headers = {
                    "Accept": "application/json",
                    "Content-Type": "application/json",
                    "apiKey": self._api_key,
                }
            status, raw, retry_after = await self._send(call, headers)
            if status == 401 and call.auth == "bearer" and not call.renewed_after_401:
                # Expired or revoked token: renew once and go again (not a backoff retry).
                call.renewed_after_401 = True
                await self._tokens.invalidate(token)
                continue
            return self._interpret(status, raw, retry_after, call)

    def _filled_path(
        self, template: str, path: Mapping[str, str | int] | None
    ) -> tuple[str, URL | str]:
        """The template with the path values quoted in, and the whole URL: built once per
        charger and endpoint."""
        key = (template, tuple(path.items()) if path else ())
        cached = self._paths.get(key)
        if cached is None:
            if len(self._paths) >= PATH_CACHE_SIZE:
                self._paths.clear()  # chargers come and go: never grow without bound
            filled = (
                template.format(**{k: quote(str(v), safe="") for k, v in path.items()})
                if path
                else template
            )
            text = self._root + filled
            try:
                # what aiohttp makes of the str (URL(text)), made once instead of per request
                url: URL | str = URL(text)
            except ValueError:
                url = text  # aiohttp raises its own error for it, as it did before
            cached = self._paths[key] = (filled, url)
        return cached

    def _bearer_headers_for(self, token: str, call: _Call) -> dict[str, str]:
        """The headers of a bearer request, built once per token (aiohttp copies them).

        A GET carries no body, so no Content-Type (the public chargeamps client sends none): an
        extra header cost aiohttp ~10 µs a request (bench/README.md).  Every other method
        keeps it, with or without a body (aiohttp would add application/octet-stream to a
        bodiless POST otherwise)."""
        cached = self._bearer_headers
        if cached is None or cached[0] != token:
            bare = {"Accept": "application/json", "Authorization": f"Bearer {token}"}
            typed = {
                "Accept": "application/json",
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
            }
            cached = self._bearer_headers = (token, typed, bare)
        return cached[2] if call.method == "GET" and call.payload is None else cached[1]

    def _count_request(self, template: str, outcome: str) -> None:
        key = (template, outcome)
        child = self._request_counters.get(key)
        if child is None:
            child = self._request_counters[key] = self._metrics.api_requests.labels(*key)
        child.inc()

    async def _send(self, call: _Call, headers: dict[str, str]) -> tuple[int, bytes, str | None]:
        """One HTTP exchange → (status, body, Retry-After); transport failures → ApiUnavailable."""
        template, what, deadline = call.template, call.what, call.deadline
        await self._limiter.acquire(deadline)
        try:
            timeout, client_timeout = self._timeout, self._client_timeout
            if deadline is not None:
                left = deadline - self._clock.monotonic()
                if left <= 0:
                    raise DeadlineExceeded(f"{what}: deadline reached before the request")
                if left < timeout:
                    timeout, client_timeout = left, aiohttp.ClientTimeout(total=left)
            try:
                async with self._session.request(
                    call.method,
                    call.url,
                    headers=headers,
                    params=call.params,
                    data=call.payload,
                    timeout=client_timeout,
                ) as response:
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
                    cap = self._body_caps.get(template, self._max_body)
                    raw = await self._read_body(response, cap)
                    if raw is None:
                        # Leaving the block unread closes the connection: the rest of the
                        # answer is never downloaded.
                        self._count_request(template, "body_too_large")
                        raise PayloadError(
                            BODY_TOO_LARGE.format(what=what, cap=cap), endpoint=template
                        )
            except TimeoutError:
                self._count_request(template, "timeout")
                raise ApiUnavailable(
                    f"{what}: no answer within {timeout:g} s", endpoint=template
                ) from None
            except aiohttp.ClientConnectorCertificateError as exc:
                self._count_request(template, "tls_error")
                # verification stays on: say what to fix rather than offer to skip it
                raise ApiUnavailable(
                    f"{what}: the server's TLS certificate is not trusted "
                    f"({exc.certificate_error.__class__.__name__}); check api.base_url and "
                    "the system's CA certificates",
                    endpoint=template,
                ) from None
            except aiohttp.ClientConnectorError as exc:
                # no connection was made: the request certainly did not reach the vendor
                self._count_request(template, "connection_error")
                raise ApiUnavailable(
                    f"{what}: connection failed ({type(exc).__name__})",
                    endpoint=template,
                    sent=False,
                ) from None
            except aiohttp.ClientError as exc:
                self._count_request(template, "connection_error")
                raise ApiUnavailable(
                    f"{what}: connection failed ({type(exc).__name__})", endpoint=template
                ) from None
        finally:
            self._limiter.release()
        self._count_request(template, str(status))
        return status, raw, retry_after

    async def _read_body(self, response: aiohttp.ClientResponse, cap: int) -> bytes | None:
        """The body, or None when it is larger than the cap (at most cap + 1 bytes are read)."""
        declared = response.content_length
        if declared is not None and declared > cap:
            return None
        if declared is not None and "Content-Encoding" not in response.headers:
            # a plain body of a declared length within the cap (every status): aiohttp reads
            # that many bytes and no more, so one read does what the loop below does
            return await response.read()
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await response.content.read(cap + 1 - size)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)

    def _interpret(self, status: int, raw: bytes, retry_after: str | None, call: _Call) -> Any:
        template, what, auth = call.template, call.what, call.auth
        if 200 <= status < 300:
            if not raw.strip():
                return None
            try:
                return call.decode(raw)
            except ValueError:
                raise BodyNotJson(
                    f"{what}: HTTP {status} but the body is not JSON", endpoint=template
                ) from None
        if auth == "login" and status in (400, 401, 403):
            raise AuthenticationError(LOGIN_REFUSED.format(status=status))
        if status == 429:
            wait = self._retry_after(retry_after)
            raise ApiUnavailable(
                f"{what}: HTTP 429 (rate limited)",
                endpoint=template,
                status=429,
                retry_after=wait,
                sent=False,  # refused before being carried out
            )
        if status >= 500 or status == 408:
            raise ApiUnavailable(f"{what}: HTTP {status}", endpoint=template, status=status)
        if status == 404 and auth != "bearer":
            # The auth endpoints always exist: a 404 means the URL is built wrong.
            raise ApiAddressError(
                AUTH_NOT_FOUND.format(what=what, root=self._root), status=404, endpoint=template
            )
        if auth == "refresh":
            raise ApiError(
                f"token refresh refused (HTTP {status})", status=status, endpoint=template
            )
        hint = _HINTS.get(status, "unexpected answer")
        said = _error_text(raw)
        raise ApiError(
            f"{what}: HTTP {status}: {hint}" + (f" (the vendor said: {said})" if said else ""),
            status=status,
            endpoint=template,
        )

    def _retry_after(self, value: str | None) -> float | None:
        """Retry-After as seconds: a number, or an HTTP date relative to the clock."""
        if value is None:
            return None
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - self._clock.time())


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
