"""What the analysis commands are told: the types of their time, day, month, size and dpi
arguments, the period they add up to (``--date``, ``--month`` or ``--since``/``--until``)
and that period in words.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from charged.exits import EXIT_USAGE, Fatal


def parse_when(text: str) -> datetime:
    """ISO date or date-time → naive UTC; without an offset it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time; write e.g. 2026-01-05 or 2026-01-05T07:30 (UTC)"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def parse_month(text: str) -> datetime:
    """YYYY-MM → its first moment (UTC)."""
    try:
        return datetime.strptime(text.strip(), "%Y-%m")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--month takes a month as YYYY-MM (e.g. 2026-11), got {text!r}"
        ) from None


def next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def parse_size(text: str) -> tuple[float, float]:
    """WxH in inches → (width, height)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        width, height = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--size takes WIDTHxHEIGHT in inches, e.g. 6.4x3.6, got {text!r}"
        ) from None
    if not (1 <= width <= 50 and 1 <= height <= 50):
        raise argparse.ArgumentTypeError(
            f"--size: width and height must be 1-50 inches, got {text!r}"
        )
    return width, height


def parse_dpi(text: str) -> float:
    try:
        dpi = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dpi takes a number, e.g. 300, got {text!r}") from None
    if not 20 <= dpi <= 1200:
        raise argparse.ArgumentTypeError(f"--dpi must be 20-1200, got {text!r}")
    return dpi


def parse_day(text: str) -> datetime:
    day = parse_when(text)
    if day.time() != datetime.min.time():
        raise argparse.ArgumentTypeError(f"--date takes a day (e.g. 2026-01-05), got {text!r}")
    return day


def requested_range(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    since, until = args.since, args.until
    day: datetime | None = getattr(args, "date", None)
    if day is not None:
        if since is not None or until is not None:
            raise Fatal("give either --date or --since/--until, not both", EXIT_USAGE)
        since, until = day, day + timedelta(days=1)
    month: datetime | None = getattr(args, "month", None)
    if month is not None:
        if since is not None or until is not None:
            raise Fatal("give either --month or --since/--until, not both", EXIT_USAGE)
        since, until = month, next_month(month)
    if since is not None and until is not None and until <= since:
        raise Fatal("--until must be after --since", EXIT_USAGE)
    return since, until


def span(since: datetime | None, until: datetime | None) -> str:
    if since is not None and until is not None and until - since == timedelta(days=1):
        return f"{since:%Y-%m-%d} (UTC)"
    parts = [
        f"from {since:%Y-%m-%d %H:%M}" if since else "",
        f"to {until:%Y-%m-%d %H:%M}" if until else "",
    ]
    return " ".join(p for p in parts if p) + " (UTC)" if any(parts) else "all stored (UTC)"
