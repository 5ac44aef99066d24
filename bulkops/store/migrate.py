"""Bring a database's schema to the newest revision, every time a store is opened.

The Alembic scripts ship inside the package (`bulkops.migrations`), so an installed wheel can
upgrade a database created by an older version without the source tree.
"""

from __future__ import annotations

import asyncio
from importlib.resources import files
from pathlib import Path
from weakref import WeakKeyDictionary

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bulkops.errors import StoreError
from bulkops.store.engine import writer

MIGRATIONS_PACKAGE = "bulkops.migrations"


def script_location() -> Path:
    """The directory holding env.py and versions/ (a real directory in any normal install)."""
    location = Path(str(files(MIGRATIONS_PACKAGE)))
    if not (location / "env.py").is_file():
        raise StoreError(f"migration scripts not found in {location}: broken installation?")
    return location


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    return config


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Run every pending migration in one write transaction (all of them, or none)."""
    async with _alembic_turn(), writer(engine).begin() as connection:
        await connection.run_sync(_upgrade)


# Alembic's `context` and `op` are module-level proxies: two migrations interleaving in one
# process (two stores opened at once, each waiting on I/O) would overwrite each other's. Other
# processes are kept apart by the database itself (write lock, advisory lock in env.py).
_turns: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = WeakKeyDictionary()


def _alembic_turn() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    turn = _turns.get(loop)
    if turn is None:
        turn = _turns[loop] = asyncio.Lock()
    return turn


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    # env.py migrates on this connection, inside our transaction, instead of opening its own.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
