"""Alembic environment: runs on the connection that :class:`scrm.store.Store` hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import scrm.models  # registers the tables on SQLModel.metadata
import scrm.models_web  # noqa: F401  (and the web tables)

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by running `alembic` by hand
    raise SystemExit("run migrations through `scrm init`, which passes the connection")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
