"""Alembic environment: the app hands over a connection (see webapp.commands)."""

from __future__ import annotations

from alembic import context

from webapp.database.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `flask --app webapp db upgrade`")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
