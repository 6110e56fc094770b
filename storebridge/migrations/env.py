"""Alembic environment: runs on the connection storebridge hands it (see storebridge.migrate)."""

from __future__ import annotations

from alembic import context

from storebridge.models import metadata

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `storebridge migrate`, which supplies the connection")
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported; run `storebridge migrate`")
run_migrations_online()
