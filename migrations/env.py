"""Alembic environment: how migrations reach the database.

Two ways in:
- `bulkops` opening a store passes its own connection (already inside a write transaction) in
  `config.attributes["connection"]`; nothing else is read.
- The `alembic` command line (`alembic -c alembic.ini -x db=URL upgrade head`, or
  `sqlalchemy.url` in the ini file) builds an engine the way the store does.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bulkops.store.engine import create_engine, writer
from bulkops.store.tables import metadata
from bulkops.store.urls import normalise_url

# Any constant works; it only has to be the same in every process that migrates this database.
MIGRATION_LOCK_KEY = 0x62756C6B6F7073  # "bulkops"

config = context.config


def _cli_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("db")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database: pass -x db=URL or set sqlalchemy.url in alembic.ini")
    return url


def run_offline() -> None:
    """`alembic upgrade head --sql`: print the DDL instead of running it."""
    context.configure(
        url=normalise_url(_cli_url()),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Workers starting together on a fresh database would otherwise race to create the
        # same tables; the lock is released when the migration transaction ends.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_from_cli() -> None:
    engine = create_engine(normalise_url(_cli_url()))
    try:
        async with writer(engine).begin() as connection:
            await connection.run_sync(run_on)
    finally:
        await engine.dispose()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)  # logging only for the command line, never for bulkops
    asyncio.run(run_from_cli())


if context.is_offline_mode():
    run_offline()
else:
    run_online()
