"""Alembic environment: always run online against the connection given by dvr.db.migrate."""

from alembic import context

from dvr.db.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
