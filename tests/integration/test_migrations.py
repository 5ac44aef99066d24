"""Alembic migrations produce exactly the schema the code declares, on every database."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from bulkops.errors import StoreError
from bulkops.store import SqlStore, open_store
from bulkops.store.engine import create_engine
from bulkops.store.migrate import alembic_config, script_heads, script_location
from bulkops.store.tables import metadata
from bulkops.store.urls import normalise_url

REPO = Path(__file__).resolve().parents[2]
DECLARED = {table.name for table in metadata.sorted_tables}


def schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def inspect_store(store: SqlStore) -> tuple[list[Any], set[str], str | None]:
    async with store.engine.connect() as conn:
        return (
            await conn.run_sync(schema_differences),
            await conn.run_sync(table_names),
            await conn.run_sync(current_revision),
        )


async def test_opening_an_empty_database_migrates_to_exactly_the_declared_tables(
    store_url: str,
) -> None:
    store = await open_store(store_url)
    try:
        differences, tables, revision = await inspect_store(store)
    finally:
        await store.close()
    assert differences == []
    assert tables == DECLARED | {"alembic_version"}
    assert revision == head_revision()


async def test_opening_an_up_to_date_database_again_changes_nothing(store_url: str) -> None:
    for _ in range(2):
        store = await open_store(store_url)
        await store.close()
    store = await open_store(store_url)
    try:
        differences, tables, revision = await inspect_store(store)
    finally:
        await store.close()
    assert (differences, revision) == ([], head_revision())
    assert tables == DECLARED | {"alembic_version"}


async def test_processes_opening_a_fresh_database_together_all_succeed(store_url: str) -> None:
    """Workers started at once must not race to create the same tables."""
    stores = await asyncio.gather(*(open_store(store_url) for _ in range(4)))
    try:
        differences, tables, _ = await inspect_store(stores[0])
    finally:
        for store in stores:
            await store.close()
    assert differences == []
    assert tables == DECLARED | {"alembic_version"}


OPEN_AND_CLOSE = """
import asyncio, sys
from bulkops.store import open_store

async def main() -> None:
    store = await open_store(sys.argv[1])
    await store.close()

asyncio.run(main())
"""


async def test_separate_processes_opening_a_fresh_database_together_all_succeed(
    store_url: str,
) -> None:
    """Each process migrates under the database's own lock; none sees a half-made schema."""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", OPEN_AND_CLOSE, store_url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(3)
    ]
    results = [await asyncio.wait_for(p.communicate(), timeout=60) for p in processes]
    failures = [
        err.decode() for p, (_, err) in zip(processes, results, strict=True) if p.returncode
    ]
    assert failures == []
    store = await open_store(store_url)
    try:
        differences, _, revision = await inspect_store(store)
    finally:
        await store.close()
    assert (differences, revision) == ([], head_revision())


async def test_a_database_from_a_newer_version_is_refused_clearly(store_url: str) -> None:
    store = await open_store(store_url)
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    await store.close()
    with pytest.raises(StoreError, match="ffffffffffff"):
        await open_store(store_url)


def test_the_alembic_command_line_upgrades_and_downgrades(sqlite_url: str) -> None:
    """`alembic -c alembic.ini -x db=PATH upgrade head` (and back to base) works from the repo."""
    config = Config(str(REPO / "alembic.ini"), cmd_opts=_x_args(f"db={sqlite_url}"))
    command.upgrade(config, "head")
    assert _sync_tables(sqlite_url) == DECLARED | {"alembic_version"}
    command.downgrade(config, "base")
    assert _sync_tables(sqlite_url) == {"alembic_version"}


def test_the_scripts_are_found_inside_the_package() -> None:
    location = script_location()
    assert (location / "env.py").is_file()
    assert head_revision() is not None


def _x_args(*values: str) -> Any:
    return argparse.Namespace(x=list(values))


def _sync_tables(sqlite_url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_engine(normalise_url(sqlite_url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(table_names)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_the_heads_read_without_alembic_are_alembics_own() -> None:
    """Opening a store reads the scripts' newest revision from their text (importing Alembic
    only to migrate): it must be the revision Alembic itself would upgrade to."""
    assert script_heads() == set(ScriptDirectory.from_config(alembic_config()).get_heads())
