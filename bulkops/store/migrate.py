"""Bring a database's schema to the newest revision, every time a store is opened.

The Alembic scripts ship inside the package (`bulkops.migrations`), so an installed wheel can
upgrade a database created by an older version without the source tree.
"""

from __future__ import annotations

import ast
import functools
import re
import sqlite3
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from bulkops.errors import StoreError

# SQLAlchemy and asyncio are loaded by the functions that migrate: `script_heads` is also the
# version check of the lean read path (`quickread`), which reads without them.
if TYPE_CHECKING:
    import asyncio

    from alembic.config import Config
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_PACKAGE = "bulkops.migrations"

# A revision script's own two lines that place it in the chain (`revision: str = "0004"`,
# `down_revision: ... = "0003"`). Read without importing Alembic: every command opens a store,
# and importing Alembic costs more than the rest of opening an up-to-date database.
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\b[^=\n]*=\s*(.+)$", re.MULTILINE)


def script_location() -> Path:
    """The directory holding env.py and versions/ (a real directory in any normal install)."""
    location = Path(str(files(MIGRATIONS_PACKAGE)))
    if not (location / "env.py").is_file():
        raise StoreError(f"migration scripts not found in {location}: broken installation?")
    return location


def alembic_config() -> Config:
    from alembic.config import Config  # only when migrating: see _ASSIGNMENT

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    return config


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Run every pending migration in one write transaction (all of them, or none).

    A database already at the newest revision is only read: opening it never waits for the
    write lock, so `status`, `jobs` and `report` work while another process writes."""
    from bulkops.store.engine import writer  # see the imports

    async with engine.connect() as connection:
        if await connection.run_sync(_at_head):
            return
    async with _alembic_turn(), writer(engine).begin() as connection:
        await connection.run_sync(_upgrade)


# Alembic's `context` and `op` are module-level proxies: two migrations interleaving in one
# process (two stores opened at once, each waiting on I/O) would overwrite each other's. Other
# processes are kept apart by the database itself (write lock, advisory lock in env.py).
_turns: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = WeakKeyDictionary()


def _alembic_turn() -> asyncio.Lock:
    import asyncio  # see the imports

    loop = asyncio.get_running_loop()
    turn = _turns.get(loop)
    if turn is None:
        turn = _turns[loop] = asyncio.Lock()
    return turn


@functools.cache
def script_heads() -> frozenset[str]:
    """The newest revisions of the shipped scripts: those no other script revises. Raises
    StoreError for a script whose chain lines cannot be read (a test holds this equal to
    Alembic's own `ScriptDirectory.get_heads`)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for script in sorted((script_location() / "versions").glob("*.py")):
        found = dict((name, value) for name, value in _ASSIGNMENT.findall(script.read_text()))
        if "revision" not in found:
            continue  # not a revision script (__init__.py)
        try:
            revisions.add(ast.literal_eval(found["revision"]))
            down = ast.literal_eval(found.get("down_revision", "None"))
        except (ValueError, SyntaxError) as exc:
            raise StoreError(f"migration script {script.name} cannot be read: {exc}") from exc
        revised.update([down] if isinstance(down, str) else down or ())
    return frozenset(revisions - revised)


def sqlite_at_head(conn: sqlite3.Connection) -> bool:
    """`_at_head` on a standard-library SQLite connection (the reads that skip SQLAlchemy):
    False too without an `alembic_version` table, or on any driver error (a file that is not
    such a database: the store's own path says why)."""
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                        "name = 'alembic_version'").fetchone() is None:
            return False
        current = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
    except sqlite3.Error:
        return False
    return current == script_heads()


def foreign_tables(path: Path) -> list[str]:
    """The tables of the SQLite file at `path` when it holds tables but not bulkops' schema
    (another program's database: opening it as a store would add bulkops' tables to it and
    switch it to WAL); [] for a bulkops database, an empty or missing file, and a file this
    cannot read (the store's own open says what is wrong with it). Only reads: the file is
    opened read-only, with no settings applied."""
    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        names = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite^_%' "
            "ESCAPE '^' ORDER BY name")]
    except sqlite3.Error:
        return []
    finally:
        conn.close()
    return [] if not names or "alembic_version" in names else names


def _at_head(connection: Connection) -> bool:
    """The database's revision is the scripts' newest (a new, empty database's is not)."""
    from sqlalchemy import inspect, text  # see the imports

    if not inspect(connection).has_table("alembic_version"):
        return False
    current = {row[0] for row in connection.execute(text("SELECT version_num FROM "
                                                          "alembic_version"))}
    return current == script_heads()


def _refuse_if_run(connection: Connection) -> None:
    """Raise JobBusy (exit 4) when a process holds a job's lease on this database, which is
    below the newest revision: that is an earlier bulkops (this one upgrades a database before
    it writes to it), and its next read of a changed table would fail (0007 left values NULL
    that it reads as required: "None is not a valid Action"). Run inside the upgrade's
    transaction: on SQLite it holds the write lock, so no lease can begin before the upgrade
    commits; on PostgreSQL one that begins in between is not seen."""
    import time

    from sqlalchemy import inspect, text  # see the imports

    from bulkops.errors import JobBusy
    from bulkops.identity import Holder, instant

    found = inspect(connection)
    if not found.has_table("jobs"):
        return  # a new database
    # `lease_since` came with 0002.
    columns = {column["name"] for column in found.get_columns("jobs")}
    since = "lease_since" if "lease_since" in columns else "NULL"
    live = connection.execute(text(
        f"SELECT job_id, lease_owner, {since}, lease_expires_at FROM jobs "
        "WHERE lease_owner IS NOT NULL AND lease_expires_at > :now "
        "ORDER BY lease_expires_at DESC, job_id"), {"now": time.time()}).first()
    if live is None:
        return
    job_id, owner, since, until = live
    raise JobBusy(
        f"job {job_id} is being run by an earlier bulkops ({Holder(owner, since, until).describe()}"
        f"; its lease runs until {instant(until)} if that process died): this version upgrades the "
        "database's tables before using it, which would break that run; use this version once "
        "it has ended (or the earlier one until then)")


def _upgrade(connection: Connection) -> None:
    from alembic import command  # only when migrating: see _ASSIGNMENT

    if _at_head(connection):
        # Another process upgraded it after this one looked, and may be running a job on it.
        return
    _refuse_if_run(connection)
    config = alembic_config()
    # env.py migrates on this connection, inside our transaction, instead of opening its own.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
