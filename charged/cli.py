"""The `charged` command: the top-level parser, and the commands without a module of their own.

Exit codes and the one-line failures are in :mod:`charged.exits`; the sub-command modules
(check, control, analysis) import them from there, never from here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import structlog

from charged import __version__
from charged.exits import (
    EXIT_CONFIG,
    EXIT_UNAVAILABLE,
    Fatal,
    translate_errors,
)

DEFAULT_CONFIG = "/etc/charged/config.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="charged",
        description="Collect data from and control Charge Amps EV chargers through the "
        "vendor cloud API; store it in MySQL/MariaDB or SQLite.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 69 database/API unreachable, "
        "77 login refused, 78 bad configuration.",
    )
    parser.add_argument("--version", action="version", version=f"charged {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-c",
            "--config",
            default=os.environ.get("CHARGED_CONFIG", DEFAULT_CONFIG),
            help=f"YAML config file (default: $CHARGED_CONFIG or {DEFAULT_CONFIG})",
        )

    run = sub.add_parser(
        "run",
        help="run the collector daemon",
        description="Run the collector: apply pending migrations (unless --no-migrate), log in "
        "once, poll every charger every collector.interval seconds and store the rows, spooling "
        "them to disk while the database is away; serve /healthz, /readyz and /metrics (and the "
        "control API when enabled). SIGTERM or SIGINT stops it cleanly.",
        epilog="Exit codes: 0 stopped cleanly, 1 error, 69 database or API unreachable, "
        "77 login refused, 78 bad configuration.",
    )
    config_arg(run)
    run.add_argument(
        "--no-migrate", action="store_true", help="do not apply database migrations at start"
    )

    demo = sub.add_parser(
        "demo",
        help="simulator + collector + SQLite in one process; no config needed",
        description="Run the simulated vendor API, the collector and the session tracker in "
        "one process, storing into an SQLite file; one line per tick. Rows carry the fleet's "
        "time (07:00 UTC on --date, --speed times faster than real time). Ctrl-C ends it and "
        "prints how to look at the data.",
    )
    demo.add_argument(
        "--db",
        type=Path,
        default=Path("charged-demo.db"),
        help="SQLite file to store into (default: charged-demo.db); one that holds an "
        "earlier demo is moved aside to NAME.previous.db first",
    )
    demo.add_argument(
        "--chargers", type=_positive_int, default=30, help="simulated chargers (default: 30)"
    )
    demo.add_argument(
        "--interval",
        type=_interval,
        default=5.0,
        help="seconds between polls, at least 1 (default: 5)",
    )
    demo.add_argument(
        "--duration",
        type=_positive_float,
        default=None,
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    demo.add_argument(
        "--speed",
        type=_positive_float,
        default=60.0,
        help="simulated seconds per real second (default: 60)",
    )
    demo.add_argument("--seed", type=int, default=1, help="fleet random seed (default: 1)")
    demo.add_argument(
        "--date",
        type=_day,
        default=None,
        metavar="DAY",
        help="the fleet's day, e.g. 2026-01-05; its clock starts at 07:00 UTC that day "
        "(default: today, UTC)",
    )

    from charged.simulator import add_simulate_arguments

    simulate = sub.add_parser(
        "simulate",
        help="serve a simulated Charge Amps API",
        description="Serve the simulated Charge Amps cloud API (same paths and JSON as the "
        "vendor's) for a fleet of Aura chargers, with faults to inject. Ctrl-C or SIGTERM "
        "stops it.",
    )
    add_simulate_arguments(simulate)

    db = sub.add_parser(
        "db",
        help="database schema: upgrade, current, stats",
        description="Create or upgrade the database schema (db upgrade), show the applied "
        "migration (db current), or the rows, bytes and growth per day of each table "
        "(db stats). Needs only database.url from the config (or --db-url), not the vendor's "
        "secrets.",
    )
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for name, text in (
        ("upgrade", "apply all migrations"),
        ("current", "print the applied migration"),
        ("stats", "rows and bytes per table, and the growth per day"),
    ):
        action = db_sub.add_parser(name, help=text, description=f"{text[0].upper()}{text[1:]}.")
        config_arg(action)
        action.add_argument(
            "--db-url",
            metavar="URL",
            help="database URL (instead of the config's database.url)",
        )
        # the spelling of earlier versions, kept for scripts that use it
        action.add_argument("--url", dest="db_url", help=argparse.SUPPRESS)
        if name == "stats":
            action.add_argument("--json", action="store_true", help="print JSON instead")
    from charged.check_cli import add_check_command
    from charged.control.cli import add_control_commands

    add_check_command(sub)
    add_control_commands(sub)
    from charged.analysis.cli import add_analysis_commands

    add_analysis_commands(sub)
    from charged.balancer.cli import add_balance_commands

    add_balance_commands(sub)
    from charged.planning.cli import add_plan_commands

    add_plan_commands(sub)
    return parser


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _interval(text: str) -> float:
    # rows are stamped with whole-second poll times: two polls a second would collide
    value = float(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 second, got {text}")
    return value


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "run": _cmd_run,
        "demo": _cmd_demo,
        "simulate": _cmd_simulate,
        "db": _cmd_db,
    }
    try:
        handler: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = (
            getattr(args, "control_handler", None) or handlers[args.command]
        )
        return asyncio.run(handler(args))
    except Fatal as exc:
        print(f"charged: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


def _load(path: str, *, require_secrets: bool = True) -> Any:
    from charged.config import ConfigError, load_settings

    try:
        return load_settings(path, require_secrets=require_secrets)
    except ConfigError as exc:
        raise Fatal(str(exc), EXIT_CONFIG) from None


async def _cmd_run(args: argparse.Namespace) -> int:
    from charged.daemon.service import Daemon
    from charged.log import configure_logging
    from charged.signals import exit_on_stop_signals, install_stop_signals

    settings = _load(args.config)
    if args.no_migrate:
        settings = settings.model_copy(
            update={"database": settings.database.model_copy(update={"migrate_on_start": False})}
        )
    configure_logging(settings.log.level, settings.log.format)
    log = structlog.get_logger("charged")
    for warning in settings.warnings:
        log.warning(warning)
    stop = asyncio.Event()
    collector = Daemon(settings)
    _install_balancer(collector, settings, log)
    # A first signal ends the start (a login or a database that does not answer) or the
    # ticking; a second one, while starting or stopping, spools what is queued and goes.
    install_stop_signals(stop, collector.abort)
    try:
        log.info(
            "starting",
            version=__version__,
            config=settings.source,
            api=settings.api.base_url,
            interval=settings.collector.interval,
        )
        if await _start_unless_stopped(collector, stop, log):
            await collector.run(stop)
    except Exception as exc:
        fatal = translate_errors(exc)
        if fatal is None:
            raise
        raise fatal from None
    finally:
        await collector.close()
        log.info("stopped")
    exit_on_stop_signals(0)  # all is written or spooled: a late signal need not wait
    return 0


def _install_balancer(daemon: Any, settings: Any, log: Any) -> None:
    """Site meters, whenever the site has any (their readings are stored with the balancer
    off too); balancer.mode shadow or active: the balancer steps on every tick of the daemon."""
    from charged.balancer.configured import (
        params_from_settings,
        runtime_mode,
        schedule_from_settings,
        site_from_settings,
        target_from_settings,
    )
    from charged.balancer.plug import install_balancer
    from charged.meters.configured import install_meters

    # a rise of the building is answered once the next tick's lowered limits are in force
    reaction_s = settings.collector.interval + settings.balancer.settle_s
    building = install_meters(daemon, settings.site, settings.mqtt, reaction_s=reaction_s)
    if building is not None:
        log.info("site meters on", fuses=sorted(building.specs))
    mode = runtime_mode(settings.balancer)
    if mode is None or settings.site.fuse is None:
        return
    site = site_from_settings(settings.site)
    params = params_from_settings(settings.balancer)
    schedule = schedule_from_settings(settings.site)
    target = target_from_settings(settings.site)
    prices = _install_prices(daemon, settings)
    install_balancer(
        daemon,
        site,
        params,
        mode,
        building,
        schedule,
        target,
        tick_s=settings.collector.interval,
        prices=prices,
    )
    log.info("balancer on", mode=mode, fuses=len(site.fuses()), chargers=len(site.chargers))


def _install_prices(daemon: Any, settings: Any) -> Any:
    """prices.file or prices.url: the book the balancer asks, refreshed by a task."""
    if not settings.prices.enabled:
        return None
    from charged.prices.rule import rule_from_settings
    from charged.prices.source import PriceBook, PriceReader, PriceSource

    book = PriceBook(rule_from_settings(settings.prices))
    source = PriceSource.of(settings.prices, settings.site.timezone)
    reader = PriceReader(source, book, clock=daemon.clock, metrics=daemon.metrics)
    daemon.add_task("charged-prices", reader.run)
    return book


async def _start_unless_stopped(collector: Any, stop: asyncio.Event, log: Any) -> bool:
    """``collector.start()``, cut short (and False) if ``stop`` is set first."""
    from charged.tasks import cancel_and_wait

    starting = asyncio.ensure_future(collector.start())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not starting.done():
            if stop.is_set():
                log.info("stop requested while starting; the start is cut short")
            await cancel_and_wait(starting)
        await cancel_and_wait(stopped)
    if starting.cancelled():
        return False
    starting.result()  # the start's failure, if it failed
    return True


async def _cmd_demo(args: argparse.Namespace) -> int:
    from charged.demo import DemoOptions, run_demo
    from charged.log import configure_logging
    from charged.signals import exit_on_stop_signals, install_stop_signals

    # The demo prints its own progress; keep the service's log lines to warnings.
    configure_logging("warning", "console")
    stop = asyncio.Event()
    options = DemoOptions(
        db=args.db,
        chargers=args.chargers,
        interval=args.interval,
        duration=args.duration,
        speed=args.speed,
        seed=args.seed,
        day=args.date,
        command=_command_as_typed(),
    )
    demo = asyncio.ensure_future(run_demo(options, stop=stop))
    # a first Ctrl-C ends the demo after its tick; a second cuts the tick short
    install_stop_signals(stop, demo.cancel)
    try:
        await demo
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not demo.cancelled() or (current is not None and current.cancelling()):
            raise  # not the second signal's: ours
    except Exception as exc:
        fatal = translate_errors(exc)
        if fatal is None:
            raise
        raise fatal from None
    exit_on_stop_signals(0)
    return 0


def _command_as_typed() -> str:
    """How the reader runs charged: ``python3 dev.py`` says so in CHARGED_COMMAND (its venv's
    charged is not on PATH); else ``charged`` if that is on PATH, else this Python's module."""
    import shutil

    typed = os.environ.get("CHARGED_COMMAND", "").strip()
    if typed:
        return typed
    if shutil.which("charged"):
        return "charged"
    return f"{sys.executable} -m charged.cli"


async def _cmd_simulate(args: argparse.Namespace) -> int:
    from charged.log import configure_logging
    from charged.signals import install_stop_signals
    from charged.simulator import config_from_args, run_simulator
    from charged.tasks import cancel_and_wait

    configure_logging("info", "auto")
    # SIGINT and SIGTERM stop it with 0, also when it was started in the background by a
    # shell script (`charged simulate &`), which hands it SIGINT ignored: the loop's own
    # handlers replace the inherited SIG_IGN, so Ctrl-C or `kill -INT` still stop it.
    stop = asyncio.Event()
    install_stop_signals(stop, lambda: None)
    serving = asyncio.ensure_future(run_simulator(config_from_args(args), args.host, args.port))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not serving.done():
            await cancel_and_wait(serving)
        await cancel_and_wait(stopped)
    if serving.cancelled():
        return 0
    try:
        serving.result()  # it ended by itself: it could not start
    except OSError as exc:
        raise Fatal(
            f"cannot serve on {args.host}:{args.port}: {exc.strerror}", EXIT_UNAVAILABLE
        ) from None
    return 0


async def _print_stats(url: str, *, as_json: bool) -> None:
    import json

    from charged.storage.engine import create_engine, unavailable
    from charged.storage.stats import format_stats, stats_json, table_stats

    engine = create_engine(url)
    try:
        try:
            conn = await engine.connect().start()
        except (Exception, OSError) as exc:
            raise unavailable(engine.url, exc) from None
        try:
            stats = await table_stats(conn)
        finally:
            await conn.close()
    finally:
        await engine.dispose()
    if as_json:
        print(json.dumps(stats_json(stats), indent=2))
    else:
        print("\n".join(format_stats(stats)))


async def _cmd_db(args: argparse.Namespace) -> int:
    from charged.storage.migrate import current, upgrade

    url = args.db_url or _load(args.config, require_secrets=False).database.url
    try:
        if args.db_command == "upgrade":
            applied = await upgrade(url)
            print("applied: " + ", ".join(applied) if applied else "already up to date")
        elif args.db_command == "stats":
            await _print_stats(url, as_json=args.json)
        else:
            print(await current(url) or "no migration applied (empty database)")
    except Exception as exc:
        fatal = translate_errors(exc)
        if fatal is None:
            raise
        raise fatal from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
