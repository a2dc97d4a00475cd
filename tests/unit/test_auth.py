"""Token pair handling: JWT expiry, the shared renewal lock, fallbacks, the 0600 token cache."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from pathlib import Path

import pytest

from charged.chargeamps.auth import TokenManager, TokenPair, TokenStore, account_key, jwt_expiry
from charged.chargeamps.errors import ApiError, ApiUnavailable, AuthenticationError
from charged.chargeamps.models import LoginResult
from charged.clock import FakeClock
from charged.metrics import Metrics

ACCOUNT = account_key("owner@example.org", "http://127.0.0.1:9")


def make_jwt(exp: float, serial: int = 0) -> str:
    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'exp': int(exp), 'n': serial})}.c2ln"


class FakeAuth:
    """Stands in for the HTTP calls; each takes `work` seconds of fake time."""

    def __init__(self, clock: FakeClock, lifetime: float = 7200.0, work: float = 0.2) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.work = work
        self.logins = 0
        self.refreshes = 0
        self.serial = 0
        self.login_error: Exception | None = None
        self.refresh_error: Exception | None = None

    def _new_token(self) -> str:
        self.serial += 1
        return make_jwt(self.clock.time() + self.lifetime, self.serial)

    async def login(self, *, deadline: float | None = None) -> LoginResult:
        self.logins += 1
        await self.clock.sleep(self.work)
        if self.login_error is not None:
            raise self.login_error
        return LoginResult(self._new_token(), f"refresh-{self.serial}", None)

    async def refresh(
        self, token: str, refresh_token: str, *, deadline: float | None = None
    ) -> tuple[str, str | None]:
        self.refreshes += 1
        await self.clock.sleep(self.work)
        if self.refresh_error is not None:
            raise self.refresh_error
        return self._new_token(), None


def manager(auth: FakeAuth, clock: FakeClock, **kwargs: object) -> TokenManager:
    return TokenManager(auth, account=ACCOUNT, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_jwt_expiry_reads_exp_without_verifying() -> None:
    assert jwt_expiry(make_jwt(1_767_232_800)) == 1_767_232_800.0
    assert jwt_expiry("not-a-jwt") is None
    assert jwt_expiry("a.!!!.c") is None
    no_exp = base64.urlsafe_b64encode(b'{"sub":"x"}').decode().rstrip("=")
    assert jwt_expiry(f"h.{no_exp}.s") is None


async def test_first_token_logs_in_then_is_reused(fake_clock: FakeClock) -> None:
    auth = FakeAuth(fake_clock)
    tokens = manager(auth, fake_clock)
    first = await tokens.token()
    await fake_clock.advance(3600)
    assert await tokens.token() == first
    assert (auth.logins, auth.refreshes) == (1, 0)


async def test_refreshes_about_30_seconds_before_exp(fake_clock: FakeClock) -> None:
    auth = FakeAuth(fake_clock)
    metrics = Metrics()
    tokens = manager(auth, fake_clock, metrics=metrics)
    first = await tokens.token()
    await fake_clock.advance(7200 - 31)
    assert await tokens.token() == first
    await fake_clock.advance(2)
    second = await tokens.token()
    assert second != first
    assert (auth.logins, auth.refreshes) == (1, 1)
    assert metrics.token_refreshes.labels("ok")._value.get() == 1
    assert metrics.token_logins._value.get() == 1


async def test_many_concurrent_callers_during_expiry_share_one_refresh(
    fake_clock: FakeClock,
) -> None:
    auth = FakeAuth(fake_clock)
    tokens = manager(auth, fake_clock)
    await tokens.token()
    await fake_clock.advance(7200)
    results = await asyncio.gather(*(tokens.token() for _ in range(100)))
    assert len(set(results)) == 1
    assert (auth.logins, auth.refreshes) == (1, 1)


async def test_a_refused_refresh_falls_back_to_one_login(fake_clock: FakeClock) -> None:
    auth = FakeAuth(fake_clock)
    metrics = Metrics()
    tokens = manager(auth, fake_clock, metrics=metrics)
    await tokens.token()
    await fake_clock.advance(7200)
    auth.refresh_error = ApiError("token refresh refused (HTTP 400)", status=400, endpoint="x")
    await asyncio.gather(*(tokens.token() for _ in range(20)))
    assert (auth.logins, auth.refreshes) == (2, 1)
    assert metrics.token_refreshes.labels("rejected")._value.get() == 1


async def test_refresh_unavailable_keeps_a_token_that_has_not_expired(
    fake_clock: FakeClock,
) -> None:
    auth = FakeAuth(fake_clock)
    tokens = manager(auth, fake_clock)
    first = await tokens.token()
    await fake_clock.advance(7200 - 20)  # inside the margin, not yet expired
    auth.refresh_error = ApiUnavailable("HTTP 503")
    assert await tokens.token() == first
    await fake_clock.advance(30)  # now really expired: the outage is the caller's problem
    with pytest.raises(ApiUnavailable):
        await tokens.token()
    assert auth.logins == 1


async def test_waiters_share_an_outage_instead_of_repeating_it(fake_clock: FakeClock) -> None:
    auth = FakeAuth(fake_clock)
    tokens = manager(auth, fake_clock)
    auth.login_error = ApiUnavailable("POST /auth/login: gave up after 4 attempt(s): HTTP 503")
    results = await asyncio.gather(*(tokens.token() for _ in range(50)), return_exceptions=True)
    assert all(isinstance(r, ApiUnavailable) for r in results)
    assert auth.logins == 1
    # A later call (next tick) tries again, and succeeds once the API is back.
    auth.login_error = None
    assert await tokens.token()
    assert auth.logins == 2


async def test_wrong_password_is_fatal_and_never_retried(fake_clock: FakeClock) -> None:
    auth = FakeAuth(fake_clock)
    tokens = manager(auth, fake_clock)
    auth.login_error = AuthenticationError("login refused: wrong email, password or apiKey")
    results = await asyncio.gather(*(tokens.token() for _ in range(30)), return_exceptions=True)
    assert all(isinstance(r, AuthenticationError) for r in results)
    with pytest.raises(AuthenticationError):
        await tokens.token()
    assert auth.logins == 1


async def test_invalidate_renews_only_the_current_token(fake_clock: FakeClock) -> None:
    auth = FakeAuth(fake_clock)
    tokens = manager(auth, fake_clock)
    first = await tokens.token()
    await tokens.invalidate(first)
    second = await tokens.token()
    assert second != first and auth.refreshes == 1
    # A late 401 for the old token must not throw away the new one.
    await tokens.invalidate(first)
    assert await tokens.token() == second
    assert auth.refreshes == 1


async def test_short_lived_tokens_are_not_refreshed_on_every_call(fake_clock: FakeClock) -> None:
    auth = FakeAuth(fake_clock, lifetime=20)
    tokens = manager(auth, fake_clock)
    first = await tokens.token()
    await fake_clock.advance(5)
    assert await tokens.token() == first
    assert auth.refreshes == 0


# ---------------------------------------------------------------- the token cache


def test_token_store_writes_0600_atomically_and_reads_back(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "cache" / "token.json")
    assert store.load() is None
    pair = TokenPair("tok", "ref", 1_767_232_800.0, ACCOUNT)
    store.save(pair)
    mode = stat.S_IMODE(store.path.stat().st_mode)
    assert mode == 0o600
    assert store.load() == pair
    assert [p.name for p in store.path.parent.iterdir()] == ["token.json"]  # no temp left
    store.save(TokenPair("tok2", "ref2", 1.0, ACCOUNT))
    loaded = store.load()
    assert loaded is not None and loaded.token == "tok2"


@pytest.mark.parametrize("content", ["", "{not json", "[]", '{"token": 1}'])
def test_token_store_ignores_unreadable_content(tmp_path: Path, content: str) -> None:
    path = tmp_path / "token.json"
    path.write_text(content)
    assert TokenStore(path).load() is None


def test_token_pair_repr_hides_the_tokens() -> None:
    text = repr(TokenPair("secret-token", "secret-refresh", 1.0, ACCOUNT))
    assert "secret" not in text


async def test_a_cached_pair_of_this_account_saves_a_login(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    store = TokenStore(tmp_path / "token.json")
    cached = make_jwt(fake_clock.time() + 3600)
    store.save(TokenPair(cached, "r0", fake_clock.time() + 3600, ACCOUNT))
    auth = FakeAuth(fake_clock)
    tokens = manager(auth, fake_clock, store=store)
    assert await tokens.token() == cached
    assert (auth.logins, auth.refreshes) == (0, 0)


async def test_an_expired_cached_pair_is_refreshed_not_logged_in(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    store = TokenStore(tmp_path / "token.json")
    store.save(TokenPair("old", "r0", fake_clock.time() - 60, ACCOUNT))
    auth = FakeAuth(fake_clock)
    tokens = manager(auth, fake_clock, store=store)
    fresh = await tokens.token()
    assert (auth.logins, auth.refreshes) == (0, 1)
    saved = store.load()
    assert saved is not None and saved.token == fresh and saved.refresh_token == "r0"


async def test_a_cached_pair_of_another_account_is_ignored(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    store = TokenStore(tmp_path / "token.json")
    other = account_key("someone-else@example.org", "http://127.0.0.1:9")
    store.save(TokenPair("theirs", "r", fake_clock.time() + 3600, other))
    auth = FakeAuth(fake_clock)
    tokens = manager(auth, fake_clock, store=store)
    mine = await tokens.token()
    assert mine != "theirs"
    assert auth.logins == 1
    saved = store.load()
    assert saved is not None and saved.account == ACCOUNT


async def test_an_unwritable_cache_does_not_stop_the_client(
    fake_clock: FakeClock, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = TokenStore(blocker / "token.json")  # parent is a file: every save fails
    auth = FakeAuth(fake_clock)
    tokens = manager(auth, fake_clock, store=store)
    assert await tokens.token()
    assert auth.logins == 1


async def test_a_fresh_token_already_expired_by_our_clock_is_not_renewed_each_call(
    fake_clock: FakeClock,
) -> None:
    auth = FakeAuth(fake_clock, lifetime=-3600)  # the vendor's clock is far behind ours
    tokens = manager(auth, fake_clock)
    first = await tokens.token()
    await fake_clock.advance(600)
    assert await tokens.token() == first
    assert (auth.logins, auth.refreshes) == (1, 0)
