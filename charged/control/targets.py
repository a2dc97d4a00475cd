"""Which chargers and connectors a control command is for: read from its arguments, then
resolved against the account's chargers.

A list given by hand is taken as it is until a change is about to go out (a refusal's audit
rows need no vendor call); ``--all`` asks the vendor for the owned list.  Before anything is
sent every target is checked (:meth:`Selection.resolve`), so one unknown charger refuses the
whole command.
"""

from __future__ import annotations

import argparse

from charged.control.operations import Controller
from charged.control.validation import InvalidValue, parse_charger_list, parse_connector_list
from charged.exits import EXIT_USAGE, Fatal

# (charge point, connector); the connector is None for a command on the charge point itself
Target = tuple[str, int | None]


class Selection:
    """Which chargers and connectors a command is for, resolved against the owned list."""

    def __init__(
        self, charger_ids: tuple[str, ...] | None, connector_ids: tuple[int, ...] | None
    ) -> None:
        self.charger_ids = charger_ids  # None: every owned charger
        self.connector_ids = connector_ids  # None: every connector of each charger

    @property
    def several(self) -> bool:
        """More than one charger, or every one (what a stop or reboot must confirm)."""
        return self.charger_ids is None or len(self.charger_ids) > 1

    async def chargers(self, controller: Controller) -> tuple[str, ...]:
        if self.charger_ids is None:
            return await controller.charger_ids()
        return self.charger_ids

    async def connectors(self, controller: Controller) -> list[tuple[str, int]]:
        targets: list[tuple[str, int]] = []
        for cp in await self.chargers(controller):
            if self.connector_ids is not None:
                targets.extend((cp, n) for n in self.connector_ids)
            else:
                targets.extend((cp, n) for n in await controller.connector_ids(cp))
        return targets

    async def named(self, controller: Controller, *, connectors: bool) -> list[Target]:
        """The targets as the command names them, without checking them (a list given by
        hand needs no vendor call; ``--all`` reads the owned list)."""
        if connectors and self.connector_ids is None:  # --all without a connector list
            return list(await self.connectors(controller))
        ids: tuple[int | None, ...] = (
            self.connector_ids if connectors and self.connector_ids else (None,)
        )
        return [(cp, n) for cp in await self.chargers(controller) for n in ids]

    async def resolve(self, controller: Controller, *, connectors: bool) -> list[Target]:
        """The targets, each checked against the account's chargers (UnknownTarget)."""
        targets = await self.named(controller, connectors=connectors)
        for cp, n in targets:
            if n is None:
                await controller.check_charger(cp)
            else:
                await controller.check_connector(cp, n)
        return targets


def selection_from_args(args: argparse.Namespace, *, connectors_required: bool) -> Selection:
    """The CP [CONNECTOR] positionals and ``--all``; a wrong combination is a usage error."""
    cp_text: str | None = args.charger
    connector_text: str | None = getattr(args, "connector", None)
    try:
        if args.all:
            if cp_text is not None and connector_text is None and hasattr(args, "connector"):
                # `--all 1`: the one positional given is the connector list
                cp_text, connector_text = None, cp_text
            if cp_text is not None:
                raise _usage("give either --all or charger ids, not both")
            connectors = None if connector_text is None else parse_connector_list(connector_text)
            return Selection(None, connectors)
        if cp_text is None:
            raise _usage("give the charger id(s) (e.g. 2003000123A or CP1,CP2) or --all")
        chargers = parse_charger_list(cp_text)
        if connector_text is None and connectors_required:
            raise _usage("give the connector id(s) (e.g. 1 or 1,2)")
        connectors = None if connector_text is None else parse_connector_list(connector_text)
        return Selection(chargers, connectors)
    except InvalidValue as exc:
        raise _usage(str(exc)) from None


def _usage(message: str) -> Fatal:
    return Fatal(message, EXIT_USAGE)
