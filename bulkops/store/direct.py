"""SQLite only: the checkpoint's saves and claims through the standard library's driver, on the
event loop's own thread.

A save is the run's hottest write: two per row (the write-ahead record, then the outcome).
Through SQLAlchemy and aiosqlite each transaction costs several hand-offs to the driver's thread
(BEGIN, the update, the jobs row, COMMIT), each waiting for the GIL, plus statement compilation
and result objects; the transaction itself, in WAL mode with synchronous=NORMAL, appends to the
log without an fsync and takes well under a millisecond. Done here in one synchronous step, a
group commit of N rows costs the loop about what SQLite spends on it.

A claim (every CLAIM_INTERVAL while work is queued, up to half the queue's rows) went the same
way for the same reason: through aiosqlite its rows were fetched on the driver's thread, which
took the GIL from the loop for as long as the loop spent on them.

The statements are the store's own (`statements.save_many`, `statements.touch_job`,
`statements.claim`, `statements.refs`), compiled once for SQLite, so the SQL lives in one place.

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

import json
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement

from bulkops.errors import StoreError
from bulkops.store import sharing, statements
from bulkops.store.engine import SQLITE_PRAGMAS
from bulkops.store.rows import SAVE_PARAMS, SAVE_PARAMS_PRINTED

# Seconds a save on the loop's thread waits for another connection's write lock before it
# gives way (`Busy`). Longer than any of the run's own transactions elsewhere.
BUSY_WAIT = 0.05
# SQLite's primary result codes for a lock held elsewhere (sqlite3.h).
_LOCKED_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED


class Busy(Exception):
    """Another connection held the write lock for longer than BUSY_WAIT: nothing was written."""


# Where SQLAlchemy renders a parameter into the SQL text at execution ("post-compile"): the
# states a claim reads (`statements._inline`), its limit, an expanding IN list.
_POSTCOMPILE = re.compile(r"__\[POSTCOMPILE_(\w+)\]")
# A named parameter as SQLAlchemy renders it for SQLite (the statements here hold no literal
# text with a colon in it).
_NAMED = re.compile(r"(?<![:\w]):(\w+)")
# The ops of a claim, for its refs: one JSON array parameter instead of one per op.
_ID_LIST = "SELECT value FROM json_each(:{name})"


def _literal(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"no SQL literal for {value!r}")
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


class _Compiled:
    """A statement as SQLite SQL with :name parameters, and the values of its anonymous ones
    (constants such as an interval), which every execution must supply too. Post-compile
    constants are rendered as literals; `lists` names expanding parameters, taken as one JSON
    array each; any other post-compile parameter stays a marker for `with_literal`."""

    def __init__(self, statement: ClauseElement, *, lists: Sequence[str] = ()) -> None:
        compiled = statement.compile(dialect=sqlite.dialect(paramstyle="named"))
        params = compiled.params

        def render(marker: re.Match[str]) -> str:
            name = marker[1]
            if name in lists:
                return _ID_LIST.format(name=name)
            if name.startswith("param_"):
                return _literal(params[name])
            return marker[0]

        text = str(compiled)
        self.sql = _POSTCOMPILE.sub(render, text)
        self.constants = {name: value for name, value in params.items()
                          if name.startswith("param_") and f"POSTCOMPILE_{name}]" not in text}

    def positional(self, order: Sequence[str]) -> str:
        """The SQL with each :name parameter as ?N, N its place in `order` (from 1), for
        values bound as a tuple in that order: SQLite's driver binds by position at a fraction
        of the cost by name. Raises ValueError when a parameter of the SQL, or a constant, is
        not in `order`."""
        missing = set(self.constants) - set(order)
        places = {name: f"?{number}" for number, name in enumerate(order, start=1)}

        def place(marker: re.Match[str]) -> str:
            if marker[1] not in places:
                missing.add(marker[1])
            return places.get(marker[1], marker[0])

        sql = _NAMED.sub(place, self.sql)
        if missing:
            raise ValueError(f"parameters not in the given order: {sorted(missing)}")
        return sql

    def with_literal(self, name: str, value: int) -> str:
        """The SQL with the post-compile parameter `name` rendered as `value`."""
        return self.sql.replace(f"__[POSTCOMPILE_{name}]", str(int(value)))

    def rows(self, params: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        if not self.constants:
            return list(params)
        return [{**self.constants, **row} for row in params]


class DirectSaver:
    """Saves and claims of op rows, and turns of an account's budget, in one SQLite file, each
    call one transaction. Not thread-safe: used from the event loop's thread only."""

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
        self._save = _Compiled(statements.save_many(fingerprint=False)).positional(SAVE_PARAMS)
        self._save_printed = _Compiled(statements.save_many()).positional(SAVE_PARAMS_PRINTED)
        self._touch = _Compiled(statements.touch_job())
        self._claim = _Compiled(statements.claim(skip_locked=False))
        self._refs = _Compiled(statements.refs(), lists=("b_op_ids",))
        self._new_budget = _Compiled(sharing.insert_budget_if_absent("sqlite"))
        self._take_turns = _Compiled(sharing.take_turns())

    def save(self, plain: Sequence[Sequence[Any]], printed: Sequence[Sequence[Any]],
             job_ids: Sequence[str], now: float) -> None:
        """One transaction: every row of `plain` (`statements.save_many(fingerprint=False)`'s
        parameters in the order of `rows.SAVE_PARAMS`) and of `printed`
        (`statements.save_many()`'s, in the order of `rows.SAVE_PARAMS_PRINTED`), and the
        jobs' updated_at (unix seconds). Raises Busy when another connection holds the write
        lock, StoreError on any other failure; nothing is written then."""
        def write(conn: sqlite3.Connection) -> None:
            if plain:
                conn.executemany(self._save, plain)
            if printed:
                conn.executemany(self._save_printed, printed)
            conn.executemany(self._touch.sql, self._touch.rows(
                [{"b_job_id": job_id, "b_now": now} for job_id in job_ids]))

        self._transaction(write, "cannot save operations")

    def claim(self, params: Mapping[str, Any]
              ) -> tuple[list[sqlite3.Row], dict[int, dict[str, str]]]:
        """One transaction: `statements.claim`'s update with `params` (b_job_id, b_now,
        b_owner, b_limit, b_lease_until), then the claimed ops' refs. Returns the claimed rows
        (by column name, in no particular order) and op_id -> {dependency key: site id}.
        Raises Busy or StoreError as `save` does; nothing is claimed then."""
        claimed: list[sqlite3.Row] = []
        refs: dict[int, dict[str, str]] = {}

        def write(conn: sqlite3.Connection) -> None:
            cursor = conn.cursor()
            cursor.row_factory = sqlite3.Row
            sql = self._claim.with_literal("b_limit", params["b_limit"])
            claimed.extend(cursor.execute(sql, self._claim.rows([params])[0]).fetchall())
            if not claimed:
                return
            ids = json.dumps([row["op_id"] for row in claimed])
            found = conn.execute(self._refs.sql, {"b_op_ids": ids})
            for op_id, key, site_id in found:
                if site_id is not None:
                    refs.setdefault(op_id, {})[key] = site_id

        self._transaction(write, f"cannot claim operations of job {params['b_job_id']}")
        return claimed, refs

    def take_turns(self, params: Mapping[str, Any]) -> tuple[float, float]:
        """One transaction: the account's budget row made if absent, then `sharing.take_turns`
        with `params` (b_scope, b_now, b_span, b_throttled_at). Returns its new (next_at,
        throttled_at). Raises Busy or StoreError as `save` does; nothing is taken then. On
        the loop's thread, with no hop to a driver thread: a request waiting for turns waits
        for this alone."""
        taken: list[tuple[float, float]] = []

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(self._new_budget.sql, self._new_budget.rows([params])[0])
            taken.append(conn.execute(self._take_turns.sql,
                                      self._take_turns.rows([params])[0]).fetchone())

        self._transaction(write, "cannot take turns from the account's request budget")
        return taken[0]

    def _transaction(self, write: Callable[[sqlite3.Connection], None], failure: str) -> None:
        """`write` in one BEGIN IMMEDIATE transaction, committed, or rolled back on any error.
        Raises Busy when another connection holds the write lock past BUSY_WAIT, StoreError
        (`failure`: what could not be done) on any other database error."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                write(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _LOCKED_CODES:
                raise Busy(str(exc)) from exc
            raise StoreError(f"{failure}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()
