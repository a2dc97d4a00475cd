"""Asking before a stop or reboot of several chargers at once: every car on them stops.

Two steps, because the answer can only be asked for once the targets are known: before any
vendor call :func:`check_confirmation` refuses a command that has neither ``--yes`` nor a
terminal to ask at; after the targets are resolved :func:`confirmed` asks at the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from charged.control.targets import Selection, Target
from charged.exits import EXIT_USAGE, Fatal


def needs_asking(selection: Selection, *, yes: bool) -> bool:
    """Several chargers at once without ``--yes``: the terminal is asked first."""
    return not yes and selection.several


def check_confirmation(
    selection: Selection, doing: str, *, yes: bool, interactive: Callable[[], bool]
) -> None:
    """Several chargers at once need --yes, or a terminal to ask at (asked later).

    ``interactive`` is passed in rather than called here so the command line decides what
    counts as a terminal (and its tests can say there is one).
    """
    if not needs_asking(selection, yes=yes) or interactive():
        return
    what = "every charger" if selection.charger_ids is None else "several chargers"
    raise Fatal(
        f"{doing} {what} at once stops every car on them: add --yes "
        "(or run it at a terminal to confirm)",
        EXIT_USAGE,
    )


def at_a_terminal() -> bool:
    """Someone can answer: stdin to read the answer from, stderr to show the question on."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def confirmed(verb: str, targets: Sequence[Target]) -> bool:
    """Ask on stderr whether to go on with ``targets``; only y or yes is a yes."""
    chargers = list(dict.fromkeys(cp for cp, _ in targets))
    shown = ", ".join(chargers[:5]) + (
        f" and {len(chargers) - 5} more" if len(chargers) > 5 else ""
    )
    sys.stderr.write(
        f"{verb} {len(chargers)} chargers ({shown})? Every car on them stops charging. [y/N] "
    )
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")
