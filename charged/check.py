"""`charged check`: the pre-flight checks an operator runs before enabling the service.

Each check gives :class:`CheckResult` lines (ok, warn, FAIL or skip; for a failure the exit
code it stands for); printing them is the CLI's job (``charged.check_cli``).  The checks
leave the service's state alone: the database is only read (its schema revision), a missing
SQLite file is not created, paths are tested for writability without creating anything, and
the vendor login is made exactly once with no retry (each login mints a token and the vendor
logs out the oldest of an account's ten) and its token is not written to the token cache.

Every check has its own time limit on the injected clock, so an unreachable host costs at
most that long and tests drive the limit by advancing a fake clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import structlog
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import URL

from charged.balancer.configured import site_from_settings
from charged.balancer.model import Site
from charged.chargeamps.client import ChargeAmpsClient
from charged.chargeamps.errors import ApiUnavailable, AuthenticationError, ChargeAmpsError
from charged.check_result import CheckResult as CheckResult
from charged.check_result import Status as Status
from charged.check_site import AccountChargers, AccountUnread, check_site, read_account
from charged.check_time import CheckTimeout as CheckTimeout
from charged.check_time import within as within
from charged.clock import Clock, SystemClock
from charged.config import DATABASE_URL_ENV, ConfigError, Settings, load_settings
from charged.daemon.vendor import vendor_client
from charged.exits import EXIT_CONFIG, EXIT_ERROR, EXIT_NOPERM, EXIT_UNAVAILABLE
from charged.storage.engine import (
    DatabaseAccessDenied,
    StorageError,
    check_database,
    create_engine,
    parse_url,
    unavailable,
)
from charged.storage.migrate import alembic_config

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


async def run_checks(
    config_path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    time_limit: float,
) -> list[CheckResult]:
    """Every check, in report order: config, database, api, the site (when the config
    describes one), each site meter, the prices (when configured), then the paths charged
    writes."""
    clock = clock or SystemClock()
    results, settings = check_config(config_path, environ=environ)
    if settings is None:
        reason = "not checked: the config could not be loaded"
        return [
            *results,
            CheckResult("database", Status.SKIP, reason),
            CheckResult("api", Status.SKIP, reason),
        ]
    site = site_from_settings(settings.site) if settings.site.fuse is not None else None
    # Database and API are independent: check them side by side, report them in order.
    database, (api, account) = await asyncio.gather(
        check_database_ready(settings, clock=clock, time_limit=time_limit),
        check_api(settings, clock=clock, time_limit=time_limit, site=site),
    )
    placement = check_site(settings, account) if site is not None else []
    meters: list[CheckResult] = []
    if settings.site.meters:
        from charged.check_meters import check_meters

        meters = await check_meters(settings, clock=clock, time_limit=time_limit)
    prices: list[CheckResult] = []
    if settings.prices.enabled:
        from charged.check_prices import check_prices

        prices = [await check_prices(settings, clock=clock, time_limit=time_limit)]
    return [*results, *database, *api, *placement, *meters, *prices, *check_paths(settings)]


def exit_code(results: Sequence[CheckResult]) -> int:
    """0 when nothing failed, otherwise the exit code of the first failure."""
    for result in results:
        if result.status is Status.FAIL:
            return result.exit_code or EXIT_ERROR
    return 0


# ---------------------------------------------------------------- config


def check_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> tuple[list[CheckResult], Settings | None]:
    try:
        settings = load_settings(path, environ=environ)
    except ConfigError as exc:
        return [CheckResult("config", Status.FAIL, mask_urls(str(exc)), EXIT_CONFIG)], None
    env = os.environ if environ is None else environ
    bad_url = invalid_database_url(
        settings.database.url,
        DATABASE_URL_ENV if env.get(DATABASE_URL_ENV) else f"{settings.source}: database.url",
    )
    if bad_url is not None:
        # The loader only checks the driver prefix; a URL SQLAlchemy cannot parse (a port
        # that is not a number) is a config error too, not something to find out later.
        return [CheckResult("config", Status.FAIL, bad_url, EXIT_CONFIG)], None
    summary = (
        f"{settings.source} (log level {settings.log.level}, "
        f"{settings.collector.interval:g} s interval)"
    )
    warnings = [CheckResult("config", Status.WARN, text) for text in settings.warnings]
    parts = urlsplit(settings.api.base_url)
    if parts.scheme == "http" and (parts.hostname or "") not in LOOPBACK_HOSTS:
        warnings.append(
            CheckResult(
                "config",
                Status.WARN,
                f"api.base_url {settings.api.base_url} is plain http: the password and apiKey "
                "would cross the network unencrypted; use https://",
            )
        )
    return [CheckResult("config", Status.OK, summary), *warnings], settings


# ---------------------------------------------------------------- database


async def check_database_ready(
    settings: Settings, *, clock: Clock, time_limit: float
) -> list[CheckResult]:
    """Reachable, and at which schema revision compared with this version's newest."""
    raw = settings.database.url
    problem = invalid_database_url(raw, "database.url")
    if problem is not None:  # check_config reports this first; kept for direct callers
        return [_db_fail(problem, EXIT_CONFIG)]
    url = parse_url(raw)
    shown = url.render_as_string(hide_password=True)
    missing = _missing_sqlite_file(url)
    if missing is not None:
        return [_sqlite_not_created(shown, missing, settings)]
    started = clock.monotonic()
    try:
        revision = await within(clock, time_limit, _schema_revision(raw))
    except CheckTimeout:
        return [
            _db_fail(
                f"{shown} — no answer within {time_limit:g} s; check that the server is running "
                "and the host and port in database.url"
            )
        ]
    except DatabaseAccessDenied as exc:
        return [_db_fail(str(exc), EXIT_NOPERM)]
    except StorageError as exc:
        return [_db_fail(str(exc))]
    took = clock.monotonic() - started
    return [_revision_result(shown, revision, took, settings)]


def invalid_database_url(raw: str, where: str) -> str | None:
    """One line (password masked) when SQLAlchemy cannot parse ``raw``, else None."""
    try:
        parse_url(raw)
    except (StorageError, ValueError):  # make_url: ValueError for a port that is not a number
        shown = mask_urls(raw)
        if shown == raw and "@" in raw:  # user info mask_urls cannot delimit: show none of it
            shown = "(not shown: it may hold a password)"
        return (
            f"{where}: {shown} is not a valid URL (is the port a number?); "
            "use mysql+asyncmy://USER:PASSWORD@HOST:3306/DB or sqlite+aiosqlite:///PATH"
        )
    return None


def _db_fail(message: str, code: int = EXIT_UNAVAILABLE) -> CheckResult:
    return CheckResult("database", Status.FAIL, message, code)


def _missing_sqlite_file(url: URL) -> Path | None:
    """The SQLite file, when it does not exist yet (connecting would create it)."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return None if path.exists() else path


def _sqlite_not_created(shown: str, path: Path, settings: Settings) -> CheckResult:
    blocker = _unwritable_reason(path.parent)
    if blocker is not None:
        return _db_fail(
            f"{shown} — the SQLite file cannot be created: {blocker}; "
            "choose a writable path in database.url"
        )
    return CheckResult(
        "database",
        Status.WARN,
        f"{shown} — the SQLite file does not exist yet (its directory is writable): "
        f"{_upgrade_hint(settings)}",
    )


def _upgrade_hint(settings: Settings) -> str:
    hint = f"run charged db upgrade -c {settings.source}"
    if settings.database.migrate_on_start:
        # a first install is fine as it is: `charged run` migrates before its first tick
        hint += " (or let charged run do it at start: database.migrate_on_start is on)"
    return hint


async def _schema_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        await check_database(engine)
        try:
            async with engine.connect() as conn:
                revision: str | None = await conn.run_sync(_current_revision)
        except (Exception, OSError) as exc:
            raise unavailable(engine.url, exc) from None
        return revision
    finally:
        await engine.dispose()


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _revision_result(
    shown: str, revision: str | None, took: float, settings: Settings
) -> CheckResult:
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    known = {script.revision for script in scripts.walk_revisions()}
    upgrade = _upgrade_hint(settings)
    reachable = f"{shown} — reachable in {took:.2f} s"
    if revision == head:
        return CheckResult(
            "database", Status.OK, f"{reachable}, schema at revision {head} (up to date)"
        )
    if revision is None:
        return CheckResult("database", Status.WARN, f"{reachable}, but it has no schema: {upgrade}")
    if revision in known:
        return CheckResult(
            "database",
            Status.WARN,
            f"{reachable}, schema at revision {revision}, not up to date (newest {head}): "
            f"{upgrade}",
        )
    return _db_fail(
        f"{reachable}, but its schema revision {revision} is unknown to this version of "
        f"charged (newest {head}): install the charged version that migrated it",
        EXIT_ERROR,
    )


# ---------------------------------------------------------------- vendor API


async def check_api_login(
    settings: Settings, *, clock: Clock, time_limit: float
) -> list[CheckResult]:
    """One fresh login with the configured account (no retry, no cached token)."""
    results, _ = await check_api(settings, clock=clock, time_limit=time_limit, site=None)
    return results


async def check_api(
    settings: Settings, *, clock: Clock, time_limit: float, site: Site | None
) -> tuple[list[CheckResult], AccountChargers | AccountUnread]:
    """The login check and, with a ``site``, the account's chargers read by that login
    (each step within its own ``time_limit``)."""
    api = settings.api
    where = f"{api.base_url} ({api.version})"
    started = clock.monotonic()
    try:
        async with aiohttp.ClientSession() as session:
            client = vendor_client(
                session,
                settings,
                clock=clock,
                request_timeout=min(api.request_timeout, time_limit),
                max_attempts=1,
                token_cache=False,
                # the outcome is this check's line; the client's own log lines would repeat it
                logger=structlog.wrap_logger(structlog.ReturnLogger()),
            )
            await within(clock, time_limit, client.login(force=True, deadline=started + time_limit))
            took = clock.monotonic() - started
            organisation = (
                await _organisation(client, api.organisation_id, clock, time_limit)
                if api.organisation_id is not None
                else []
            )
            account = (
                await _account(client, site, clock, time_limit)
                if site is not None
                else AccountUnread("no site")
            )
    except CheckTimeout:
        failed = _api_fail(f"{where} — no answer within {time_limit:g} s; {_NETWORK_HINT}")
    except AuthenticationError as exc:
        failed = _api_fail(str(exc), EXIT_NOPERM)
    except ApiUnavailable as exc:
        failed = _api_fail(f"cannot reach {where}: {exc}; {_NETWORK_HINT}")
    except ChargeAmpsError as exc:
        failed = _api_fail(
            f"{where} does not answer as the Charge Amps API does ({exc}); "
            "check api.base_url and api.version"
        )
    else:
        ok = CheckResult("api", Status.OK, f"{where} — login accepted in {took:.2f} s")
        return [ok, *organisation], account
    return [failed], AccountUnread("the vendor login failed (see the api line)")


async def _account(
    client: ChargeAmpsClient, site: Site, clock: Clock, time_limit: float
) -> AccountChargers | AccountUnread:
    """The owned list and the placed chargers' installation currents; a failure after a
    good login is a warning: the placement is then not known to be right or wrong."""
    started = clock.monotonic()
    try:
        return await within(
            clock, time_limit, read_account(client, site, deadline=started + time_limit)
        )
    except CheckTimeout:
        reason = f"listing them got no answer within {time_limit:g} s"
    except ChargeAmpsError as exc:
        reason = f"listing them failed ({exc})"
    return AccountUnread(f"{reason}; run charged check again", Status.WARN)


async def _organisation(
    client: ChargeAmpsClient, organisation_id: str, clock: Clock, time_limit: float
) -> list[CheckResult]:
    """One organisation statuses call: a failure is a warning (each tick then asks the
    chargers one by one), never fatal."""
    started = clock.monotonic()
    try:
        statuses, broken = await within(
            clock,
            time_limit,
            client.organisation_statuses(organisation_id, deadline=started + time_limit),
        )
    except CheckTimeout:
        reason = f"no answer within {time_limit:g} s"
    except ChargeAmpsError as exc:
        reason = str(exc)
    else:
        took = clock.monotonic() - started
        bad = f", {len(broken)} unreadable" if broken else ""
        return [
            CheckResult(
                "organisation",
                Status.OK,
                f"{organisation_id}: {len(statuses)} chargers' statuses in one call{bad} "
                f"({took:.2f} s)",
            )
        ]
    return [
        CheckResult(
            "organisation",
            Status.WARN,
            f"{organisation_id}: the statuses call failed ({reason}); each tick will ask every "
            "charger on its own: check api.organisation_id (and api.version: v5)",
        )
    ]


_NETWORK_HINT = "check api.base_url and the network (DNS, firewall, proxy)"


def _api_fail(message: str, code: int = EXIT_UNAVAILABLE) -> CheckResult:
    return CheckResult("api", Status.FAIL, message, code)


# ---------------------------------------------------------------- paths


def check_paths(settings: Settings) -> list[CheckResult]:
    """The directories charged writes at run time, as seen by the user running the check."""
    results = [_writable_directory("spool", settings.spool.directory, "spool.directory")]
    if settings.api.token_cache is not None:
        results.append(_token_cache(settings.api.token_cache))
    return results


def _writable_directory(check: str, directory: Path, key: str) -> CheckResult:
    display = directory.expanduser().absolute()
    blocker = _unwritable_reason(directory)
    if blocker is not None:
        return _unwritable(check, display, blocker, key)
    exists = os.path.isdir(display)
    return CheckResult(
        check, Status.OK, f"{display} ({'writable' if exists else 'can be created'})"
    )


def _token_cache(path: Path) -> CheckResult:
    """The token cache is replaced by a rename in its directory: the directory must be
    writable (or creatable); the line says whether the file is there yet."""
    display = path.expanduser().absolute()
    blocker = _unwritable_reason(display.parent)
    if blocker is not None:
        return _unwritable("token cache", display, blocker, "api.token_cache")
    if os.path.isdir(display):
        return _unwritable(
            "token cache", display, f"{display} is a directory, not a file", "api.token_cache"
        )
    if not os.path.exists(display):
        where = (
            "directory writable" if os.path.isdir(display.parent) else "directory can be created"
        )
        return CheckResult("token cache", Status.OK, f"{display} (does not exist yet; {where})")
    return CheckResult("token cache", Status.OK, f"{display} (exists; directory writable)")


def _unwritable(check: str, display: Path, blocker: str, key: str) -> CheckResult:
    return CheckResult(
        check,
        Status.WARN,
        f"{display}: {blocker}; fix the owner (the service's user must write there) or set {key}",
    )


def _unwritable_reason(directory: Path) -> str | None:
    """Why this user could not create files in ``directory`` (creating it first), or None."""
    path = directory.expanduser().absolute()
    existing = path
    # os.path.exists is False for any error (missing, or a file where a directory should be).
    while not os.path.exists(existing) and existing != existing.parent:
        existing = existing.parent
    if not os.path.isdir(existing):
        return f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable by uid {os.geteuid()}"
    return None


# ---------------------------------------------------------------- helpers


# user:password@ — the password runs to the last @ of the URL (an unescaped @ in it is common)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^\s/]*@", re.IGNORECASE)


def mask_urls(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ***."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}***@", text)
