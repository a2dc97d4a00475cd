"""What the control commands print: tables for a person, JSON with ``--json``, and the exit
code a set of results makes."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TextIO

from charged.chargeamps.models import ChargePointSettings, ConnectorSettings
from charged.control.operations import COMMANDS
from charged.control.results import (
    ChangeResult,
    ChargerOverview,
    Outcome,
    chargepoint_settings_json,
    connector_settings_json,
)
from charged.control.validation import Unset
from charged.exits import EXIT_ERROR, EXIT_OK, EXIT_USAGE

EXIT_FAILED = EXIT_ERROR  # a change failed, was unverified or not audited


def print_overview(overview: Sequence[ChargerOverview], *, as_json: bool) -> None:
    if as_json:
        _print_json({"chargers": [o.to_json() for o in overview]})
    else:
        _print_table(_overview_rows(overview))


def print_settings(
    points: Sequence[ChargePointSettings],
    connectors: Sequence[ConnectorSettings],
    *,
    as_json: bool,
    chargers: bool,
) -> None:
    """The chargers' settings (when ``chargers``), then the connectors'."""
    point_rows = [chargepoint_settings_json(p) for p in points]
    connector_rows = [connector_settings_json(c) for c in connectors]
    if as_json:
        _print_json({"chargers": point_rows, "connectors": connector_rows})
        return
    if chargers:
        _print_table(
            [["CHARGER", "DIMMER", "DOWN LIGHT", "MAX CURRENT", "INSTALLATION"]]
            + [
                [
                    str(p["id"]),
                    str(p["dimmer"]),
                    _on_off(p["downLight"]),
                    _amps_text(p["maxCurrent"]),
                    _amps_text(p["installationCurrent"], none="-"),
                ]
                for p in point_rows
            ]
        )
        print()
    _print_table(
        [["CHARGER", "CONNECTOR", "MODE", "MAX CURRENT", "RFID LOCK", "CABLE LOCK"]]
        + [
            [
                str(c["chargePointId"]),
                str(c["connectorId"]),
                str(c["mode"]),
                _amps_text(c["maxCurrent"]),
                _on_off(c["rfidLock"]),
                _on_off(c["cableLock"]),
            ]
            for c in connector_rows
        ]
    )


def exit_code(results: Sequence[ChangeResult]) -> int:
    not_done = (Outcome.FAILED, Outcome.UNVERIFIED)
    if any(r.outcome in not_done or r.audit_error for r in results):
        return EXIT_FAILED
    if any(r.outcome is Outcome.REJECTED for r in results):
        return EXIT_USAGE
    return EXIT_OK


def print_results(
    results: Sequence[ChangeResult], *, as_json: bool, out: TextIO | None = None
) -> None:
    stream = out if out is not None else sys.stdout
    if as_json:
        _print_json(
            {"ok": exit_code(results) == EXIT_OK, "results": [r.to_json() for r in results]},
            stream,
        )
        return
    rows = [["CHARGER", "CONNECTOR", "FIELD", "OLD", "NEW", "RESULT"]]
    for r in results:
        command = r.action in COMMANDS
        for change in r.changes:
            # OLD: never read → "-"; for commands the status before.  NEW: stop and reboot
            # take no value → "-"
            old = "-" if isinstance(change.old, Unset) else _text(change.old)
            new = "-" if command and change.new is None else _text(change.new)
            rows.append(
                [
                    r.charger,
                    "-" if r.connector is None else str(r.connector),
                    change.field,
                    old,
                    new,
                    r.outcome.value,
                ]
            )
    _print_table(rows, stream)
    for r in results:
        where = r.charger if r.connector is None else f"{r.charger} connector {r.connector}"
        said = r.error or r.note
        if said:
            print(f"{where}: {r.outcome.value}: {said}", file=stream)
        if r.audit_error:
            print(f"{where}: {r.audit_error}", file=stream)


def _overview_rows(overview: Sequence[ChargerOverview]) -> list[list[str]]:
    rows = [
        ["CHARGER", "NAME", "TYPE", "STATUS", "CONNECTOR", "STATE", "CURRENT", "POWER", "ENERGY"]
    ]
    for cp in overview:
        if not cp.connectors:
            rows.append([cp.id, cp.name or "-", cp.type or "-", cp.status, "-", "-", "-", "-", "-"])
        for c in cp.connectors:
            rows.append(
                [
                    cp.id,
                    cp.name or "-",
                    cp.type or "-",
                    cp.status,
                    str(c.connector_id),
                    c.status,
                    "-" if c.current is None else f"{c.current:.1f} A",
                    "-" if c.power_kw is None else f"{c.power_kw:.1f} kW",
                    "-" if c.energy_kwh is None else f"{c.energy_kwh:.2f} kWh",
                ]
            )
    return rows


def _amps_text(value: object, *, none: str = "none") -> str:
    if value is None:
        return none
    return f"{value:g} A" if isinstance(value, int | float) else str(value)


def _on_off(value: object) -> str:
    if value is None:
        return "-"
    return "on" if value else "off"


def _text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _print_table(rows: Sequence[Sequence[str]], out: TextIO | None = None) -> None:
    stream = out if out is not None else sys.stdout
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(),
            file=stream,
        )


def _print_json(data: object, out: TextIO | None = None) -> None:
    print(json.dumps(data, indent=2), file=out if out is not None else sys.stdout)
