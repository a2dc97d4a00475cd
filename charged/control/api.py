"""The control API: the CLI's operations as JSON endpoints on the daemon's ops server.

Mounted under ``/api/control`` only when ``control.enabled`` is true; every route wants
``Authorization: Bearer <control.token>`` (scheme in any case, token compared in constant
time) and answers 401 otherwise, before looking at anything else in the request.  Bodies are
held to ``docs/control-api.yaml`` exactly.  A change answers its result (200 ok or
unchanged, 202 a command accepted whose effect did not show yet); errors carry a one-line
``error``: 400 invalid value or unknown field, 404 unknown charger or connector, 409 the
charger's state does not allow it (offline, no vehicle plugged in), 502 the vendor failed or
the change did not stick, 503 the controller (or the audit table) is not available.

A refused change is audited like any other when its target can be named: the path's charger
(and connector) parse, whatever is wrong with the body.  A path that does not name a charger
(``/chargers/%20/reboot``) is refused with 400 and no audit row: there is nothing to file it
under.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from charged.chargeamps.errors import ApiError, ChargeAmpsError
from charged.config_service import ControlSettings
from charged.control.audit import RELEASE_ACTION
from charged.control.operations import Controller
from charged.control.results import (
    ChangeResult,
    Outcome,
    UnknownTarget,
    chargepoint_settings_json,
    connector_settings_json,
)
from charged.control.validation import (
    InvalidValue,
    JsonValue,
    asked_fields,
    chargepoint_change_from_json,
    connector_change_from_json,
    empty_body,
    parse_charger_id,
    parse_connector_id,
    remote_start_from_json,
)

PREFIX = "/api/control"
MIN_TOKEN_CHARS = 16
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ControllerFactory = Callable[[], Controller]


def control_routes(
    control: ControlSettings, controller_factory: ControllerFactory
) -> Callable[[web.Application], None] | None:
    """The ``OpsServer(extra_routes=…)`` hook: None (no routes at all) unless enabled."""
    if not control.enabled:
        return None
    if not control.token:
        # config.py refuses enabled-without-token; never serve the routes open
        raise ValueError("control.enabled is true but control.token is missing")
    token = control.token

    def install(app: web.Application) -> None:
        install_control_routes(app, controller_factory=controller_factory, token=token)

    return install


class ControllerUnavailable(Exception):
    """Raised by a controller factory while the daemon cannot serve control requests yet."""


class _HttpProblem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def install_control_routes(
    app: web.Application,
    *,
    controller_factory: ControllerFactory,
    token: str,
    prefix: str = PREFIX,
) -> None:
    """Add the control routes to ``app``; ``token`` is the bearer token clients must send."""
    if len(token) < MIN_TOKEN_CHARS:
        # config.py refuses this already; a second guard costs nothing and fails closed.
        raise ValueError(f"the control token must be at least {MIN_TOKEN_CHARS} characters")
    api = _ControlApi(controller_factory, token)
    # Before routing answers: without a valid token, every method and path under the prefix
    # is 401, so a 404 or 405 never tells a stranger which routes exist.
    app.middlewares.append(api.gate(prefix))
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/chargers", api.chargers),
        ("GET", "/chargers/{cp}/settings", api.show_chargepoint),
        ("PATCH", "/chargers/{cp}/settings", api.set_chargepoint),
        ("POST", "/chargers/{cp}/reboot", api.reboot),
        ("GET", "/chargers/{cp}/connectors/{connector}/settings", api.show_connector),
        ("PATCH", "/chargers/{cp}/connectors/{connector}/settings", api.set_connector),
        ("POST", "/chargers/{cp}/connectors/{connector}/start", api.start),
        ("POST", "/chargers/{cp}/connectors/{connector}/stop", api.stop),
        ("POST", "/chargers/{cp}/connectors/{connector}/release", api.release),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, prefix + path, api.guard(handler))


class _ControlApi:
    def __init__(self, controller_factory: ControllerFactory, token: str) -> None:
        self._factory = controller_factory
        self._expected = token.encode()

    def gate(self, prefix: str) -> Any:
        """A middleware refusing any unauthenticated request under ``prefix`` with 401."""

        @web.middleware
        async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
            path = request.path
            under = path == prefix or path.startswith(prefix + "/")
            if under and not self._authorized(request):
                return _unauthorized()
            return await handler(request)

        return gate

    def guard(self, handler: Handler) -> Handler:
        """Token first, then the handler; expected problems become JSON errors."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self._authorized(request):  # the gate did already; fail closed anyway
                return _unauthorized()
            try:
                return await handler(request)
            except _HttpProblem as exc:
                return _error(exc.status, str(exc))
            except InvalidValue as exc:
                return _error(400, str(exc))
            except UnknownTarget as exc:
                return _error(404, str(exc.args[0]))
            except ControllerUnavailable as exc:
                return _error(503, f"control is not available yet: {exc}")
            except ApiError as exc:
                status = 404 if exc.status == 404 else 502
                return _error(status, str(exc))
            except ChargeAmpsError as exc:
                return _error(502, str(exc))

        return guarded

    def _authorized(self, request: web.Request) -> bool:
        # "Bearer <token>"; the scheme is case-insensitive (RFC 9110 §11.1), the token not
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        given = credentials.strip(" ").encode("utf-8", "surrogateescape")
        # compare_digest takes as long for a near miss as for a wild guess; it runs whatever
        # the scheme, so a wrong scheme answers no faster than a wrong token
        token_ok = hmac.compare_digest(given, self._expected)
        return token_ok and scheme.lower() == "bearer"

    # ------------------------------------------------------------ reading

    async def chargers(self, request: web.Request) -> web.StreamResponse:
        await _no_query(request)
        overview = await self._controller().overview()
        return web.json_response({"chargers": [o.to_json() for o in overview]})

    async def show_chargepoint(self, request: web.Request) -> web.StreamResponse:
        cp = parse_charger_id(request.match_info["cp"])
        controller = self._controller()
        settings = await controller.chargepoint_settings(cp)
        ids = await controller.connector_ids(cp)
        connectors = await asyncio.gather(*(controller.connector_settings(cp, n) for n in ids))
        return web.json_response(
            {
                "charger": chargepoint_settings_json(settings),
                "connectors": [connector_settings_json(c) for c in connectors],
            }
        )

    async def show_connector(self, request: web.Request) -> web.StreamResponse:
        cp, connector = _connector_target(request)
        settings = await self._controller().connector_settings(cp, connector)
        return web.json_response(connector_settings_json(settings))

    # ------------------------------------------------------------ changing

    async def set_chargepoint(self, request: web.Request) -> web.StreamResponse:
        cp = parse_charger_id(request.match_info["cp"])

        async def run(controller: Controller, body: object) -> ChangeResult:
            return await controller.set_chargepoint(cp, chargepoint_change_from_json(body))

        return await self._change(request, cp, None, "chargepoint_settings", run)

    async def set_connector(self, request: web.Request) -> web.StreamResponse:
        cp, connector = _connector_target(request)

        async def run(controller: Controller, body: object) -> ChangeResult:
            change = connector_change_from_json(body)
            return await controller.set_connector(cp, connector, change)

        return await self._change(request, cp, connector, "connector_settings", run)

    async def start(self, request: web.Request) -> web.StreamResponse:
        cp, connector = _connector_target(request)

        async def run(controller: Controller, body: object) -> ChangeResult:
            start = remote_start_from_json(body)
            return await controller.remote_start(cp, connector, start)

        return await self._change(request, cp, connector, "remote_start", run)

    async def stop(self, request: web.Request) -> web.StreamResponse:
        cp, connector = _connector_target(request)

        async def run(controller: Controller, body: object) -> ChangeResult:
            empty_body(body)
            return await controller.remote_stop(cp, connector)

        return await self._change(request, cp, connector, "remote_stop", run, optional=True)

    async def release(self, request: web.Request) -> web.StreamResponse:
        cp, connector = _connector_target(request)

        async def run(controller: Controller, body: object) -> ChangeResult:
            empty_body(body)
            return await controller.release_pin(cp, connector)

        return await self._change(request, cp, connector, RELEASE_ACTION, run, optional=True)

    async def reboot(self, request: web.Request) -> web.StreamResponse:
        cp = parse_charger_id(request.match_info["cp"])

        async def run(controller: Controller, body: object) -> ChangeResult:
            empty_body(body)
            return await controller.reboot(cp)

        return await self._change(request, cp, None, "reboot", run, optional=True)

    async def _change(
        self,
        request: web.Request,
        cp: str,
        connector: int | None,
        action: str,
        run: Callable[[Controller, object], Awaitable[ChangeResult]],
        *,
        optional: bool = False,
    ) -> web.StreamResponse:
        """Parse the body and run the change; a refused body is audited as rejected."""
        controller = self._controller()
        asked: dict[str, JsonValue] = {}
        try:
            body = await _json_body(request, optional=optional)
            asked = asked_fields(body)
            return _result(await run(controller, body))
        except InvalidValue as exc:
            rejected = await controller.reject(cp, connector, action, asked, str(exc))
            return _result(rejected)

    def _controller(self) -> Controller:
        return self._factory()


def _connector_target(request: web.Request) -> tuple[str, int]:
    return (
        parse_charger_id(request.match_info["cp"]),
        parse_connector_id(request.match_info["connector"]),
    )


async def _no_query(request: web.Request) -> None:
    if request.query:
        raise InvalidValue(f"unknown query parameter(s): {', '.join(sorted(request.query))}")


async def _json_body(request: web.Request, *, optional: bool = False) -> Any:
    """The decoded body; ``{}`` for a missing body where it is ``optional``."""
    raw = await request.read()
    if not raw.strip():
        if optional:
            return {}
        raise InvalidValue("the request needs a JSON object body")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidValue("the body is not valid JSON") from None
    except RecursionError:
        # '[' x 100000: the decoder gives up past the interpreter's recursion limit.  No
        # body of this API nests deeper than an object of scalars.
        raise InvalidValue("the body is nested too deeply to be a request of this API") from None


def _result(result: ChangeResult) -> web.Response:
    if result.outcome is Outcome.REJECTED:
        status = 404 if result.unknown_target else 400
    elif result.outcome is Outcome.FAILED:
        # the charger's state (offline, no vehicle…) is a conflict; anything else the vendor's
        status = 409 if result.conflict else 502
    elif result.audit_error is not None:
        status = 503  # the change went through but could not be audited: someone must look
    elif result.outcome is Outcome.UNVERIFIED:
        status = 202  # accepted by the vendor; its effect did not show (yet)
    else:
        status = 200
    return web.json_response(result.to_json(), status=status)


def _unauthorized() -> web.Response:
    return _error(
        401,
        "missing or wrong bearer token",
        headers={"WWW-Authenticate": 'Bearer realm="charged-control"'},
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)
