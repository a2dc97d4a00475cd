"""The vendor client against a scripted fake API (aioresponses) on a fake clock.

The fake API is strict where the real one is: it refuses an expired or unknown bearer token
with 401, wants the apiKey on login, and counts logins and refreshes, so every test below
also proves the client never sends a stale token.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import itertools
import json
import random
import re
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from charged.chargeamps.client import LOGIN_REFUSED, ChargeAmpsClient
from charged.chargeamps.errors import (
    ApiError,
    ApiUnavailable,
    AuthenticationError,
    DeadlineExceeded,
    PayloadError,
)
from charged.chargeamps.models import ConnectorSettings
from charged.clock import FakeClock
from charged.metrics import Metrics

BASE = "http://127.0.0.1:9"
ROOT = f"{BASE}/api/v5"
EMAIL = "owner@example.org"
PASSWORD = "pa55-Very-Secret"
API_KEY = "apikey-0123456789abcdef"

Script = CallbackResult | BaseException


def make_jwt(exp: float, serial: int) -> str:
    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'HS256'})}.{b64({'exp': int(exp), 'jti': serial})}.c2lnbmF0dXJl"


def status_body(cp_id: str) -> dict[str, Any]:
    return {
        "id": cp_id,
        "status": "Online",
        "connectorStatuses": [
            {
                "chargePointId": cp_id,
                "connectorId": 1,
                "totalConsumptionKwh": 1.5,
                "chargingPowerKw": 3.4,
                "sessionType": "OnePhase",
                "status": "Charging",
                "measurements": [{"phase": "L1", "current": 15.0, "voltage": 230.0}],
                "startTime": "2026-01-01T06:00:00",
                "endTime": None,
                "sessionId": "17",
            }
        ],
    }


class FakeVendor:
    """The vendor cloud as far as these tests need it."""

    def __init__(self, mock: aioresponses, clock: FakeClock, lifetime: float = 7200.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.logins = 0
        self.refreshes = 0
        self.serial = 0
        self.live: dict[str, float] = {}  # token → exp
        self.refresh_tokens: set[str] = set()
        self.calls: list[tuple[str, str, float, dict[str, str], Any]] = []
        self.scripts: dict[str, deque[Script]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.issued: list[str] = []
        self.auth_down = False  # login and refresh answer 503
        mock.post(f"{ROOT}/auth/login", callback=self._login, repeat=True)
        mock.post(f"{ROOT}/auth/refreshtoken", callback=self._refresh, repeat=True)
        any_path = re.compile(re.escape(ROOT) + r"/chargepoints/.*")
        for method in ("get", "put", "post", "delete"):
            getattr(mock, method)(any_path, callback=self._data, repeat=True)

    def script(self, key: str, *responses: Script) -> None:
        """Answer the next calls to path ``key`` (after /api/v5) with ``responses``, in order."""
        self.scripts.setdefault(key, deque()).extend(responses)

    def count(self, kind: str, path: str | None = None) -> int:
        return sum(1 for c in self.calls if c[0] == kind and (path is None or c[1] == path))

    def _issue(self) -> tuple[str, str]:
        self.serial += 1
        token = make_jwt(self.clock.time() + self.lifetime, self.serial)
        refresh = f"refresh-secret-{self.serial}"
        self.live[token] = self.clock.time() + self.lifetime
        self.refresh_tokens.add(refresh)
        self.issued += [token, refresh]
        return token, refresh

    def _record(self, kind: str, url: URL, kwargs: dict[str, Any]) -> None:
        body = kwargs.get("data")
        parsed = json.loads(body) if body else None
        headers = dict(kwargs.get("headers") or {})
        path = url.raw_path.removeprefix("/api/v5")  # as sent: ids stay percent-encoded
        self.calls.append((kind, path, self.clock.monotonic(), headers, parsed))

    def _login(self, url: URL, **kwargs: Any) -> CallbackResult:
        self._record("login", url, kwargs)
        if self.auth_down:
            return CallbackResult(status=503, body="")
        body = json.loads(kwargs["data"])
        headers = kwargs["headers"]
        assert "Authorization" not in headers
        if headers.get("apiKey") != API_KEY or body != {"email": EMAIL, "password": PASSWORD}:
            return CallbackResult(status=401, body="")
        self.logins += 1
        token, refresh = self._issue()
        user = {"id": "u1", "firstName": "Owner", "email": EMAIL, "rfidTags": []}
        return CallbackResult(
            payload={"message": "ok", "token": token, "refreshToken": refresh, "user": user}
        )

    def _refresh(self, url: URL, **kwargs: Any) -> CallbackResult:
        self._record("refresh", url, kwargs)
        body = json.loads(kwargs["data"])
        if (
            body.get("refreshToken") not in self.refresh_tokens
            or body.get("token") not in self.live
        ):
            return CallbackResult(status=400, payload={"error": "invalid", "messageCode": "x"})
        self.refreshes += 1
        token, refresh = self._issue()
        return CallbackResult(payload={"token": token, "refreshToken": refresh})

    async def _data(self, url: URL, **kwargs: Any) -> CallbackResult:
        self._record("data", url, kwargs)
        headers = kwargs["headers"]
        assert "apiKey" not in headers, "the apiKey goes to the auth endpoints only"
        assert headers["Accept"] == "application/json"
        bearer = headers.get("Authorization", "").removeprefix("Bearer ")
        if self.live.get(bearer, 0.0) <= self.clock.time():
            return CallbackResult(status=401, body="")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let other requests overlap, as on a real network
            path = url.path.removeprefix("/api/v5")
            queue = self.scripts.get(path)
            if queue:
                answer = queue.popleft()
                if isinstance(answer, BaseException):
                    raise answer
                return answer
            match = re.fullmatch(r"/chargepoints/([^/]+)/status", path)
            if match:
                return CallbackResult(payload=status_body(match.group(1)))
            return CallbackResult(status=200, body="")
        finally:
            self.in_flight -= 1


class RecordingLogger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def _log(self, level: str, event: str, **kw: Any) -> None:
        self.lines.append((level, event, kw))

    def debug(self, event: str, **kw: Any) -> None:
        self._log("debug", event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._log("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._log("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._log("error", event, **kw)

    def text(self) -> str:
        return "\n".join(f"{lvl} {event} {kw!r}" for lvl, event, kw in self.lines)


class _FinishedUpload:
    """What aiohttp ≥ 3.14 reads from a request writer once the body is sent."""

    output_size = 0


class _CompatResponse(aiohttp.ClientResponse):
    # aioresponses 0.7.9 (the latest) does not pass the `stream_writer` that aiohttp 3.14
    # made required (pnuckowski/aioresponses#289); supply it until a release does.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _FinishedUpload())
        super().__init__(*args, **kwargs)


@pytest.fixture
def mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
        monkeypatch.setattr("aioresponses.core.ClientResponse", _CompatResponse)
    with aioresponses() as m:
        yield m


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def vendor(mock: aioresponses, fake_clock: FakeClock) -> FakeVendor:
    return FakeVendor(mock, fake_clock)


@pytest.fixture
def log() -> RecordingLogger:
    return RecordingLogger()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def make_client(
    http: aiohttp.ClientSession,
    clock: FakeClock,
    metrics: Metrics,
    log: RecordingLogger,
    **kwargs: Any,
) -> ChargeAmpsClient:
    options: dict[str, Any] = {
        "base_url": BASE + "/",
        "email": EMAIL,
        "password": PASSWORD,
        "api_key": API_KEY,
        "clock": clock,
        "metrics": metrics,
        "logger": log,
        "rng": random.Random(7),
    }
    options.update(kwargs)
    return ChargeAmpsClient(http, **options)


@pytest.fixture
def client(
    http: aiohttp.ClientSession, fake_clock: FakeClock, metrics: Metrics, log: RecordingLogger
) -> ChargeAmpsClient:
    return make_client(http, fake_clock, metrics, log)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# ---------------------------------------------------------------- tokens


async def test_login_happens_once_across_300_ticks_of_10_hours(
    client: ChargeAmpsClient, vendor: FakeVendor, fake_clock: FakeClock, metrics: Metrics
) -> None:
    chargers = ["CP1", "CP2", "CP3"]
    for _ in range(300):
        deadline = fake_clock.monotonic() + 27
        statuses = await asyncio.gather(*(client.status(cp, deadline=deadline) for cp in chargers))
        assert [s.id for s in statuses] == chargers
        await fake_clock.advance(120)
    assert vendor.logins == 1
    # 10 h with a 2 h token: renewed at 2, 4, 6 and 8 h, by refresh only.
    assert vendor.refreshes == 4
    assert vendor.count("data") == 900  # not one request was refused and repeated
    assert sample(metrics, "charged_token_logins_total") == 1
    assert sample(metrics, "charged_token_refreshes_total", result="ok") == 4


async def test_100_concurrent_requests_during_expiry_cause_exactly_one_refresh(
    client: ChargeAmpsClient, vendor: FakeVendor, fake_clock: FakeClock
) -> None:
    await client.login()
    await fake_clock.advance(7200)
    results = await asyncio.gather(*(client.status(f"CP{i}") for i in range(100)))
    assert len(results) == 100
    assert (vendor.logins, vendor.refreshes) == (1, 1)
    assert vendor.count("data") == 100


async def test_a_401_renews_the_token_and_retries_once(
    client: ChargeAmpsClient, vendor: FakeVendor, metrics: Metrics
) -> None:
    await client.login()
    vendor.live.clear()  # the vendor revoked every token (e.g. the 10-token cap)
    status = await client.status("CP1")
    assert status.connector_statuses[0].session_id == 17
    assert vendor.count("data") == 2
    # The refresh was refused (old token unknown), so the client logged in again.
    assert vendor.count("refresh") == 1 and vendor.logins == 2
    assert sample(metrics, "charged_api_retries_total", endpoint="/chargepoints/{id}/status") == 0


async def test_a_401_with_a_working_refresh_does_not_log_in(
    client: ChargeAmpsClient, vendor: FakeVendor
) -> None:
    await client.login()
    vendor.script("/chargepoints/CP1/status", CallbackResult(status=401, body=""))
    await client.status("CP1")
    assert (vendor.logins, vendor.refreshes) == (1, 1)
    assert vendor.count("data", "/chargepoints/CP1/status") == 2


async def test_a_second_401_is_not_retried_again(
    client: ChargeAmpsClient, vendor: FakeVendor
) -> None:
    vendor.script(
        "/chargepoints/CP1/status",
        CallbackResult(status=401, body=""),
        CallbackResult(status=401, body=""),
    )
    with pytest.raises(ApiError) as caught:
        await client.status("CP1")
    assert caught.value.status == 401
    assert vendor.count("data") == 2


async def test_wrong_password_is_one_clear_error_and_no_retry_storm(
    http: aiohttp.ClientSession,
    vendor: FakeVendor,
    fake_clock: FakeClock,
    metrics: Metrics,
    log: RecordingLogger,
) -> None:
    client = make_client(http, fake_clock, metrics, log, password="wrong-password-x")
    with pytest.raises(AuthenticationError) as caught:
        await client.login()
    assert str(caught.value) == LOGIN_REFUSED.format(status=401)
    assert "check api.email / api.password / api.api_key" in str(caught.value)
    # Everyone else asking afterwards, even many at once, gets the same answer without
    # another login attempt.
    results = await asyncio.gather(
        *(client.status(f"CP{i}") for i in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, AuthenticationError) for r in results)
    assert vendor.count("login") == 1
    assert vendor.count("data") == 0
    assert "wrong-password-x" not in log.text()


async def test_an_auth_outage_is_retried_once_not_once_per_data_attempt(
    client: ChargeAmpsClient, vendor: FakeVendor, fake_clock: FakeClock
) -> None:
    vendor.auth_down = True
    with pytest.raises(ApiUnavailable) as caught:
        await client.status("CP1", deadline=fake_clock.monotonic() + 27)
    assert "no token" in str(caught.value)
    assert vendor.count("login") == 4  # max_attempts of the login itself, not 4 × 4
    assert vendor.count("data") == 0
    vendor.auth_down = False
    assert (await client.status("CP1")).id == "CP1"
    assert vendor.logins == 1


async def test_login_sends_the_api_key_and_data_calls_the_bearer_token(
    client: ChargeAmpsClient, vendor: FakeVendor
) -> None:
    await client.status("CP1")
    kinds = [c[0] for c in vendor.calls]
    assert kinds == ["login", "data"]
    login_headers, data_headers = vendor.calls[0][3], vendor.calls[1][3]
    assert login_headers["apiKey"] == API_KEY and "Authorization" not in login_headers
    assert data_headers["Authorization"] == f"Bearer {vendor.issued[0]}"
    assert client.user is not None and client.user.first_name == "Owner"


async def test_a_get_carries_no_content_type_and_every_other_method_keeps_it(
    client: ChargeAmpsClient, vendor: FakeVendor
) -> None:
    await client.status("CP1")
    await client.override_schedule("CP1", 1)  # a PUT without a body
    await client.reboot("CP1")  # a PUT with one
    get, put_bare, put_body = (c[3] for c in vendor.calls[1:])
    assert "Content-Type" not in get  # as the public client sends it: no body, no type
    assert put_bare["Content-Type"] == "application/json"
    assert put_body["Content-Type"] == "application/json"
    assert get["Authorization"] == put_body["Authorization"] == f"Bearer {vendor.issued[0]}"


# ---------------------------------------------------------------- retries


async def test_5xx_is_retried_with_backoff_then_given_up_within_the_tick(
    client: ChargeAmpsClient, vendor: FakeVendor, fake_clock: FakeClock, metrics: Metrics
) -> None:
    await client.login()
    path = "/chargepoints/CP1/status"
    vendor.script(path, *(CallbackResult(status=503, body="busy") for _ in range(10)))
    start = fake_clock.monotonic()
    deadline = start + 27
    with pytest.raises(ApiUnavailable) as caught:
        await client.status("CP1", deadline=deadline)
    assert "gave up after 4 attempt(s)" in str(caught.value)
    assert "HTTP 503" in str(caught.value)
    times = [c[2] for c in vendor.calls if c[1] == path]
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # full jitter under a ceiling that doubles: 0.5, 1, 2 s
    for gap, ceiling in zip(gaps, (0.5, 1.0, 2.0), strict=True):
        assert 0 <= gap <= ceiling
    assert fake_clock.monotonic() <= deadline
    assert sample(metrics, "charged_api_retries_total", endpoint="/chargepoints/{id}/status") == 3
    assert (
        sample(
            metrics,
            "charged_api_requests_total",
            endpoint="/chargepoints/{id}/status",
            status="503",
        )
        == 4
    )


async def test_a_5xx_burst_that_ends_is_ridden_out(
    client: ChargeAmpsClient, vendor: FakeVendor
) -> None:
    vendor.script(
        "/chargepoints/CP1/status", CallbackResult(status=502), CallbackResult(status=500)
    )
    status = await client.status("CP1")
    assert status.id == "CP1"
    assert vendor.count("data") == 3


async def test_backoff_never_waits_past_the_deadline(
    http: aiohttp.ClientSession,
    vendor: FakeVendor,
    fake_clock: FakeClock,
    metrics: Metrics,
    log: RecordingLogger,
) -> None:
    client = make_client(
        http, fake_clock, metrics, log, max_attempts=20, backoff_base=4.0, backoff_max=60.0
    )
    await client.login()
    vendor.script("/chargepoints/CP1/status", *(CallbackResult(status=500) for _ in range(50)))
    deadline = fake_clock.monotonic() + 27
    with pytest.raises(ApiUnavailable) as caught:
        await client.status("CP1", deadline=deadline)
    assert "deadline reached" in str(caught.value)
    assert fake_clock.monotonic() < deadline
    assert 1 <= vendor.count("data") < 20


async def test_timeouts_are_retried_then_given_up(
    client: ChargeAmpsClient, vendor: FakeVendor, metrics: Metrics, fake_clock: FakeClock
) -> None:
    await client.login()
    vendor.script("/chargepoints/CP1/status", *(TimeoutError() for _ in range(4)))
    deadline = fake_clock.monotonic() + 27
    with pytest.raises(ApiUnavailable) as caught:
        await client.status("CP1", deadline=deadline)
    assert "no answer within" in str(caught.value)
    assert vendor.count("data") == 4
    assert (
        sample(
            metrics,
            "charged_api_requests_total",
            endpoint="/chargepoints/{id}/status",
            status="timeout",
        )
        == 4
    )
    assert fake_clock.monotonic() <= deadline


async def test_connection_errors_are_retried(client: ChargeAmpsClient, vendor: FakeVendor) -> None:
    await client.login()
    vendor.script("/chargepoints/CP1/status", aiohttp.ClientConnectionError("reset"))
    assert (await client.status("CP1")).id == "CP1"
    assert vendor.count("data") == 2


def connect_refused() -> aiohttp.ClientConnectorError:
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("127.0.0.1", 9, False, True, None, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))


START = "/chargepoints/CP1/connectors/1/remotestart"
REBOOT_PATH = "/chargepoints/CP1/reboot"


@pytest.mark.parametrize(
    "failure",
    [
        CallbackResult(status=503, body="busy"),
        CallbackResult(status=502, body=""),
        CallbackResult(status=408, body=""),
        TimeoutError(),
        aiohttp.ServerDisconnectedError(),  # the request went out, the answer never came
    ],
)
async def test_start_and_reboot_are_not_repeated_when_they_may_have_been_carried_out(
    client: ChargeAmpsClient, vendor: FakeVendor, metrics: Metrics, failure: Script
) -> None:
    await client.login()
    vendor.script(START, failure)
    vendor.script(REBOOT_PATH, failure)
    with pytest.raises(ApiUnavailable) as started:
        await client.remote_start("CP1", 1, rfid="0A1B2C3D")
    with pytest.raises(ApiUnavailable) as rebooted:
        await client.reboot("CP1")
    for caught in (started, rebooted):
        assert "not repeated: the charger may have carried it out" in str(caught.value)
        assert "\n" not in str(caught.value)
    assert vendor.count("data", START) == 1
    assert vendor.count("data", REBOOT_PATH) == 1
    assert sample(metrics, "charged_api_retries_total", endpoint=REBOOT_PATH) == 0


@pytest.mark.parametrize(
    "failure",
    [
        CallbackResult(status=429, body="", headers={"Retry-After": "1"}),
        connect_refused(),  # no connection: the request never reached the vendor
    ],
)
async def test_start_and_reboot_are_repeated_when_they_certainly_did_not_arrive(
    client: ChargeAmpsClient, vendor: FakeVendor, failure: Script
) -> None:
    await client.login()
    vendor.script(START, failure)
    vendor.script(REBOOT_PATH, failure)
    await client.remote_start("CP1", 1, rfid="0A1B2C3D")
    await client.reboot("CP1")
    assert vendor.count("data", START) == 2
    assert vendor.count("data", REBOOT_PATH) == 2


async def test_stop_and_whole_settings_writes_are_retried_after_a_5xx(
    client: ChargeAmpsClient, vendor: FakeVendor
) -> None:
    # Writing the whole settings object twice, or stopping a stopped connector, changes
    # nothing more than doing it once.
    await client.login()
    stop = "/chargepoints/CP1/connectors/1/remotestop"
    put = "/chargepoints/CP1/connectors/1/settings"
    vendor.script(stop, CallbackResult(status=503, body=""), TimeoutError())
    vendor.script(put, CallbackResult(status=502, body=""))
    await client.remote_stop("CP1", 1)
    await client.set_connector_settings(ConnectorSettings("CP1", 1, 10.0, False, "On", False))
    assert vendor.count("data", stop) == 3
    assert vendor.count("data", put) == 2


async def test_a_404_from_the_login_endpoint_points_at_the_base_url(
    mock: aioresponses, http: aiohttp.ClientSession, fake_clock: FakeClock, metrics: Metrics
) -> None:
    # api.base_url wrongly ending in /api/v5: the client asks for /api/v5/api/v5/auth/login
    mock.post(f"{BASE}/api/v5/api/v5/auth/login", status=404, body="")
    log = RecordingLogger()
    client = make_client(http, fake_clock, metrics, log, base_url=f"{BASE}/api/v5")
    with pytest.raises(ApiError) as caught:
        await client.login()
    message = str(caught.value)
    assert message == (
        f"POST /auth/login: HTTP 404: the vendor API has no such endpoint under "
        f"{BASE}/api/v5/api/v5; check api.base_url (the host only, e.g. "
        "https://eapi.charge.space, without /api/v5) and api.version"
    )
    assert "check the id" not in message


@pytest.mark.parametrize("code", [400, 403, 404, 409])
async def test_other_4xx_are_not_retried(
    client: ChargeAmpsClient, vendor: FakeVendor, metrics: Metrics, code: int
) -> None:
    await client.login()
    vendor.script("/chargepoints/CP1/status", CallbackResult(status=code, body="{}"))
    with pytest.raises(ApiError) as caught:
        await client.status("CP1")
    assert caught.value.status == code
    assert caught.value.endpoint == "/chargepoints/{id}/status"
    assert f"HTTP {code}" in str(caught.value) and "\n" not in str(caught.value)
    assert vendor.count("data") == 1
    assert sample(metrics, "charged_api_retries_total", endpoint="/chargepoints/{id}/status") == 0


async def test_429_honours_retry_after(
    client: ChargeAmpsClient, vendor: FakeVendor, fake_clock: FakeClock
) -> None:
    await client.login()
    path = "/chargepoints/CP1/status"
    vendor.script(path, CallbackResult(status=429, headers={"Retry-After": "7"}))
    assert (await client.status("CP1", deadline=fake_clock.monotonic() + 27)).id == "CP1"
    times = [c[2] for c in vendor.calls if c[1] == path]
    assert len(times) == 2
    assert 7.0 <= times[1] - times[0] <= 7.5


async def test_429_with_a_retry_after_beyond_the_deadline_gives_up_at_once(
    client: ChargeAmpsClient, vendor: FakeVendor, fake_clock: FakeClock
) -> None:
    await client.login()
    vendor.script(
        "/chargepoints/CP1/status", CallbackResult(status=429, headers={"Retry-After": "120"})
    )
    start = fake_clock.monotonic()
    with pytest.raises(ApiUnavailable) as caught:
        await client.status("CP1", deadline=start + 27)
    assert caught.value.status == 429
    assert fake_clock.monotonic() == start
    assert vendor.count("data") == 1


async def test_a_passed_deadline_sends_nothing(
    client: ChargeAmpsClient, vendor: FakeVendor, fake_clock: FakeClock
) -> None:
    await client.login()
    with pytest.raises(DeadlineExceeded):
        await client.status("CP1", deadline=fake_clock.monotonic() - 1)
    assert vendor.count("data") == 0


async def test_api_down_and_up_are_logged_once_each(
    client: ChargeAmpsClient, vendor: FakeVendor, log: RecordingLogger
) -> None:
    await client.login()
    vendor.script("/chargepoints/CP1/status", *(CallbackResult(status=503) for _ in range(8)))
    for _ in range(2):
        with pytest.raises(ApiUnavailable):
            await client.status("CP1")
    await client.status("CP1")
    await client.status("CP1")
    events = [event for _, event, _ in log.lines]
    assert events.count("vendor API unavailable") == 1
    assert events.count("vendor API reachable again") == 1


# ---------------------------------------------------------------- payloads


async def test_a_malformed_status_for_one_charger_does_not_stop_the_others(
    client: ChargeAmpsClient, vendor: FakeVendor, metrics: Metrics, log: RecordingLogger
) -> None:
    bad = {"id": "CP2", "status": "Online", "connectorStatuses": [{"connectorId": "one"}]}
    vendor.script("/chargepoints/CP2/status", *(CallbackResult(payload=bad) for _ in range(3)))
    vendor.script("/chargepoints/CP4/status", CallbackResult(body="<html>proxy error</html>"))
    ids = ["CP1", "CP2", "CP3", "CP4", "CP5"]
    for _ in range(3):
        results = await asyncio.gather(*(client.status(cp) for cp in ids), return_exceptions=True)
        good = [r.id for r in results if not isinstance(r, BaseException)]
        assert "CP1" in good and "CP3" in good and "CP5" in good
        failed = results[1]
        assert isinstance(failed, PayloadError)
        assert failed.charge_point_id == "CP2"
        assert failed.endpoint == "/chargepoints/{id}/status"
        assert "connectorId" in str(failed)
    assert (
        sample(metrics, "charged_payload_errors_total", endpoint="/chargepoints/{id}/status") == 4
    )
    warnings = [
        kw["charge_point_id"] for lvl, event, kw in log.lines if event.startswith("unparseable")
    ]
    assert warnings == ["CP2", "CP4"]  # logged once per charger, then only counted


async def test_owned_chargepoints_skips_an_unparseable_entry(
    client: ChargeAmpsClient, vendor: FakeVendor, metrics: Metrics
) -> None:
    owned = [
        {"id": "CP1", "name": "A", "type": "AURA", "connectors": []},
        {"id": "CP2", "name": "B", "connectors": "garbage"},
        {"id": "CP3", "name": "C", "type": "HALO", "connectors": None},
    ]
    vendor.script("/chargepoints/owned", CallbackResult(payload=owned))  # type: ignore[arg-type]
    found = await client.owned_chargepoints()
    assert [cp.id for cp in found] == ["CP1", "CP3"]
    assert sample(metrics, "charged_payload_errors_total", endpoint="/chargepoints/owned") == 1


# ---------------------------------------------------------------- commands and bodies


async def test_commands_send_the_reference_bodies(
    client: ChargeAmpsClient, vendor: FakeVendor
) -> None:
    settings = ConnectorSettings("CP 1/x", 2, 16.0, False, "On", True, installation_current=32.0)
    await client.set_connector_settings(settings)
    await client.remote_stop("CP1", 1)
    await client.reboot("CP1")
    await client.remote_start("CP1", 2, rfid="0A1B2C3D", external_transaction_id="tx-1")
    data = [(c[1], c[4]) for c in vendor.calls if c[0] == "data"]
    assert data == [
        (
            "/chargepoints/CP%201%2Fx/connectors/2/settings",
            {
                "chargePointId": "CP 1/x",
                "connectorId": 2,
                "maxCurrent": 16.0,
                "rfidLock": False,
                "mode": "On",
                "cableLock": True,
            },
        ),
        ("/chargepoints/CP1/connectors/1/remotestop", {}),
        ("/chargepoints/CP1/reboot", {}),
        (
            "/chargepoints/CP1/connectors/2/remotestart",
            {
                "rfidLength": 4,
                "rfidFormat": "Hex",
                "rfid": "0A1B2C3D",
                "externalTransactionId": "tx-1",
            },
        ),
    ]


async def test_settings_are_read_and_parsed(client: ChargeAmpsClient, vendor: FakeVendor) -> None:
    vendor.script(
        "/chargepoints/CP1/connectors/1/settings",
        CallbackResult(
            payload={
                "chargePointId": "CP1",
                "connectorId": 1,
                "maxCurrent": "10",
                "rfidLock": False,
                "mode": "Off",
                "cableLock": False,
                "installationCurrent": 32,
            }
        ),
    )
    vendor.script(
        "/chargepoints/CP1/settings",
        CallbackResult(
            payload={"id": "CP1", "dimmer": "Medium", "downLight": None, "maxCurrent": None}
        ),
    )
    conn = await client.connector_settings("CP1", 1)
    assert (conn.mode, conn.max_current, conn.installation_current) == ("Off", 10.0, 32.0)
    cp = await client.chargepoint_settings("CP1")
    assert cp.dimmer == "Medium" and cp.max_current is None


async def test_charging_sessions_send_the_time_window(
    client: ChargeAmpsClient, vendor: FakeVendor, mock: aioresponses
) -> None:
    from datetime import UTC, datetime

    sessions = [
        {
            "id": 5,
            "chargePointId": "CP1",
            "connectorId": 1,
            "sessionType": "OnePhase",
            "startTime": "2026-01-01T06:00:00Z",
            "totalConsumptionKwh": 4.2,
        }
    ]
    vendor.script(
        "/chargepoints/CP1/connectors/1/chargingsessions", CallbackResult(payload=sessions)
    )  # type: ignore[arg-type]
    found = await client.charging_sessions(
        "CP1", 1, start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 2), max_count=50
    )
    assert [s.id for s in found] == [5]
    (_, calls), *_ = [(k, v) for k, v in mock.requests.items() if "chargingsessions" in str(k[1])]
    assert calls[0].kwargs["params"] == {
        "startTime": "2026-01-01T00:00:00Z",
        "endTime": "2026-01-02T00:00:00Z",
        "maxCount": "50",
    }


def test_bad_constructor_input_is_one_clear_line(fake_clock: FakeClock) -> None:
    session: Any = object()
    with pytest.raises(ValueError, match=re.escape("api.base_url must start with https://")):
        ChargeAmpsClient(
            session, base_url="eapi.charge.space", email=EMAIL, password=PASSWORD, api_key=API_KEY
        )
    with pytest.raises(ValueError, match=re.escape("api.api_key is empty")):
        ChargeAmpsClient(session, base_url=BASE, email=EMAIL, password=PASSWORD, api_key="")


async def test_remote_start_rejects_an_unknown_rfid_format(client: ChargeAmpsClient) -> None:
    with pytest.raises(ValueError, match="rfid_format must be one of Hex, Dec, ReverseDec"):
        await client.remote_start("CP1", 1, rfid="123", rfid_format="Bin")


# ---------------------------------------------------------------- limits


async def test_concurrency_and_request_rate_are_capped(
    http: aiohttp.ClientSession,
    vendor: FakeVendor,
    fake_clock: FakeClock,
    metrics: Metrics,
    log: RecordingLogger,
) -> None:
    client = make_client(
        http, fake_clock, metrics, log, max_concurrency=3, max_requests_per_second=5
    )
    await client.login()  # one request out of the burst of 5
    start = fake_clock.monotonic()
    await asyncio.gather(*(client.status(f"CP{i}") for i in range(24)))
    assert vendor.max_in_flight <= 3
    # 4 left in the bucket, the other 20 at 5/s
    assert fake_clock.monotonic() - start == pytest.approx(4.0, abs=0.01)


# ---------------------------------------------------------------- secrets


async def test_no_log_line_or_error_text_contains_a_secret(
    http: aiohttp.ClientSession,
    vendor: FakeVendor,
    fake_clock: FakeClock,
    metrics: Metrics,
    log: RecordingLogger,
) -> None:
    client = make_client(http, fake_clock, metrics, log)
    errors: list[BaseException] = []
    await client.login()
    vendor.live.clear()
    await client.status("CP1")  # 401 → refresh refused → login again
    vendor.script("/chargepoints/CP1/status", *(CallbackResult(status=503) for _ in range(4)))
    vendor.script("/chargepoints/CP2/status", CallbackResult(body="not json"))
    for cp in ("CP1", "CP2"):
        try:
            await client.status(cp)
        except Exception as exc:
            errors.append(exc)
    wrong = make_client(http, fake_clock, metrics, log, password="another-Secret-pw")
    try:
        await wrong.login()
    except Exception as exc:
        errors.append(exc)
    assert len(errors) == 3
    texts = [log.text(), *(str(e) for e in errors), *(repr(e) for e in errors), repr(client)]
    texts.append(metrics.exposition().decode())
    secrets = [PASSWORD, "another-Secret-pw", API_KEY, *vendor.issued]
    assert len(vendor.issued) >= 4
    for text in texts:
        for secret in secrets:
            assert secret not in text


async def test_owned_chargepoints_that_is_not_a_list_is_a_payload_error(
    client: ChargeAmpsClient, vendor: FakeVendor
) -> None:
    vendor.script("/chargepoints/owned", CallbackResult(payload={"chargePoints": []}))
    with pytest.raises(PayloadError, match="expected a JSON array"):
        await client.owned_chargepoints()


async def test_chargepoint_can_expand_its_settings(
    client: ChargeAmpsClient, vendor: FakeVendor, mock: aioresponses
) -> None:
    cp = {
        "id": "CP1",
        "name": "Bay 1",
        "type": "AURA",
        "settings": {"id": "CP1", "dimmer": "Off", "maxCurrent": 32},
        "connectors": [{"chargePointId": "CP1", "connectorId": 1, "type": "Charger"}],
    }
    vendor.script("/chargepoints/CP1", CallbackResult(payload=cp))
    found = await client.chargepoint("CP1", expand_settings=True)
    assert found.settings is not None and found.settings.dimmer == "Off"
    params = [c.kwargs["params"] for k, v in mock.requests.items() for c in v if k[0] == "GET"]
    assert params == [{"expand": "settings"}]


async def test_cancelling_a_call_during_backoff_propagates_and_stops_retrying(
    http: aiohttp.ClientSession, vendor: FakeVendor
) -> None:
    # A clock that only moves when told, so the call can be caught inside its backoff wait
    # (it starts at the same instant as the vendor's, so the vendor's token times agree).
    manual = FakeClock(auto_advance=False)
    client = make_client(http, manual, Metrics(), RecordingLogger())
    await client.login()
    vendor.script("/chargepoints/CP1/status", *(CallbackResult(status=503) for _ in range(4)))
    task = asyncio.create_task(client.status("CP1"))
    await manual.advance(0)  # the first attempt fails and the backoff sleep begins
    assert vendor.count("data") == 1 and not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await manual.advance(60)
    assert vendor.count("data") == 1


# ---------------------------------------------------------------- body size cap


async def test_an_answer_larger_than_the_cap_is_a_counted_payload_error(
    http: aiohttp.ClientSession,
    vendor: FakeVendor,
    fake_clock: FakeClock,
    metrics: Metrics,
    log: RecordingLogger,
) -> None:
    cap = 4096
    client = make_client(http, fake_clock, metrics, log, max_body_bytes=cap)
    exact = json.dumps(status_body("CP1")).encode()
    padded = exact[:-1] + b" " * (cap - len(exact)) + b"}"  # exactly the cap: still read
    assert len(padded) == cap
    vendor.script("/chargepoints/CP1/status", CallbackResult(body=padded))
    assert (await client.status("CP1")).id == "CP1"
    vendor.script("/chargepoints/CP1/status", CallbackResult(body=padded + b" "))
    with pytest.raises(PayloadError, match="larger than 4096 bytes"):
        await client.status("CP1")
    template = "/chargepoints/{id}/status"
    assert sample(metrics, "charged_payload_errors_total", endpoint=template) == 1
    labels = {"endpoint": template, "status": "body_too_large"}
    assert sample(metrics, "charged_api_requests_total", **labels) == 1
    assert vendor.count("data", "/chargepoints/CP1/status") == 2  # not retried
    assert (await client.status("CP1")).id == "CP1"  # the next answer is read again


def test_the_cap_must_be_positive(http: aiohttp.ClientSession, fake_clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        make_client(http, fake_clock, Metrics(), RecordingLogger(), max_body_bytes=0)
