"""The ops HTTP server: ``/healthz``, ``/readyz`` and ``/metrics`` (plus routes added later).

Bound to 127.0.0.1 unless told otherwise: metrics and health are for the local Prometheus,
the container health check and systemd, not for the world.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from charged.clock import Clock
from charged.metrics import Metrics
from charged.ops.health import ReadinessState, evaluate_readiness


class OpsServerError(Exception):
    """The server cannot start (port taken, address not available, …)."""


class OpsServer:
    def __init__(
        self,
        *,
        metrics: Metrics,
        readiness: Callable[[], ReadinessState],
        clock: Clock,
        host: str = "127.0.0.1",
        port: int = 9464,
        extra_routes: Callable[[web.Application], None] | None = None,
        logger: Any = None,
    ) -> None:
        self._metrics = metrics
        self._readiness = readiness
        self._clock = clock
        self._host = host
        self._requested_port = port
        self._extra_routes = extra_routes
        self._log = logger or structlog.get_logger("charged.ops")
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``port=0``); the requested one before start."""
        return self._port if self._port is not None else self._requested_port

    @property
    def host(self) -> str:
        return self._host

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_handler)
        if self._extra_routes is not None:
            self._extra_routes(app)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("OpsServer already started")
        # no access log: a scrape every few seconds would drown the useful lines
        runner = web.AppRunner(self.build_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OpsServerError(
                f"cannot listen on {self._host}:{self._requested_port} "
                f"({exc.strerror or exc}); free the port or set ops.port / ops.host"
            ) from exc
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._log.info("ops server listening", host=self._host, port=self._port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ---------------------------------------------------------------- handlers

    async def _healthz(self, _request: web.Request) -> web.Response:
        # answering at all is the point: the event loop is alive
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        try:
            state = self._readiness()
        except Exception as exc:  # a broken probe must say "not ready", not 500
            self._log.warning("readiness probe failed", error=type(exc).__name__)
            return web.json_response(
                {
                    "status": "not ready",
                    "reasons": [f"readiness check failed ({type(exc).__name__})"],
                },
                status=503,
            )
        result = evaluate_readiness(state, self._clock.time())
        return web.json_response(result.as_json(), status=200 if result.ready else 503)

    async def _metrics_handler(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
