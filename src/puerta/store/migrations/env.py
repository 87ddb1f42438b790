"""Alembic environment: Puerta always hands it an open connection (see ``store/migrate.py``)."""

from __future__ import annotations

from alembic import context

from puerta.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `puerta db upgrade`, which provides the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
