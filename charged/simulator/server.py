"""The simulated vendor cloud: an aiohttp application serving the Charge Amps external API.

Same paths under every configured version (``/api/v4``, ``/api/v5``), same JSON, same status
codes as the reference.  Login needs the ``apiKey`` header; everything else a live bearer JWT.
Faults are read per request from ``self.faults`` so tests can switch them while it runs.

Answers are as the reference describes them: a PUT's 200 and every error carry a plain
``application/octet-stream`` string (only refresh's 400 is JSON ``{error, messageCode}``), with
the documented codes (400 invalid, 401, 403 not allowed, 404 unknown).  Where the reference is
silent the answer is an option of :class:`SimulatorConfig`:

- a change to an offline charger (rebooting, or in ``faults.offline``) or a remote start with
  no car plugged in: accepted (200) with no effect by default — settings are kept by the cloud
  and read back, a command is lost — or, with ``conflicts``, 409 ``{"error", "messageCode"}``
  (a code the vendor documents only for register);
- a maxCurrent above the charger's ``installationCurrent``: 400 (``above_installation:
  reject``, the default) or clipped to it (``clip``).

``requests`` counts every request; ``writes`` and ``write_log`` (method, path; the latest
:data:`WRITE_LOG_LIMIT`) every request that could change something (anything but GET and the
auth endpoints), even one refused later, so a test can prove that nothing was sent.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from charged.clock import Clock, SystemClock
from charged.simulator import payloads
from charged.simulator.access import ChargerAccess
from charged.simulator.config import Account, SimulatorConfig
from charged.simulator.extras import VendorExtras
from charged.simulator.faults import FaultDice, Faults
from charged.simulator.fleet import ChargePoint, Fleet
from charged.simulator.grid import GroundTruth
from charged.simulator.payloads import BadRequest, JsonObject
from charged.simulator.physical import physical_connectors
from charged.simulator.tokens import TokenIssuer
from charged.simulator.wire import (
    conflict,
    error,
    json_body,
    ok,
    query_count,
    query_time,
    refresh_error,
    required_body,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REBOOT_SECONDS = 30.0  # fleet seconds a rebooting charger reports Offline
SERVED_LIMIT = 1_000_000  # recorded status bodies kept at most (oldest dropped)
WRITE_LOG_LIMIT = 10_000  # (method, path) of the latest change requests kept
GROUND_TRUTH_PATH = "/simulator/ground-truth"


@dataclass(frozen=True)
class ServedStatus:
    """One status answer sent with 200: what a collector should have stored."""

    charge_point_id: str
    fleet_time: float
    body: JsonObject


class Simulator:
    def __init__(self, config: SimulatorConfig, *, clock: Clock | None = None) -> None:
        config.validate()
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.account: Account = config.account
        self.faults: Faults = config.faults
        self.fleet = Fleet(
            chargers=config.chargers,
            seed=config.seed,
            clock=self.clock,
            speed=config.speed,
            start_time=config.start_time,
            installation_current=config.installation_current,
            installation_currents=config.installation_currents,
            physics=config.physics,
            loadbalanced=frozenset(config.loadbalanced),
            physical_connectors=physical_connectors,
            mixed=config.mixed_fleet,
        )
        self.tokens = TokenIssuer(self.clock)
        self.record_served = config.record_served
        self.served: list[ServedStatus] = []
        self.login_attempts = 0
        self.requests = 0
        self.writes = 0
        self.write_log: deque[tuple[str, str]] = deque(maxlen=WRITE_LOG_LIMIT)
        self.base_url = ""
        self._dice = FaultDice(self.faults, config.seed)
        self._access = ChargerAccess(config, self.fleet, self.faults)
        self.extras = VendorExtras(self._access)
        # answered by kind: "status" (one charger), "organisation" (all of them at once)
        self.request_counts: Counter[str] = Counter()
        self._stopping = asyncio.Event()
        self.hung_requests = 0  # requests the timeout fault is holding (tests wait on this)
        self._hung_changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    def charge_point_ids(self) -> list[str]:
        return self.fleet.charge_point_ids()

    def clear_served(self) -> None:
        self.served.clear()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        self._stopping.clear()
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        shown_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.base_url = f"http://{shown_host}:{bound[1]}"

    async def stop(self) -> None:
        # Requests hung by the timeout fault wait on this event: release them first.
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        for version in self.config.api_versions:
            base = f"/api/{version}"
            app.router.add_post(f"{base}/auth/login", self._login)
            app.router.add_post(f"{base}/auth/refreshtoken", self._refresh)
            app.router.add_post(f"{base}/auth/refreshToken", self._refresh)
            cps = f"{base}/chargepoints"
            # fixed paths before {cp} so "owned" and "callbacks" are not taken for ids
            if version != "v4":  # a v5 endpoint
                app.router.add_get(
                    f"{base}/organisations/{{org}}/chargepoints/statuses", self._org_statuses
                )
            app.router.add_get(f"{cps}/owned", self._owned)
            app.router.add_put(f"{cps}/callbacks/enable", self.extras.callbacks_enable)
            app.router.add_put(f"{cps}/callbacks/disable", self.extras.callbacks_disable)
            cp = f"{cps}/{{cp}}"
            app.router.add_get(cp, self._charge_point)
            app.router.add_get(f"{cp}/status", self._status)
            app.router.add_get(f"{cp}/settings", self._get_cp_settings)
            app.router.add_put(f"{cp}/settings", self._put_cp_settings)
            con = f"{cp}/connectors/{{cid}}"
            app.router.add_get(f"{con}/settings", self._get_connector_settings)
            app.router.add_put(f"{con}/settings", self._put_connector_settings)
            app.router.add_get(f"{cp}/chargingsessions", self._sessions)
            app.router.add_get(f"{con}/chargingsessions", self._sessions)
            app.router.add_get(f"{cp}/chargingsessions/{{sid}}", self._session)
            app.router.add_put(f"{con}/remotestart", self._remote_start)
            app.router.add_put(f"{con}/remotestop", self._remote_stop)
            app.router.add_put(f"{con}/schedule/override", self.extras.override_schedule)
            app.router.add_get(f"{cp}/schedule/override/status", self.extras.override_status)
            app.router.add_put(f"{cp}/reboot", self._reboot)
            app.router.add_get(f"{cp}/schedules", self.extras.list_schedules)
            app.router.add_post(f"{cp}/schedules", self.extras.create_schedule)
            app.router.add_put(f"{cp}/schedules", self.extras.update_schedule)
            app.router.add_get(f"{cp}/schedules/{{sched}}", self.extras.get_schedule)
            app.router.add_delete(f"{cp}/schedules/{{sched}}", self.extras.delete_schedule)
        # The simulator's own, outside the vendor's API: the ground truth tests and the
        # benchmark judge a balancer by.  Nothing in charged reads it.
        app.router.add_get(GROUND_TRUTH_PATH, self._ground_truth)
        return app

    # ------------------------------------------------------------------ middleware

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == GROUND_TRUTH_PATH:
            return await handler(request)  # the judge's window: no vendor auth, no faults
        self.requests += 1
        if request.method != "GET" and "/auth/" not in request.path:
            self.writes += 1
            self.write_log.append((request.method, request.path))
        delay = self._dice.delay()
        if delay > 0:
            await self.clock.sleep(delay)
        if "/auth/" in request.path:
            return await handler(request)
        if self._bearer_email(request) is None:
            return web.Response(status=401)
        decision = self._dice.decide()
        if decision == "timeout":
            # No answer until the server stops; the client gives up on its own deadline.
            await self._set_hung(+1)
            try:
                await self._stopping.wait()
            finally:
                await self._set_hung(-1)
            return web.Response(status=503)
        if decision == "rate_limit":
            return web.Response(
                status=429,
                body=b"Too many requests",
                content_type="application/octet-stream",
                headers={"Retry-After": f"{self.faults.retry_after:g}"},
            )
        if decision == "error":
            return web.Response(status=self._dice.error_status(), text="simulated server error")
        return await handler(request)

    async def _set_hung(self, delta: int) -> None:
        async with self._hung_changed:
            self.hung_requests += delta
            self._hung_changed.notify_all()

    async def wait_hung(self, count: int) -> None:
        """Return once at least ``count`` requests are being held by the timeout fault."""
        async with self._hung_changed:
            await self._hung_changed.wait_for(lambda: self.hung_requests >= count)

    def _bearer_email(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self.tokens.check(token.strip())

    # ------------------------------------------------------------------ auth

    async def _login(self, request: web.Request) -> web.StreamResponse:
        self.login_attempts += 1
        if request.headers.get("apiKey") != self.account.api_key:
            return web.Response(status=401)
        body = await json_body(request)
        if not isinstance(body, dict):
            return error(400, "login: the body must be a JSON object with email and password")
        email, password = body.get("email"), body.get("password")
        if (
            not isinstance(email, str)
            or email.casefold() != self.account.email.casefold()
            or password != self.account.password
        ):
            return web.Response(status=401)
        pair = self.tokens.mint(
            self.account.email, self.faults.token_lifetime, self.faults.token_exp_claim
        )
        return web.json_response(
            payloads.login_json(pair.token, pair.refresh_token, self.account.email)
        )

    async def _refresh(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("refreshToken"), str):
            return refresh_error("the body must be a JSON object with refreshToken")
        token = body.get("token")
        if token is not None and not isinstance(token, str):
            return refresh_error("token must be a string")
        pair = self.tokens.refresh(
            token, body["refreshToken"], self.faults.token_lifetime, self.faults.token_exp_claim
        )
        if pair is None:
            return refresh_error("the refresh token is unknown, expired or logged out")
        return web.json_response({"token": pair.token, "refreshToken": pair.refresh_token})

    # ------------------------------------------------------------------ ground truth

    def ground_truth(self) -> GroundTruth:
        """Per fuse and site phase, up to the fleet's now (a simulator with physics only)."""
        return self.fleet.ground_truth()

    async def _ground_truth(self, request: web.Request) -> web.StreamResponse:
        if self.fleet.physics is None:
            return error(404, "this simulator has no site physics (start it with a site)")
        return web.json_response(self.ground_truth().as_json())

    # ------------------------------------------------------------------ charge points

    async def _owned(self, request: web.Request) -> web.StreamResponse:
        email = self.account.email
        return web.json_response(
            [payloads.charge_point_json(cp, email) for cp in self.fleet.charge_points()]
        )

    async def _charge_point(self, request: web.Request) -> web.StreamResponse:
        cp = self._access.cp(request)
        expand = request.query.get("expand", "")
        return web.json_response(
            payloads.charge_point_json(
                cp, self.account.email, expand_settings="settings" in expand.split(",")
            )
        )

    async def _status(self, request: web.Request) -> web.StreamResponse:
        cp = self._access.cp(request)
        self.request_counts["status"] += 1
        if cp.id in self.faults.malformed:
            return web.Response(
                text=f'{{"id": "{cp.id}", "status": "Onl', content_type="application/json"
            )
        return web.json_response(self._status_body(cp))

    def _status_body(self, cp: ChargePoint) -> JsonObject:
        """A charger's status as served (and recorded, with ``record_served``)."""
        now = self.fleet.now()
        f = self.faults
        body = payloads.status_json(
            cp,
            offline=self._access.is_offline(cp),
            no_measurements=f.no_measurements,
            status_override=f.connector_status.get(cp.id),
            null_readings=cp.id in f.null_readings,
        )
        if self.record_served:
            if len(self.served) >= SERVED_LIMIT:
                del self.served[: SERVED_LIMIT // 2]
            self.served.append(ServedStatus(cp.id, now, body))
        return body

    async def _org_statuses(self, request: web.Request) -> web.StreamResponse:
        """Every charger of the organisation in one answer (v5)."""
        org = request.match_info["org"]
        if org != self.config.organisation_id:
            return error(404, f"unknown organisation {org}")
        self.request_counts["organisation"] += 1
        bodies: list[JsonObject] = []
        for listed in self.fleet.charge_points():
            cp = self.fleet.get(listed.id)
            assert cp is not None
            if cp.id in self.faults.malformed:
                # one broken entry in a list that is otherwise JSON: a shape, not a syntax error
                bodies.append({"id": cp.id, "status": "Online", "connectorStatuses": "Onl"})
                continue
            bodies.append(self._status_body(cp))
        return web.json_response(bodies)

    async def _get_cp_settings(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(payloads.charge_point_settings_json(self._access.cp(request)))

    async def _put_cp_settings(self, request: web.Request) -> web.StreamResponse:
        cp = self._access.cp(request)
        body = await required_body(request)
        self._access.refuse_if_offline(cp)
        if cp.kind.owned_connector is not None:
            return error(403, f"charge point {cp.id} is shared: its settings are not yours")
        try:
            settings = payloads.parse_charge_point_settings(
                body,
                cp.id,
                cp.installation_current,
                has_down_light=cp.kind.has_down_light,
                current=cp.settings,
                clip=self._access.clip,
            )
        except BadRequest as exc:
            return error(400, str(exc))
        if cp.id not in self.faults.ignore_writes:
            cp.settings = settings
            self._access.settings_stored(cp)
        return ok()

    async def _get_connector_settings(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(payloads.connector_settings_json(self._access.connector(request)))

    async def _put_connector_settings(self, request: web.Request) -> web.StreamResponse:
        connector = self._access.connector(request)
        body = await required_body(request)
        cp = connector.charge_point
        self._access.refuse_if_offline(cp)
        self._access.refuse_if_not_ours(connector)
        cp_id = cp.id
        try:
            settings = payloads.parse_connector_settings(
                body, cp_id, connector.connector_id, cp.installation_current, clip=self._access.clip
            )
        except BadRequest as exc:
            return error(400, str(exc))
        if cp_id not in self.faults.ignore_writes:
            # the model was brought up to now by _connector(): the change applies from here
            connector.settings = settings
            self._access.settings_stored(cp)
        return ok()

    # ------------------------------------------------------------------ sessions

    async def _sessions(self, request: web.Request) -> web.StreamResponse:
        cp = self._access.cp(request)
        connectors = (
            [self._access.connector(request)] if "cid" in request.match_info else cp.connectors
        )
        owned = cp.kind.owned_connector
        if owned is not None:
            # a single connector owner sees the sessions of their own connector only
            if "cid" in request.match_info:
                self._access.refuse_if_not_ours(connectors[0])
            connectors = [c for c in connectors if c.connector_id == owned]
        try:
            start = query_time(request, "startTime")
            end = query_time(request, "endTime")
            max_count = query_count(request)
        except BadRequest as exc:
            return error(400, str(exc))
        sessions = [
            s
            for c in connectors
            for s in c.sessions()
            if (start is None or s.start >= start) and (end is None or s.start <= end)
        ]
        sessions.sort(key=lambda s: (s.start, s.id), reverse=True)  # newest first
        if max_count is not None:
            sessions = sessions[:max_count]
        email = self.account.email  # the only account: the one the bearer token is for
        return web.json_response([payloads.session_json(s, email) for s in sessions])

    async def _session(self, request: web.Request) -> web.StreamResponse:
        cp = self._access.cp(request)
        wanted = request.match_info["sid"]
        for c in cp.connectors:
            for s in c.sessions():
                if str(s.id) == wanted:
                    return web.json_response(payloads.session_json(s, self.account.email))
        return error(404, f"no charging session {wanted} on charge point {cp.id}")

    # ------------------------------------------------------------------ commands

    async def _remote_start(self, request: web.Request) -> web.StreamResponse:
        connector = self._access.connector(request)
        body = await required_body(request)
        self._access.refuse_if_offline(connector.charge_point)
        self._access.refuse_if_not_ours(connector)
        try:
            payloads.parse_remote_start(body)
        except BadRequest as exc:
            return error(400, str(exc))
        if self._access.is_offline(connector.charge_point):
            return ok()  # accepted by the cloud; the charger never hears of it
        if not connector.remote_start() and self.config.conflicts:
            return conflict("no vehicle is plugged into this connector", "NoVehicle")
        return ok()

    async def _remote_stop(self, request: web.Request) -> web.StreamResponse:
        connector = self._access.connector(request)
        await required_body(request)
        self._access.refuse_if_offline(connector.charge_point)
        self._access.refuse_if_not_ours(connector)
        if not self._access.is_offline(connector.charge_point):
            connector.remote_stop()
        return ok()

    async def _reboot(self, request: web.Request) -> web.StreamResponse:
        cp = self._access.cp(request)
        await required_body(request)
        self._access.refuse_if_offline(cp)
        if not self._access.is_offline(cp):
            cp.offline_until = self.fleet.now() + REBOOT_SECONDS
        return ok()

    @property
    def callbacks_enabled(self) -> set[str]:
        """The charge points whose callbacks are enabled."""
        return self.extras.callbacks_enabled

    def is_offline(self, cp: ChargePoint) -> bool:
        """Rebooting, or made offline by the ``offline`` fault."""
        return self._access.is_offline(cp)
