"""The vendor token pair: log in once, refresh before expiry, share one renewal.

The vendor allows at most 10 live tokens per account and each login mints one (logging out
the oldest — possibly the owner's phone), so the client logs in once and then refreshes.
:class:`TokenManager` serialises renewals with one lock: any number of callers arriving while
the token is expiring cause a single refresh.  :class:`TokenStore` optionally keeps the pair
on disk so the daemon and the CLI share it instead of each logging in.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import structlog

from charged.chargeamps.errors import (
    ApiError,
    ApiUnavailable,
    AuthenticationError,
    PayloadError,
)
from charged.chargeamps.models import LoginResult, User
from charged.clock import Clock, SystemClock
from charged.metrics import Metrics

# What the reference documents for the access token, used when a JWT carries no `exp`.
DEFAULT_TOKEN_LIFETIME = 120 * 60.0
REFRESH_MARGIN = 30.0


@dataclass(frozen=True, slots=True)
class TokenPair:
    token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float  # epoch seconds (the JWT's `exp`)
    account: str  # account_key() of the account the pair belongs to


def account_key(email: str, base_url: str) -> str:
    """Ties a cached pair to one account on one API (a hash: the cache file holds no email)."""
    material = f"{email.strip().lower()}\n{base_url.rstrip('/')}".encode()
    return hashlib.sha256(material).hexdigest()


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT (epoch seconds), read without verifying; None if absent."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return float(exp)
    return None


class TokenStore:
    """A JSON file holding one token pair, replaced atomically and readable by its owner only."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def load(self) -> TokenPair | None:
        """The stored pair, or None when there is none or it cannot be read."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        token, refresh = data.get("token"), data.get("refreshToken")
        expires_at, account = data.get("expiresAt"), data.get("account")
        if not (isinstance(token, str) and isinstance(refresh, str) and isinstance(account, str)):
            return None
        if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
            return None
        return TokenPair(token, refresh, float(expires_at), account)

    def save(self, pair: TokenPair) -> None:
        """Write the pair: a 0600 temporary file in the same directory, then rename over."""
        body = json.dumps(
            {
                "account": pair.account,
                "token": pair.token,
                "refreshToken": pair.refresh_token,
                "expiresAt": pair.expires_at,
            }
        ).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".token-", dir=self.path.parent)  # created 0600
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class AuthTransport(Protocol):
    """The two HTTP calls the token manager needs (the client implements them)."""

    async def login(self, *, deadline: float | None = None) -> LoginResult: ...

    async def refresh(
        self, token: str, refresh_token: str, *, deadline: float | None = None
    ) -> tuple[str, str | None]: ...


class TokenManager:
    """Owns the token pair; hands out a valid bearer token, renewing it when due."""

    def __init__(
        self,
        transport: AuthTransport,
        *,
        account: str,
        clock: Clock | None = None,
        store: TokenStore | None = None,
        metrics: Metrics | None = None,
        logger: Any = None,
        refresh_margin: float = REFRESH_MARGIN,
    ) -> None:
        self._transport = transport
        self._account = account
        self._clock = clock or SystemClock()
        self._store = store
        self._metrics = metrics or Metrics()
        self._log = logger or structlog.get_logger("charged.chargeamps.auth")
        self._margin = refresh_margin
        self._lock = asyncio.Lock()
        self._pair: TokenPair | None = None
        self._refresh_at = 0.0
        self._store_loaded = store is None
        self._generation = 0  # +1 per finished renewal attempt; waiters see one happened
        self._last_failure: ApiUnavailable | None = None
        self._fatal: AuthenticationError | None = None
        self._store_warned = False
        self.user: User | None = None

    # ------------------------------------------------------------ public

    async def token(self, *, deadline: float | None = None) -> str:
        """A bearer token valid for at least the refresh margin (renewing it if needed)."""
        pair = self._pair
        if pair is not None and self._clock.time() < self._refresh_at:
            return pair.token
        self._raise_if_fatal()
        seen = self._generation
        async with self._lock:
            self._raise_if_fatal()
            pair = self._pair
            if pair is not None and self._clock.time() < self._refresh_at:
                return pair.token
            if self._generation != seen and self._last_failure is not None:
                # Someone renewed while we queued and the API was down: share that answer
                # instead of N callers each repeating the attempt.
                raise ApiUnavailable(str(self._last_failure), endpoint="/auth")
            if not self._store_loaded:
                self._store_loaded = True
                if self._adopt_stored():
                    return self._current().token
            return await self._renew(deadline)

    async def invalidate(self, token: str) -> None:
        """The API rejected ``token`` (401): renew on the next token(), unless already done."""
        # No await between the check and the change: atomic on the event loop.
        if self._pair is not None and self._pair.token == token:
            self._pair = replace(self._pair, expires_at=0.0)
            self._refresh_at = 0.0

    async def login(self, *, deadline: float | None = None) -> None:
        """Log in now with email and password, whatever the state of the current pair."""
        self._fatal = None
        async with self._lock:
            self._store_loaded = True
            self._last_failure = None
            try:
                await self._login(deadline)
            finally:
                self._generation += 1

    async def ensure(self, *, deadline: float | None = None) -> None:
        """Have a valid token: from the cache, by refresh, or by logging in (in that order)."""
        await self.token(deadline=deadline)

    # ------------------------------------------------------------ internals

    def _raise_if_fatal(self) -> None:
        if self._fatal is not None:
            # A wrong password stays wrong: never ask the vendor again in this process.
            raise AuthenticationError(str(self._fatal))

    def _current(self) -> TokenPair:
        assert self._pair is not None
        return self._pair

    def _adopt(self, pair: TokenPair, *, persist: bool = True) -> None:
        now = self._clock.time()
        lifetime = pair.expires_at - now
        # A very short-lived token would be "due" at once with a fixed margin; use at most half.
        self._refresh_at = pair.expires_at - min(self._margin, max(lifetime, 0.0) / 2)
        self._pair = pair
        if persist and self._store is not None:
            try:
                self._store.save(pair)
            except OSError as exc:
                if not self._store_warned:
                    self._store_warned = True
                    self._log.warning(
                        "token cache not writable; continuing without it",
                        path=str(self._store.path),
                        error=type(exc).__name__,
                    )

    def _adopt_stored(self) -> bool:
        """Take the cached pair if it is this account's; True if it is usable as it is."""
        assert self._store is not None
        stored = self._store.load()
        if stored is None or stored.account != self._account:
            return False
        self._adopt(stored, persist=False)
        self._log.info("using cached vendor token", path=str(self._store.path))
        return self._clock.time() < self._refresh_at

    def _pair_from(self, token: str, refresh_token: str) -> TokenPair:
        expires = jwt_expiry(token)
        now = self._clock.time()
        if expires is None or expires <= now:
            # No `exp`, or a just-issued token already "expired" by our clock (clocks apart):
            # assume the documented lifetime rather than renewing on every call; a 401 still
            # renews it if the guess is wrong.
            expires = now + DEFAULT_TOKEN_LIFETIME
        return TokenPair(token, refresh_token, expires, self._account)

    async def _renew(self, deadline: float | None) -> str:
        self._last_failure = None
        pair = self._pair
        try:
            if pair is not None:
                try:
                    return await self._refresh(pair, deadline)
                except (ApiError, PayloadError) as exc:
                    self._metrics.token_refreshes.labels("rejected").inc()
                    self._log.warning("token refresh refused; logging in again", reason=str(exc))
                except ApiUnavailable:
                    self._metrics.token_refreshes.labels("unavailable").inc()
                    if self._clock.time() < pair.expires_at:
                        # The token still works (we are only in the margin): keep using it.
                        return pair.token
                    raise
            await self._login(deadline)
            return self._current().token
        except ApiUnavailable as exc:
            self._last_failure = exc
            raise
        finally:
            self._generation += 1

    async def _refresh(self, pair: TokenPair, deadline: float | None) -> str:
        token, refresh_token = await self._transport.refresh(
            pair.token, pair.refresh_token, deadline=deadline
        )
        # The vendor may leave the refresh token out: the old one stays valid then.
        self._adopt(self._pair_from(token, refresh_token or pair.refresh_token))
        self._metrics.token_refreshes.labels("ok").inc()
        self._log.debug("vendor token refreshed")
        return token

    async def _login(self, deadline: float | None) -> None:
        try:
            result = await self._transport.login(deadline=deadline)
        except AuthenticationError as exc:
            self._fatal = exc
            self._log.error("vendor login refused", reason=str(exc))
            raise
        self._metrics.token_logins.inc()
        self.user = result.user
        self._adopt(self._pair_from(result.token, result.refresh_token))
        self._log.info("logged in to the vendor API")
