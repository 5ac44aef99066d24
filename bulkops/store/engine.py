"""The async engine behind the store: connection settings per database, and write transactions.

SQLite notes (the embedded default, where correctness depends on these settings):
- WAL journal + synchronous=NORMAL: a commit survives a killed process (not a power cut), and
  readers never wait for the writer.
- busy_timeout: a second process waits for the write lock instead of failing at once; for
  `lock_wait()` seconds (30 by default; `--lock-wait`/`BULKOPS_LOCK_WAIT` set it, through
  `set_lock_wait`, before any store is opened).
- foreign_keys: SQLite leaves them off unless asked, per connection.
- The Python driver's own transaction handling is switched off and SQLAlchemy emits BEGIN itself
  (SQLAlchemy's documented recipe for pysqlite/aiosqlite): the driver would otherwise start
  transactions lazily at the first write, after our SELECTs had already read.
- Write transactions start with BEGIN IMMEDIATE, taking the write lock up front, so two
  processes can never both read "op 7 is free" and both claim it.
- A fresh load (`loader`) writes with foreign keys unchecked: every reference it writes is
  made from rows of the same transaction, and checking them was an eighth of loading a
  million-row job. Its commit does not copy the write-ahead log into the database file
  either (SQLite's automatic checkpoint, a second and more after such a load): the store
  does that in a thread of its own (`checkpoint_soon`). The connection is set back to both
  once it is in the pool again.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# The settings live where the CLI and the lean read path reach them without SQLAlchemy.
from bulkops.store.pragmas import BUSY_TIMEOUT_MS as BUSY_TIMEOUT_MS
from bulkops.store.pragmas import SQLITE_PRAGMAS as SQLITE_PRAGMAS
from bulkops.store.pragmas import lock_wait as lock_wait
from bulkops.store.pragmas import set_lock_wait as set_lock_wait
from bulkops.store.pragmas import sqlite_pragmas

_WRITE_OPTION = "bulkops_write"
_UNCHECKED_OPTION = "bulkops_unchecked"
_UNCHECKED = "bulkops_foreign_keys_off"  # in a pooled connection's info while they are off
AUTOCHECKPOINT_PAGES = 1000  # SQLite's default: commits copy the log back past 1000 pages


def create_engine(url: URL) -> AsyncEngine:
    """An engine for `url` (already normalised to an async driver)."""
    # hide_parameters: row values (emails, names) stay out of exception text and logs.
    engine = create_async_engine(url, hide_parameters=True)
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    return engine


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool), but its transactions take the write lock on SQLite at BEGIN.

    Elsewhere the option is inert: PostgreSQL locks rows, not the database.
    """
    return engine.execution_options(**{_WRITE_OPTION: True})


def loader(engine: AsyncEngine) -> AsyncEngine:
    """`writer`, whose transactions on SQLite do not check foreign keys nor checkpoint at
    commit: for a load that only writes references to rows it wrote itself
    (`adding._insert_fresh`), followed by `checkpoint_soon`. SQLite cannot switch the check
    inside a transaction (the pragma is a no-op there), so both are switched off before BEGIN
    and on again when the connection returns to the pool, after its commit or rollback."""
    return engine.execution_options(**{_WRITE_OPTION: True, _UNCHECKED_OPTION: True})


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # None: the driver never emits BEGIN on its own; `_on_begin` does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in sqlite_pragmas():
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get(_UNCHECKED_OPTION, False):
            conn.info[_UNCHECKED] = True  # before the pragmas: they are undone whatever happens
            conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
            conn.exec_driver_sql("PRAGMA wal_autocheckpoint = 0")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE_OPTION, False) else "BEGIN")

    @event.listens_for(sync_engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        # After the pool's reset: no transaction is open, so the pragma takes effect.
        if dbapi_connection is None or not record.info.pop(_UNCHECKED, False):
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA foreign_keys = ON")
                cursor.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
            finally:
                cursor.close()
        except Exception:  # a connection that cannot be set right is not used again
            record.invalidate()


def checkpoint_soon(path: Path) -> threading.Thread:
    """Copy the write-ahead log of the SQLite file at `path` into the file, in a daemon thread
    on a connection of its own (a PASSIVE checkpoint: it waits for no reader nor writer, and
    SQLite runs it without holding the GIL). Started; the caller may join it. A checkpoint cut
    short (the process ending) loses nothing: the log stays until the next one. Errors are
    dropped: any later commit past AUTOCHECKPOINT_PAGES checkpoints again."""

    def checkpoint() -> None:
        try:
            conn = sqlite3.connect(path, timeout=0)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                conn.close()
        except sqlite3.Error:
            pass

    thread = threading.Thread(target=checkpoint, name="bulkops-checkpoint", daemon=True)
    thread.start()
    return thread
