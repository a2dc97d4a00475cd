"""The vendor client, built from the settings: one place for the daemon, `charged control`
and `charged check`, so that a new client option is wired once.  ``chargeamps/`` itself
stays free of the config."""

from __future__ import annotations

from typing import Any

import aiohttp

from charged.chargeamps.auth import TokenStore
from charged.chargeamps.client import ChargeAmpsClient
from charged.clock import Clock
from charged.config import Settings
from charged.metrics import Metrics


def vendor_session(settings: Settings) -> aiohttp.ClientSession:
    """The HTTP session for the vendor client: its connection pool holds as many connections
    as ``api.max_concurrency`` lets requests run at once.  aiohttp's default pool holds 100,
    so a wider setting did nothing: the requests beyond the 100th waited for a connection.
    Every request takes a rate-limiter slot before it takes a connection, so the pool is
    never the narrower of the two."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings.api.max_concurrency, limit_per_host=0)
    )


def vendor_client(
    session: aiohttp.ClientSession,
    settings: Settings,
    *,
    clock: Clock,
    metrics: Metrics | None = None,
    logger: Any = None,
    request_timeout: float | None = None,
    max_attempts: int | None = None,
    token_cache: bool = True,
) -> ChargeAmpsClient:
    """A client for the configured account and API.  ``request_timeout`` and
    ``max_attempts`` replace the config's (e.g. a check that tries once, within its own time
    limit); ``token_cache=False`` ignores ``api.token_cache`` (a fresh login, nothing kept).

    Raises ConfigError when a secret is missing (read from the settings here, not before)."""
    api = settings.api
    return ChargeAmpsClient(
        session,
        base_url=api.base_url,
        api_version=api.version,
        email=settings.email,
        password=settings.password,
        api_key=settings.api_key,
        clock=clock,
        max_concurrency=api.max_concurrency,
        max_requests_per_second=api.max_requests_per_second,
        request_timeout=api.request_timeout if request_timeout is None else request_timeout,
        max_body_bytes=api.max_body_bytes,
        max_attempts=api.max_attempts if max_attempts is None else max_attempts,
        token_store=TokenStore(api.token_cache) if token_cache and api.token_cache else None,
        metrics=metrics,
        logger=logger,
    )
