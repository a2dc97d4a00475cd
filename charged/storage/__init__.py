"""Storage: the schema, migrations, idempotent bulk writes and the batch writer."""
