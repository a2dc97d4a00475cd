"""Alembic environment: runs on the connection that ``charged.storage.migrate`` hands in.

There is no alembic.ini and no URL here: ``migrate.upgrade`` opens the (async) engine, and
runs Alembic's synchronous API on it through ``AsyncConnection.run_sync``.
"""

from __future__ import annotations

from alembic import context

from charged.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations with `charged db upgrade` (charged.storage.migrate), not the alembic CLI"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table there and is a plain
    # ALTER TABLE on MySQL.
    render_as_batch=True,
    compare_type=True,
    on_version_apply=context.config.attributes.get("on_version_apply"),
)
with context.begin_transaction():
    context.run_migrations()
