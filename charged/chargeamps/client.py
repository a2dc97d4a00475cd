"""The Charge Amps external API over aiohttp: typed calls, retries, rate limits, tokens.

Every request goes through one path (:meth:`Transport._request`, charged/chargeamps/
transport.py): bearer token from the :class:`TokenManager` (a 401 renews it and retries
once), a slot from the rate limiter, a per-attempt timeout that never outlives the caller's
deadline, and retries for transient failures only.  Metrics label requests by path
*template*, never by id or token.  This module builds the client and its login; the
vendor's calls are its bases: chargepoint_reads.py, charger_config.py, session_reads.py and
commands.py, on typed_calls.py (path templates: endpoints.py).
"""

from __future__ import annotations

import random
from typing import Any

import aiohttp
import structlog

from charged.chargeamps.auth import TokenManager, TokenStore, account_key
from charged.chargeamps.chargepoint_reads import ChargePointReads
from charged.chargeamps.charger_config import ChargerConfigCalls
from charged.chargeamps.commands import CommandCalls
from charged.chargeamps.endpoints import LOGIN, REFRESH
from charged.chargeamps.errors import (
    ApiError,
    ApiUnavailable,
    AuthenticationError,
    ChargeAmpsError,
    DeadlineExceeded,
    PayloadError,
)
from charged.chargeamps.models import LoginResult, User
from charged.chargeamps.parsers import parse_login, parse_refresh
from charged.chargeamps.ratelimit import RateLimiter
from charged.chargeamps.retry import BackoffPolicy
from charged.chargeamps.session_reads import SessionReads
from charged.chargeamps.transport import (
    DEFAULT_MAX_BODY_BYTES,
    LOGIN_REFUSED,
)
from charged.clock import Clock, SystemClock
from charged.metrics import Metrics


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


class ChargeAmpsClient(ChargePointReads, ChargerConfigCalls, SessionReads, CommandCalls):
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
