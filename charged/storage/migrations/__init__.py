"""Alembic migrations of the charged schema (run through charged.storage.migrate)."""
