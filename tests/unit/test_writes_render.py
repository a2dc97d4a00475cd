"""The MySQL rows rendered with a datetime's text kept by value are the driver's own SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from asyncmy.converters import escape_item
from sqlalchemy.dialects.mysql.asyncmy import dialect as asyncmy_dialect

from charged.storage.writes import _make_plan


def driver_sql(values: tuple[Any, ...]) -> str:
    return str(escape_item(values, "utf8mb4"))


def no_backslash_sql(values: tuple[Any, ...]) -> str:
    # the driver's per-value path under NO_BACKSLASH_ESCAPES (a str: quotes doubled)
    parts = [
        "'" + v.replace("'", "''") + "'" if isinstance(v, str) else str(escape_item(v, "utf8mb4"))
        for v in values
    ]
    return "(" + ",".join(parts) + ")"


@pytest.mark.parametrize(
    "stamp",
    [
        datetime(2026, 12, 4, 12, 0, 0),
        datetime(2026, 12, 4, 12, 0, 0, 1234),  # microseconds: the driver writes them
        datetime(1, 1, 1),
        datetime(2026, 12, 4, 12, tzinfo=UTC),  # aware: left to the driver
        datetime(2026, 12, 4, 12, tzinfo=timezone(timedelta(hours=2))),
        None,
    ],
)
def test_a_row_renders_as_the_driver_renders_it(stamp: datetime | None) -> None:
    columns = (
        "charge_point_id",
        "comment",
        "connector_id",
        "current",
        "date_created",
        "phase",
        "session_id",
        "voltage",
    )
    plan = _make_plan(asyncmy_dialect(), "measurement", columns)
    assert plan is not None
    row = {
        "charge_point_id": "O'Brien\\garage",
        "comment": None,
        "connector_id": 1,
        "current": 15.9,
        "date_created": stamp,
        "phase": "L1",
        "session_id": 12,
        "voltage": 231.2,
    }
    order = [c for c in plan.prefix.split("(", 1)[1].split(")")[0].replace("`", "").split(", ")]
    original = tuple(row[c] for c in order)
    for _ in range(2):  # the second time from the kept text
        rendered = plan.values(row)
        assert driver_sql(rendered) == driver_sql(original)
        assert no_backslash_sql(rendered) == no_backslash_sql(original)
    kept = rendered[order.index("date_created")]
    if stamp is not None and stamp.tzinfo is None:
        assert isinstance(kept, str)  # the text, kept by value
    else:
        assert kept is stamp  # the driver formats it, as before
