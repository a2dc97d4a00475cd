"""charging_session rows as a terminal table or as JSON (what `charged sessions` prints)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from charged.analysis.availability import OfflineSpan

Row = dict[str, Any]

# (header, how to show a row) in the order printed
_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("charger", lambda r: r["charge_point_id"]),
    ("conn", lambda r: r["connector_id"]),
    ("session", lambda r: r["session_id"]),
    ("start (UTC)", lambda r: _time(r["start_time"])),
    ("end (UTC)", lambda r: _time(r["end_time"]) if r["end_time"] else "running"),
    ("kWh", lambda r: _number(r["energy_kwh"], 2)),
    ("peak kW", lambda r: _number(_kw(r["peak_power_w"]), 1)),
    ("mean kW", lambda r: _number(_kw(r["mean_power_w"]), 1)),
    ("phases", lambda r: r["phases"] or "?"),
    ("connected", lambda r: _duration(r["connected_s"])),
    ("charging", lambda r: _duration(r["charging_s"])),
    ("idle after", lambda r: _duration(r["idle_after_s"])),
    ("gaps", lambda r: f"{r['gap_count']} ({_duration(r['gap_s'])})" if r["gap_count"] else "0"),
    ("vendor", lambda r: "confirmed" if r["reconciled_at"] else "-"),
)


def print_sessions(rows: Sequence[Row], out: TextIO) -> None:
    if not rows:
        print("no sessions stored for that choice", file=out)
        return
    cells = [[str(show(r)) for _, show in _COLUMNS] for r in rows]
    headers = [h for h, _ in _COLUMNS]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip(), file=out)
    total = sum(r["energy_kwh"] or 0.0 for r in rows)
    print(f"{len(rows)} sessions, {total:.2f} kWh", file=out)


def print_offline(spans: Sequence[OfflineSpan], out: TextIO) -> None:
    """The chargers' offline spans, after the sessions (nothing when there are none)."""
    if not spans:
        return
    headers = ("charger", "offline from (UTC)", "online again (UTC)", "lasted")
    cells = [
        (
            s.charge_point_id,
            _time(s.start),
            _time(s.end) if s.end else "not yet",
            _clock_duration((s.end - s.start).total_seconds()) if s.end else "-",
        )
        for s in spans
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print(file=out)
    for line in (headers, *cells):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip(), file=out)
    print(f"{len(spans)} offline spans (from charge_point_availability)", file=out)


def sessions_json(rows: Sequence[Row], offline: Sequence[OfflineSpan] = ()) -> dict[str, Any]:
    """Every column, named in camelCase like the vendor's fields and every other --json of
    charged (``charge_point_id`` → ``chargePointId``); times as ISO 8601 UTC with a Z.
    ``offline``: the chargers' offline spans (``end`` null: not online again yet)."""
    return {
        "sessions": [
            {
                camel_case(k): _iso(v) if isinstance(v, datetime) else v
                for k, v in r.items()
                if k != "id"
            }
            for r in rows
        ],
        "offline": [
            {
                "chargePointId": s.charge_point_id,
                "start": _iso(s.start),
                "end": _iso(s.end) if s.end else None,
            }
            for s in offline
        ],
    }


def camel_case(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds") + "Z"


def _time(moment: datetime | None) -> str:
    return "?" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def _kw(watts: float | None) -> float | None:
    return None if watts is None else watts / 1000.0


def _number(value: float | None, digits: int) -> str:
    return "?" if value is None else f"{value:.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes = round(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def _clock_duration(seconds: float) -> str:
    # offline spans are often shorter than a minute (a reboot): seconds shown
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
