"""One logical call to the vendor API over aiohttp: tokens, rate limit, timeouts, retries.

Every request goes through :meth:`Transport._request`: the bearer token from the
:class:`~charged.chargeamps.auth.TokenManager` (a 401 renews it and retries once), a slot
from the rate limiter, a per-attempt timeout that never outlives the caller's deadline, and
retries for transient failures only.  Metrics label requests by path *template*, never by id
or token.  :class:`~charged.chargeamps.client.ChargeAmpsClient` builds the vendor's calls on
it; this is split from it so each stays readable (the client was past 1,000 lines).

What does not change from one request to the next is built once (the URL of each charger's
endpoint, the headers of a token, the timeout, the metric children): each of them was CPU
per request that a bare aiohttp loop does not spend (bench/README.md).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from yarl import URL

from charged.chargeamps.auth import TokenManager
from charged.chargeamps.errors import (
    ApiAddressError,
    ApiError,
    ApiUnavailable,
    AuthenticationError,
    BodyNotJson,
    DeadlineExceeded,
    PayloadError,
)
from charged.chargeamps.ratelimit import RateLimiter
from charged.chargeamps.retry import BackoffPolicy, call_with_retries
from charged.clock import Clock
from charged.metrics import Metrics

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
# The largest answer read from the vendor.  A status is ~1 KiB and the longest list of
# sessions a few hundred KiB: 4 MiB is far above any real answer, and bounds what one
# request in flight can hold (an unbounded read of a 300 MB answer took the daemon to 1 GB).
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
BODY_TOO_LARGE = "{what}: the answer is larger than {cap} bytes (api.max_body_bytes); not read"

# What of an error body goes into the message: the vendor's own words, one line, short.
ERROR_TEXT_LIMIT = 160

_HINTS = {
    400: "the vendor rejected the request as invalid",
    401: "the token was refused even after renewing it",
    403: "not allowed for this account (or the charger is owner-read-only)",
    404: "unknown charge point, connector or session; check the id",
    409: "conflict with the charger's current state; read it again and retry later",
}


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


class Transport:
    """The request path the client's calls share (its state is set up here; the client
    assigns ``_tokens``, whose login and refresh go through this path too)."""

    _tokens: TokenManager

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        root: str,
        api_key: str,
        clock: Clock,
        metrics: Metrics,
        logger: Any,
        rng: random.Random,
        request_timeout: float,
        max_body_bytes: int,
        policy: BackoffPolicy,
        limiter: RateLimiter,
    ) -> None:
        self._session = session
        self._root = root
        self._api_key = api_key
        self._clock = clock
        self._metrics = metrics
        self._log = logger
        self._rng = rng
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
        self._policy = policy
        self._limiter = limiter
        self._api_up: bool | None = None
        # answers that hold many chargers get a cap of their own (by path template)
        self._body_caps: dict[str, int] = {}

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
