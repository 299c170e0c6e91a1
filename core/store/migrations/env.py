"""Alembic environment: the connection comes from :func:`core.store.db.upgrade`."""

from alembic import context

from core.store.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
