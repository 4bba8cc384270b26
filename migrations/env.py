"""Alembic environment: runs on the connection the store hands over."""

from __future__ import annotations

from alembic import context

from latestore.migrations.runner import VERSION_TABLE
from latestore.store.schema import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - the store always passes its connection
    raise RuntimeError("latestore migrations run through latestore.migrations.upgrade()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
