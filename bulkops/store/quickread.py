"""SQLite only: the reads of `bulkops status` and `bulkops jobs` through the standard library's
driver, without SQLAlchemy, asyncio or Alembic.

Those commands are a few counts from an index; through the store, most of their time was
start-up (importing SQLAlchemy and its asyncio extension alone took longer than counting a
million rows). Here they are the statements `SqlStore` runs for them (`history.owned_counts`,
`history.foreign_counts`, `history.row_counts`, `history.run_spans`, the jobs in order), written
out as SQLite SQL, in one read transaction on a connection set up as the store's are
(`pragmas.sqlite_pragmas`).

Only a database it can read as the store would is read here. `read` returns None, and the
caller takes the store's own path, which behaves as it always has, when:
- `--db` is not a plain file path or a `sqlite:///path` URL (PostgreSQL; a URL naming a
  driver, such as `sqlite+aiosqlite://`, or carrying options; in-memory databases);
- there is no such file (the store's path says so, in its own words);
- the database's revision is not the migration scripts' newest (`migrate.script_heads`), or it
  has none: the store's path migrates it first;
- the driver fails in any way (locked, read-only, not a database, damaged): the store's path
  meets the same failure and reports it in its one line.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from bulkops.locations import plain_file
from bulkops.model import JobInfo, OpState
from bulkops.store.listing import JobListing, add_counts
from bulkops.store.migrate import foreign_tables, sqlite_at_head
from bulkops.store.pragmas import sqlite_pragmas
from bulkops.store.rows import job_info

T = TypeVar("T")

# `SqlStore.list_jobs` and `latest_job`: newest first, the job id breaking ties.
_JOBS = "SELECT * FROM jobs ORDER BY created_at DESC, job_id DESC"
_JOB = "SELECT * FROM jobs WHERE job_id = ?"
# `history.owned_counts`: from the index on ops (job_id, state, seq) alone.
_OWNED = "SELECT job_id, state, count(*) FROM ops GROUP BY job_id, state"
_OWNED_BY = "SELECT job_id, state, count(*) FROM ops WHERE job_id = ? GROUP BY job_id, state"
# `history.foreign_counts` and `history.row_counts`: the job's rows joined to their ops.
_ROWS_BY_STATE = ("SELECT ops.state, count(*) FROM job_rows JOIN ops ON ops.op_id = "
                  "job_rows.op_id WHERE job_rows.job_id = ?")
_FOREIGN = f"{_ROWS_BY_STATE} AND ops.job_id != ? GROUP BY ops.state"
_ROWS = f"{_ROWS_BY_STATE} GROUP BY ops.state"
# `history.run_spans`.
_SPANS = ("SELECT job_id, min(started_at), max(finished_at), count(*) FROM runs "
          "GROUP BY job_id")

# What SQLAlchemy's URLs name no file with (`urls.sqlite_path`), or hold beyond the path.
_NOT_A_PLAIN_FILE = ("?", "#", "%")


def database_file(db_url: str) -> Path | None:
    """The SQLite file `db_url` names, as `urls.normalise_url` would make it absolute: for a
    plain path, or `sqlite:///path` with nothing more (no query, no escapes). None for
    anything else, which the store's path reads."""
    text = db_url.strip()
    if not text:
        return None
    if "://" not in text:
        return Path(text).expanduser().absolute()
    scheme, _, rest = text.partition("://")
    if scheme != "sqlite" or not rest.startswith("/"):
        return None
    database = rest[1:]
    if (database in ("", ":memory:") or database.startswith("file:")
            or any(mark in database for mark in _NOT_A_PLAIN_FILE)):
        return None
    return Path(database).expanduser().absolute()


def read(db_url: str, reading: Callable[[Reader], T]) -> T | None:
    """What `reading` returns from the database at `db_url`, read in one transaction; None
    when this path does not read that database (see the module's docstring: the caller then
    takes the store's path). Errors `reading` raises itself (ConfigError: no such job) pass."""
    path = database_file(db_url)
    if path is None or not plain_file(path) or foreign_tables(path):
        return None  # another program's file: the store's path refuses it in one line
    try:
        # isolation_level=None: the transaction is begun here, as the store's engine does.
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        for pragma in sqlite_pragmas():
            conn.execute(pragma)
        conn.row_factory = sqlite3.Row
        conn.execute("BEGIN")
        if not sqlite_at_head(conn):
            return None
        return reading(Reader(conn))
    except sqlite3.Error:
        return None
    finally:
        conn.close()  # a read transaction left open ends with the connection


class Reader:
    """The store's reads for `status` and `jobs`, on one connection inside one read
    transaction. Raises sqlite3.Error as the driver does (`read` turns it into None)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get_job(self, job_id: str) -> JobInfo | None:
        row = self._conn.execute(_JOB, (job_id,)).fetchone()
        return None if row is None else job_info(row)

    def latest_job(self) -> JobInfo | None:
        row = self._conn.execute(f"{_JOBS} LIMIT 1").fetchone()
        return None if row is None else job_info(row)

    def counts(self, job: JobInfo) -> dict[OpState, int]:
        """`SqlStore.counts`: every state, of the job's rows."""
        owned = _by_state((state, n) for _, state, n in
                          self._conn.execute(_OWNED_BY, (job.job_id,)))
        return self._row_counts(job.job_id, job.total, job.pruned_at, owned)

    def list_jobs(self) -> list[JobListing]:
        """`SqlStore.list_jobs`: every job, newest first."""
        found = self._conn.execute(_JOBS).fetchall()
        owned: dict[str, dict[OpState, int]] = {}
        for job_id, state, count in self._conn.execute(_OWNED):
            owned.setdefault(job_id, {})[OpState(state)] = count
        spans = {row[0]: tuple(row[1:]) for row in self._conn.execute(_SPANS)}
        listing = []
        for row in found:
            job = job_info(row)
            started, finished, runs = spans.get(job.job_id, (None, None, 0))
            listing.append(JobListing(
                job=job,
                counts=self._row_counts(job.job_id, job.total, job.pruned_at,
                                        owned.get(job.job_id, {})),
                started_at=started,
                finished_at=finished,
                runs=runs,
                pruned_at=job.pruned_at,
            ))
        return listing

    def _row_counts(self, job_id: str, total: int, pruned_at: float | None,
                    owned: Mapping[OpState, int]) -> dict[OpState, int]:
        """As `sql._row_counts`: a pruned job's rows (none); else the ops the job owns, and,
        only when those are not all of its `total` rows, its rows naming another job's op."""
        if pruned_at is not None:
            return add_counts(_by_state(self._conn.execute(_ROWS, (job_id,))))
        if sum(owned.values()) == total:
            return add_counts(owned)
        return add_counts(owned, _by_state(self._conn.execute(_FOREIGN, (job_id, job_id))))


def _by_state(found: Iterable[Any]) -> dict[OpState, int]:
    """{state: n} from (state, n) rows."""
    return {OpState(state): n for state, n in found}
