"""The control commands of `charged`: chargers, settings, chargepoint, start, stop, reboot.

They read the daemon's config file and share its token cache (no extra login that would log
the owner's phone out).  Values are checked before anything is sent; a bad one is one line
and exit 2, audited as ``rejected`` for the chargers the command named (without logging in
to the vendor unless ``--all`` has to list them).  Every target is checked against the
account's chargers before any change goes out: one unknown charger refuses the whole command
(one line, exit 2, audited).  Rebooting or stopping more than one charger at once needs
``--yes`` (or a yes at the terminal's prompt).  Several targets run concurrently; the exit
code is 0 when every change is ok or unchanged, 1 when any failed, was unverified or could
not be audited, 2 when any was refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from charged.control.confirmation import (
    at_a_terminal,
    check_confirmation,
    confirmed,
    needs_asking,
)
from charged.control.operations import Controller
from charged.control.output import (
    EXIT_FAILED,
    exit_code,
    print_overview,
    print_results,
    print_settings,
)
from charged.control.results import ChangeResult, UnknownTarget
from charged.control.targets import Selection, selection_from_args
from charged.control.validation import (
    UNSET,
    ChargePointChange,
    ConnectorChange,
    InvalidValue,
    JsonValue,
    parse_dimmer,
    parse_max_current,
    parse_mode,
    parse_switch,
    remote_start,
)
from charged.exits import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, Fatal, translate_errors

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
DEFAULT_CONFIG = "/etc/charged/config.yaml"
UNKNOWN_HINT = "`charged chargers` lists the account's chargers"
EPILOG = (
    "Exit codes: 0 every change ok or unchanged, 1 a change failed, was not confirmed by the "
    "status or could not be audited, 2 refused (invalid value, unknown charger, missing "
    "--yes), 69 vendor API or database unreachable, 77 login refused, 78 bad configuration. "
    "Every attempt on a named charger, refused ones included, is audited in control_action."
)


def add_control_commands(subparsers: Any) -> dict[str, Handler]:
    """Add the control sub-commands to ``charged``'s sub-parsers; returns name → handler."""

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "-c",
            "--config",
            default=os.environ.get("CHARGED_CONFIG", DEFAULT_CONFIG),
            help=f"YAML config file (default: $CHARGED_CONFIG or {DEFAULT_CONFIG})",
        )
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")

    def chargers_arg(parser: argparse.ArgumentParser, *, connector: str | None) -> None:
        parser.add_argument(
            "charger", nargs="?", metavar="CP", help="charge point id(s), comma-separated"
        )
        if connector is not None:
            parser.add_argument("connector", nargs="?", metavar="CONNECTOR", help=connector)
        parser.add_argument("--all", action="store_true", help="every charger the account owns")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subparsers.add_parser(
            name, help=text, description=text, epilog=EPILOG
        )
        return parser

    chargers = subparsers.add_parser(
        "chargers",
        help="owned chargers with their live status",
        description="List the account's chargers with each connector's live status: state, "
        "current, power and the energy of the running session (read from the vendor; nothing "
        "is stored or changed).",
        epilog=EPILOG,
    )
    common(chargers)

    settings = subparsers.add_parser(
        "settings",
        help="show or change connector settings",
        description="Show (settings show) or change (settings set) charge point and connector "
        "settings; every change is read back and audited in control_action.",
    )
    settings_sub = settings.add_subparsers(dest="settings_command", required=True, metavar="ACTION")
    show = settings_sub.add_parser(
        "show",
        help="charge point and connector settings",
        description="Print the charge point's settings (dimmer, down light, max current, "
        "installation current) and each connector's (mode, max current, RFID and cable lock).",
        epilog=EPILOG,
    )
    common(show)
    chargers_arg(show, connector="connector id(s), comma-separated (default: all)")
    change = settings_sub.add_parser(
        "set",
        help="change connector settings (read, change, write, read back)",
        description="Change connector settings: each named connector's settings are read, "
        "changed, written back whole and read again; every field is audited.",
        epilog=EPILOG,
    )
    common(change)
    chargers_arg(change, connector="connector id(s), comma-separated (with --all: optional)")
    change.add_argument("--mode", help="On, Off or Schedule")
    change.add_argument(
        "--max-current", metavar="A", help="none (no limit), 0 (pause) or 6–32 amperes"
    )
    change.add_argument("--rfid-lock", metavar="on|off")
    change.add_argument("--cable-lock", metavar="on|off")

    point = subparsers.add_parser(
        "chargepoint",
        help="change charge point settings",
        description="Change charge point settings (chargepoint set): dimmer, down light, max "
        "current; read back and audited like connector settings.",
    )
    point_sub = point.add_subparsers(dest="chargepoint_command", required=True, metavar="ACTION")
    point_set = point_sub.add_parser(
        "set",
        help="dimmer, down light, max current",
        description="Change the dimmer, down light or max current of charge points: read, "
        "change, write back whole, read again; every field is audited.",
        epilog=EPILOG,
    )
    common(point_set)
    chargers_arg(point_set, connector=None)
    point_set.add_argument("--dimmer", help="Off, Low, Medium or High")
    point_set.add_argument("--down-light", metavar="on|off")
    point_set.add_argument("--max-current", metavar="A", help="none (no limit) or 6–32 amperes")

    start = command(
        "start",
        "start charging remotely for an RFID tag (nothing is sent where a session already "
        "runs; the status is read back for the new session)",
    )
    common(start)
    chargers_arg(start, connector="connector id(s), comma-separated")
    start.add_argument("--rfid", required=True, help="the tag id the session is started for")
    start.add_argument("--rfid-format", default="Hex", help="Hex (default), Dec or ReverseDec")
    start.add_argument("--rfid-length", help="tag length in bytes (default: from a Hex id)")

    stop = command(
        "stop",
        "stop charging remotely (nothing is sent to a connector without a session; the "
        "status is read back to see it stop)",
    )
    common(stop)
    chargers_arg(stop, connector="connector id(s), comma-separated (with --all: optional)")
    reboot = command("reboot", "reboot chargers (every session on them stops)")
    common(reboot)
    chargers_arg(reboot, connector=None)
    for parser in (stop, reboot):
        parser.add_argument(
            "--yes",
            action="store_true",
            help="needed for more than one charger or --all (at a terminal you may answer "
            "a prompt instead): every car on them stops charging",
        )

    handlers: dict[str, Handler] = {
        "chargers": cmd_chargers,
        "settings": cmd_settings,
        "chargepoint": cmd_chargepoint,
        "start": cmd_start,
        "stop": cmd_stop,
        "reboot": cmd_reboot,
    }
    for name, parser in (
        ("chargers", chargers),
        ("settings", settings),
        ("chargepoint", point),
        ("start", start),
        ("stop", stop),
        ("reboot", reboot),
    ):
        parser.set_defaults(control_handler=handlers[name])
    return handlers


# ---------------------------------------------------------------- handlers


async def cmd_chargers(args: argparse.Namespace) -> int:
    async with _controller(args, audited=False) as controller:
        overview = await controller.overview()
    print_overview(overview, as_json=args.json)
    return EXIT_OK


async def cmd_settings(args: argparse.Namespace) -> int:
    if args.settings_command == "show":
        return await _show_settings(args)
    selection = selection_from_args(args, connectors_required=True)
    asked = _asked(
        mode=args.mode,
        maxCurrent=args.max_current,
        rfidLock=args.rfid_lock,
        cableLock=args.cable_lock,
    )
    if not asked:
        raise _usage("nothing to change: give --mode, --max-current, --rfid-lock or --cable-lock")
    action = "connector_settings"
    try:
        change = ConnectorChange(
            mode=None if args.mode is None else parse_mode(args.mode),
            max_current=(
                UNSET if args.max_current is None else parse_max_current(args.max_current)
            ),
            rfid_lock=_switch(args.rfid_lock, "rfidLock"),
            cable_lock=_switch(args.cable_lock, "cableLock"),
        )
    except InvalidValue as exc:
        return await _refuse(args, selection, action, asked, str(exc), connectors=True)

    async def one(controller: Controller, cp: str, n: int | None) -> ChangeResult:
        assert n is not None
        return await controller.set_connector(cp, n, change)

    return await _run_changes(args, selection, action, asked, one, connectors=True)


async def cmd_chargepoint(args: argparse.Namespace) -> int:
    selection = selection_from_args(args, connectors_required=False)
    asked = _asked(dimmer=args.dimmer, downLight=args.down_light, maxCurrent=args.max_current)
    if not asked:
        raise _usage("nothing to change: give --dimmer, --down-light or --max-current")
    action = "chargepoint_settings"
    try:
        change = ChargePointChange(
            dimmer=None if args.dimmer is None else parse_dimmer(args.dimmer),
            down_light=_switch(args.down_light, "downLight"),
            max_current=(
                UNSET
                if args.max_current is None
                else parse_max_current(args.max_current, allow_pause=False)
            ),
        )
    except InvalidValue as exc:
        return await _refuse(args, selection, action, asked, str(exc), connectors=False)

    async def one(controller: Controller, cp: str, n: int | None) -> ChangeResult:
        return await controller.set_chargepoint(cp, change)

    return await _run_changes(args, selection, action, asked, one, connectors=False)


async def cmd_start(args: argparse.Namespace) -> int:
    selection = selection_from_args(args, connectors_required=True)
    asked: dict[str, JsonValue] = {"remoteStart": args.rfid}
    try:
        start = remote_start(args.rfid, args.rfid_format, args.rfid_length)
    except InvalidValue as exc:
        return await _refuse(args, selection, "remote_start", asked, str(exc), connectors=True)
    asked = {"remoteStart": start.describe()}

    async def one(controller: Controller, cp: str, n: int | None) -> ChangeResult:
        assert n is not None
        return await controller.remote_start(cp, n, start)

    return await _run_changes(args, selection, "remote_start", asked, one, connectors=True)


async def cmd_stop(args: argparse.Namespace) -> int:
    selection = selection_from_args(args, connectors_required=True)
    _check_confirmation(args, selection, "stopping charging on")

    async def one(controller: Controller, cp: str, n: int | None) -> ChangeResult:
        assert n is not None
        return await controller.remote_stop(cp, n)

    return await _run_changes(
        args, selection, "remote_stop", {"remoteStop": None}, one, connectors=True, confirm="Stop"
    )


async def cmd_reboot(args: argparse.Namespace) -> int:
    selection = selection_from_args(args, connectors_required=False)
    _check_confirmation(args, selection, "rebooting")

    async def one(controller: Controller, cp: str, n: int | None) -> ChangeResult:
        return await controller.reboot(cp)

    return await _run_changes(
        args, selection, "reboot", {"reboot": None}, one, connectors=False, confirm="Reboot"
    )


async def _show_settings(args: argparse.Namespace) -> int:
    selection = selection_from_args(args, connectors_required=False)
    async with _controller(args, audited=False) as controller:
        try:
            cps = await selection.chargers(controller)
            points = await asyncio.gather(*(controller.chargepoint_settings(cp) for cp in cps))
            targets = await selection.connectors(controller)
            connectors = await asyncio.gather(
                *(controller.connector_settings(cp, n) for cp, n in targets)
            )
        except UnknownTarget as exc:
            raise _usage(f"{exc.args[0]}; {UNKNOWN_HINT}") from None
    print_settings(points, connectors, as_json=args.json, chargers=selection.connector_ids is None)
    return EXIT_OK


# ---------------------------------------------------------------- running

One = Callable[[Controller, str, "int | None"], Awaitable[ChangeResult]]

# What counts as a terminal to ask at; a module name of its own so a test can say there is one.
_interactive = at_a_terminal


def _check_confirmation(args: argparse.Namespace, selection: Selection, doing: str) -> None:
    check_confirmation(selection, doing, yes=args.yes, interactive=_interactive)


@contextlib.asynccontextmanager
async def _controller(
    args: argparse.Namespace, *, audited: bool, login: bool = True
) -> AsyncIterator[Controller]:
    """Settings → client (shared token cache) [→ database for the audit] → Controller.

    Without ``login`` the vendor is only asked if the controller needs it (``--all``).
    """
    from charged.clock import SystemClock
    from charged.config import ConfigError, load_settings
    from charged.control.audit import AuditSink, MemoryAuditSink, SqlAuditSink
    from charged.daemon.vendor import vendor_client, vendor_session
    from charged.log import configure_logging

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        raise Fatal(str(exc), EXIT_CONFIG) from None
    for warning in settings.warnings:  # as `charged run` logs them
        print(f"charged: warning: {warning}", file=sys.stderr)
    # The command prints its own results and its failures (one line each); the service's
    # transition warnings ("vendor API unavailable") would only say the same twice.
    configure_logging("error", "console")
    clock = SystemClock()
    engine = None
    try:
        async with vendor_session(settings) as session:
            sink: AuditSink = MemoryAuditSink()
            if audited:
                engine = await _audit_engine(settings.database)
                sink = SqlAuditSink(engine)
            client = vendor_client(session, settings, clock=clock)
            if login:
                await client.login()  # a refused login stops here, before any change
            yield Controller(client, sink, actor=_actor(), clock=clock)
    except Fatal:
        raise
    except Exception as exc:
        fatal = translate_errors(exc)
        if fatal is None:
            raise
        raise fatal from None
    finally:
        if engine is not None:
            await engine.dispose()


async def _audit_engine(database: Any) -> Any:
    """The database for audit rows, migrated like the daemon does, checked before any change."""
    from charged.storage.engine import check_database, create_engine
    from charged.storage.migrate import upgrade

    if database.migrate_on_start:
        await upgrade(database.url)
    engine = create_engine(database.url)
    try:
        await check_database(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine


async def _run_changes(
    args: argparse.Namespace,
    selection: Selection,
    action: str,
    asked: dict[str, JsonValue],
    one: One,
    *,
    connectors: bool,
    confirm: str | None = None,
) -> int:
    """Check every target first (one unknown refuses the whole command), confirm if asked
    to, then run ``one`` for every target concurrently."""
    async with _controller(args, audited=True) as controller:
        try:
            targets = await selection.resolve(controller, connectors=connectors)
        except UnknownTarget as exc:
            reason = str(exc.args[0])
            problem = await _audit_refusal(controller, selection, action, asked, reason, connectors)
            raise _usage(f"{reason}; {UNKNOWN_HINT}{problem}") from None
        asking = confirm is not None and needs_asking(selection, yes=args.yes)
        if asking and not confirmed(str(confirm), targets):
            raise Fatal("not confirmed: nothing sent", EXIT_FAILED)
        results = list(await asyncio.gather(*(one(controller, cp, n) for cp, n in targets)))
    print_results(results, as_json=args.json)
    return exit_code(results)


async def _refuse(
    args: argparse.Namespace,
    selection: Selection,
    action: str,
    asked: dict[str, JsonValue],
    reason: str,
    *,
    connectors: bool,
) -> int:
    """An invalid value: audit it as rejected for the named targets, then exit 2."""
    try:
        async with _controller(args, audited=True, login=False) as controller:
            problem = await _audit_refusal(controller, selection, action, asked, reason, connectors)
    except Fatal as exc:  # no config, no database: the value is still the first thing to fix
        problem = f" (not audited: {exc})"
    raise _usage(reason + problem)


async def _audit_refusal(
    controller: Controller,
    selection: Selection,
    action: str,
    asked: dict[str, JsonValue],
    reason: str,
    connectors: bool,
) -> str:
    """Rejected rows for every target the command named; '' or ' (not audited: …)'."""
    problems = set()
    for cp, n in await selection.named(controller, connectors=connectors):
        result = await controller.reject(cp, n, action, asked, reason)
        if result.audit_error:
            problems.add(result.audit_error)
    return f" (not audited: {'; '.join(sorted(problems))})" if problems else ""


# ---------------------------------------------------------------- small helpers


def _usage(message: str) -> Exception:
    return Fatal(message, EXIT_USAGE)


def _switch(text: str | None, what: str) -> bool | None:
    return None if text is None else parse_switch(text, what)


def _asked(**options: str | None) -> dict[str, JsonValue]:
    """The options given, by API field name, as typed (what a refusal's audit row keeps)."""
    return {name: value for name, value in options.items() if value is not None}


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): the uid still says who
        user = f"uid{os.getuid()}"
    return f"cli:{user}"
