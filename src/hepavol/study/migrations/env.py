"""Alembic environment for the study database (run by :func:`hepavol.study.db.upgrade`, not by the alembic CLI)."""

from __future__ import annotations

from alembic import context

from hepavol.study.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through hepavol.study.db
    raise RuntimeError("run the study migrations through hepavol (hepavol study init / any study command)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
