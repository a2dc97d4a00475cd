"""Every table charged stores can be exported by its time column (a table added without one
made `charged export balancer_decision` end in a KeyError traceback)."""

from __future__ import annotations

from datetime import datetime

import pytest

from charged.analysis.export import export_query, table_named
from charged.storage.schema import metadata


@pytest.mark.parametrize("name", sorted(metadata.tables))
def test_every_stored_table_exports_over_a_time_range(name: str) -> None:
    query = export_query(table_named(name), datetime(2026, 1, 1), datetime(2026, 1, 2))
    sql = str(query.compile(compile_kwargs={"literal_binds": True}))
    assert "2026-01-01" in sql and "ORDER BY" in sql
