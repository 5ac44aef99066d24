"""SQLite only: the checkpoint's saves through the standard library's driver, on the event
loop's own thread.

A save is the run's hottest write: two per row (the write-ahead record, then the outcome).
Through SQLAlchemy and aiosqlite each transaction costs several hand-offs to the driver's thread
(BEGIN, the update, the jobs row, COMMIT), each waiting for the GIL, plus statement compilation
and result objects; the transaction itself, in WAL mode with synchronous=NORMAL, appends to the
log without an fsync and takes well under a millisecond. Done here in one synchronous step, a
group commit of N rows costs the loop about what SQLite spends on it.

The statements are the store's own (`statements.save_many`, `statements.touch_job`), compiled
once for SQLite, so the SQL lives in one place.

Two things keep this safe to run on the loop's thread:
- SqlStore's other write transactions and these saves never overlap in one process (the store's
  write lock): a save must not wait, with the loop blocked, for a lock that a transaction
  suspended on this very loop holds.
- A save waits for another connection's write lock only briefly (BUSY_WAIT), then gives way
  (`Busy`): the caller saves through the store's ordinary path, which waits on a thread with
  the loop free. A long transaction elsewhere (another job loading a big file) never freezes
  this run, and two stores on one file in one process cannot wait for each other forever.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement

from bulkops.errors import StoreError
from bulkops.store import statements
from bulkops.store.engine import SQLITE_PRAGMAS

# Seconds a save on the loop's thread waits for another connection's write lock before it
# gives way (`Busy`). Longer than any of the run's own transactions elsewhere.
BUSY_WAIT = 0.05
# SQLite's primary result codes for a lock held elsewhere (sqlite3.h).
_LOCKED_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED


class Busy(Exception):
    """Another connection held the write lock for longer than BUSY_WAIT: nothing was written."""


class _Compiled:
    """A statement as SQLite SQL with :name parameters, and the values of its anonymous ones
    (constants such as an interval), which every execution must supply too."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=sqlite.dialect(paramstyle="named"))
        self.sql = str(compiled)
        self.constants = {name: value for name, value in compiled.params.items()
                          if name.startswith("param_")}

    def rows(self, params: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        if not self.constants:
            return list(params)
        return [{**self.constants, **row} for row in params]


class DirectSaver:
    """Saves of op rows to one SQLite file, each call one transaction. Not thread-safe: used
    from the event loop's thread only."""

    def __init__(self, path: str) -> None:
        """`path`: the database file (the store's own, already migrated). Raises StoreError
        when it cannot be opened."""
        try:
            # isolation_level=None: transactions are begun here, explicitly (BEGIN IMMEDIATE).
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            for pragma in SQLITE_PRAGMAS:
                self._conn.execute(pragma)
            # After the pragmas: their busy_timeout is the store's (long) one.
            self._conn.execute(f"PRAGMA busy_timeout = {round(BUSY_WAIT * 1000)}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path} for saving operations: {exc}") from exc
        self._save = _Compiled(statements.save_many(fingerprint=False))
        self._save_printed = _Compiled(statements.save_many())
        self._touch = _Compiled(statements.touch_job())

    def save(self, plain: Sequence[Mapping[str, Any]], printed: Sequence[Mapping[str, Any]],
             job_ids: Sequence[str], now: float) -> None:
        """One transaction: every row of `plain` (`statements.save_many(fingerprint=False)`'s
        parameters) and of `printed` (`statements.save_many()`'s), and the jobs' updated_at
        (unix seconds). Raises Busy when another connection holds the write lock, StoreError
        on any other failure; nothing is written then."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if plain:
                    conn.executemany(self._save.sql, self._save.rows(plain))
                if printed:
                    conn.executemany(self._save_printed.sql, self._save_printed.rows(printed))
                conn.executemany(self._touch.sql, self._touch.rows(
                    [{"b_job_id": job_id, "b_now": now} for job_id in job_ids]))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _LOCKED_CODES:
                raise Busy(str(exc)) from exc
            raise StoreError(f"cannot save operations: {exc}") from exc

    def close(self) -> None:
        self._conn.close()
