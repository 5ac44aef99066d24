"""SQLite only: a job's rows for its report, read through the standard library's driver.

A report reads every row of a job once. Through SQLAlchemy and aiosqlite that costs more than
rendering it: importing them (~0.3 s of a command whose whole budget at 100,000 rows is 0.5 s),
a hand-off to the driver's thread per page, and a record (OpRecord, OpSpec) built per row.
Here the rows come from one plain cursor (`fetchmany`) as tuples, for `report` to render.

Everything is read in one read transaction: the job, its counts and its rows are one snapshot
of the database (WAL: a run writing meanwhile neither waits nor is seen), so a report's check
against the counts never sees them move. Nothing here writes, and a database whose schema is
not the shipped one's newest is not read (`at_head`): the store's own path opens (and
upgrades) it instead.

The statements are the store's (`SqlStore.counts`, `iter_ops`, `produced_by_keys`,
`overview`) written out in SQLite's SQL; tests/integration/test_report_lean.py holds the two
paths to the same results.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bulkops.errors import StoreError
from bulkops.identity import referenced_keys
from bulkops.model import (
    Action,
    ErrorCount,
    JobInfo,
    JobOverview,
    OpRecord,
    OpState,
    RunRecord,
)
from bulkops.store.migrate import sqlite_at_head
from bulkops.store.rows import job_info, row_record

FETCH = 1000  # rows per fetchmany: a page of the report, rendered and written at once
ID_CHUNK = 500  # keys per look-up statement (SQLite's variable limit is 32,766 or 999)
TOP_ERRORS = 5  # as `history.TOP_ERRORS`

# A page row, by position: the row's own seq, line, key, action and spec (each None when not
# asked for, `pages`), whether its op is another job's (1, else 0), the op's state and results.
SEQ, LINE, KEY, ACTION, SPEC, ELSEWHERE, STATE, ATTEMPTS, SITE_ID, INVITE_ID, DETAILS, \
    ERROR_CODE, ERROR_MESSAGE, ERROR_HINT, ERROR_REQUEST_ID, NOTE = range(16)

# The row's own line, action and spec, or its op's where the row leaves them to it
# (`tables.job_rows`).
_LINE, _ACTION, _SPEC = (f"coalesce(r.{name}, o.{name})" for name in ("line", "action", "spec"))
_ROW_COLUMNS = (
    "r.seq, " + _LINE + ", r.key, {action}, {spec}, o.job_id != r.job_id, o.state, o.attempts, "
    "o.site_id, o.invite_id, o.details, o.error_code, o.error_message, o.error_hint, "
    "o.error_request_id, o.note"
)
_ROWS = "FROM job_rows AS r JOIN ops AS o ON o.op_id = r.op_id WHERE r.job_id = ?"
# The same rows for a count or a group: `seq >= 0` (every seq is, from 0) makes SQLite walk them
# through their primary key (job_id, seq), in step with their ops. Without it, it takes the
# (job_id, key) index, in key order, one random read after another: 4-8 times slower.
_ALL_ROWS = f"{_ROWS} AND r.seq >= 0"

class ReportRows:
    """One SQLite file, open for reading a job's report in one snapshot. Not thread-safe."""

    def __init__(self, path: Path, *, busy_ms: int) -> None:
        """`path`: an existing database file. `busy_ms`: how long to wait for a lock (a
        migration or a checkpoint in progress elsewhere). Raises StoreError."""
        try:
            # isolation_level=None: the read transaction is begun here (`snapshot`).
            self._conn = sqlite3.connect(str(path), isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
            self._conn.execute("PRAGMA query_only = ON")  # a report never writes
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        self._path = path

    def close(self) -> None:
        """Ends the snapshot too (a read transaction: nothing to commit)."""
        self._conn.close()

    def _error(self, what: str, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"cannot read {what} from {self._path}: {exc}")

    def begin(self) -> None:
        """Start the snapshot every later read sees, until `close`."""
        try:
            self._conn.execute("BEGIN")
        except sqlite3.Error as exc:
            raise self._error("the database", exc) from exc

    def _all(self, what: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(what, exc) from exc

    def _dicts(self, what: str, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            cursor = self._conn.execute(sql, params)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise self._error(what, exc) from exc

    # -- the schema and the job -----------------------------------------------------------

    def at_head(self) -> bool:
        """The database's schema revision is the shipped scripts' newest (the tables are the
        ones read here). False for a database of another version, or none at all."""
        return sqlite_at_head(self._conn)

    def job(self, job_id: str | None) -> JobInfo | None:
        """The job `job_id`, or (None) the newest one; None when there is no such job."""
        if job_id is None:
            rows = self._dicts("jobs", "SELECT * FROM jobs ORDER BY created_at DESC, "
                                       "job_id DESC LIMIT 1")
        else:
            rows = self._dicts(f"job {job_id}", "SELECT * FROM jobs WHERE job_id = ?",
                               (job_id,))
        return job_info(rows[0]) if rows else None

    def counts(self, job: JobInfo) -> dict[OpState, int]:
        """Rows of the (not pruned) job per state, every state present: `SqlStore.counts`."""
        what = f"the counts of job {job.job_id}"
        found: dict[str, int] = dict(self._all(
            what, "SELECT state, count(*) FROM ops WHERE job_id = ? GROUP BY state",
            (job.job_id,)))
        if sum(found.values()) != job.total:
            # Some rows name another job's op (done before, taken over): count those by join.
            for state, n in self._all(
                what, f"SELECT o.state, count(*) {_ALL_ROWS} AND o.job_id != ? GROUP BY o.state",
                (job.job_id, job.job_id),
            ):
                found[state] = found.get(state, 0) + n
        return {state: n for state, n in _states(found).items()}

    # -- rows -----------------------------------------------------------------------------

    def pages(self, job_id: str, *, only: Collection[OpState] | None, spec: bool
              ) -> Iterator[list[tuple[Any, ...]]]:
        """The job's rows in input order, FETCH at a time, as tuples indexed by SEQ ... NOTE;
        `spec`: with the row's stored spec (JSON text) at SPEC and no ACTION (the spec says
        it), else the action and no spec. Only what is read becomes a Python object."""
        columns = _ROW_COLUMNS.format(action="NULL" if spec else _ACTION,
                                      spec=_SPEC if spec else "NULL")
        sql = f"SELECT {columns} {_ROWS}"
        params: list[Any] = [job_id]
        if only is not None:
            states = sorted(state.value for state in only)
            sql += f" AND o.state IN ({', '.join('?' * len(states))})"
            params += states
        sql += " ORDER BY r.seq"
        try:
            cursor = self._conn.execute(sql, params)
            while page := cursor.fetchmany(FETCH):
                yield page
        except sqlite3.Error as exc:
            raise self._error(f"the rows of job {job_id}", exc) from exc

    def produced(self, job_id: str, keys: Collection[str]) -> dict[str, str]:
        """key -> site id ("" for none) of the job's rows named by `keys` whose op succeeded:
        `SqlStore.produced_by_keys`. One index look-up per key (json_each drives the join)."""
        found: dict[str, str] = {}
        wanted = sorted(keys)
        for start in range(0, len(wanted), ID_CHUNK):
            for key, site in self._all(
                f"operations of job {job_id}",
                "SELECT r.key, o.site_id FROM json_each(?) AS w "
                "CROSS JOIN job_rows AS r ON r.job_id = ? AND r.key = w.value "
                "JOIN ops AS o ON o.op_id = r.op_id WHERE o.state = 'succeeded'",
                (json.dumps(wanted[start : start + ID_CHUNK]), job_id),
            ):
                found[key] = site or ""
        return found

    def records(self, job_id: str, seqs: Sequence[int]) -> list[OpRecord]:
        """The job's rows at `seqs` as records (`SqlStore.iter_ops`' own), in input order:
        for the few rows a report needs whole (another job's op, the page's problems)."""
        records: list[OpRecord] = []
        for start in range(0, len(seqs), ID_CHUNK):
            chunk = list(seqs[start : start + ID_CHUNK])
            rows = self._dicts(
                f"the rows of job {job_id}",
                "SELECT o.op_id, o.state, o.attempts, o.site_id, o.invite_id, o.details, "
                "o.error_code, o.error_message, o.error_hint, o.error_status, "
                "o.error_request_id, o.first_sent_at, o.last_sent_at, o.not_before, o.checks, "
                "o.note, o.lease_owner, o.updated_at, o.scope, o.maybe_applied, "
                f"r.seq, {_LINE} AS line, r.key, {_SPEC} AS spec, r.job_id, o.line AS op_line, "
                "o.key AS op_key, o.spec AS op_spec, o.job_id AS op_job_id "
                f"{_ROWS} AND r.seq IN ({', '.join('?' * len(chunk))}) ORDER BY r.seq",
                [job_id, *chunk],
            )
            sites: dict[str, str] = {}
            for scope, specs in _written_otherwise(job_id, rows).items():
                sites.update(self._site_ids(scope, referenced_keys(*specs)))
            records += [row_record(job_id, row, sites) for row in rows]
        return records

    def _site_ids(self, scope: str, keys: Iterable[str]) -> dict[str, str]:
        """key -> site id its op produced (own keys, then aliases): `adding.site_ids`."""
        wanted = sorted(keys)
        found: dict[str, str] = {}
        for table in ("ops", "op_aliases"):
            rest = [key for key in wanted if key not in found]
            join = "" if table == "ops" else " JOIN ops AS o ON o.op_id = t.op_id"
            site = "t.site_id" if table == "ops" else "o.site_id"
            for start in range(0, len(rest), ID_CHUNK):
                chunk = rest[start : start + ID_CHUNK]
                found.update(dict(self._all(
                    "operations",
                    f"SELECT t.key, {site} FROM {table} AS t{join} WHERE t.scope = ? AND "
                    f"t.key IN ({', '.join('?' * len(chunk))}) AND {site} IS NOT NULL",
                    [scope, *chunk])))
        return found

    # -- the HTML page's overview ---------------------------------------------------------

    def overview(self, job: JobInfo) -> JobOverview:
        """`SqlStore.overview`: counts by action and state, the runs, the commonest errors."""
        what = f"job {job.job_id}"
        per_action: dict[Action, dict[OpState, int]] = {}
        for action, state, n in self._all(
            what, f"SELECT {_ACTION}, o.state, count(*) {_ALL_ROWS} GROUP BY {_ACTION}, o.state",
            (job.job_id,),
        ):
            per_action.setdefault(Action(action), {s: 0 for s in OpState})[OpState(state)] = n
        runs = tuple(_run_record(row) for row in self._dicts(
            what, "SELECT * FROM runs WHERE job_id = ? ORDER BY started_at, run_id",
            (job.job_id,)))
        errors = tuple(
            ErrorCount(code=code, hint=hint, count=n, first_line=line, message=message or "")
            for code, hint, n, line, message in self._all(
                what,
                f"SELECT o.error_code, o.error_hint, count(*), min({_LINE}), "
                f"min(o.error_message) {_ALL_ROWS} AND o.state IN ('failed', 'blocked') "
                f"GROUP BY o.error_code, o.error_hint ORDER BY count(*) DESC, min({_LINE}) "
                "LIMIT ?",
                (job.job_id, TOP_ERRORS),
            )
        )
        counts = {state: sum(c[state] for c in per_action.values()) for state in OpState}
        return JobOverview(job=job, counts=counts, by_action=per_action, runs=runs,
                           top_errors=errors)


def _states(found: Mapping[str, int]) -> dict[OpState, int]:
    try:
        counted = {OpState(state): n for state, n in found.items()}
    except ValueError as exc:
        raise StoreError(f"an operation in an unknown state: {exc}") from exc
    return {state: counted.get(state, 0) for state in OpState}


def _written_otherwise(job_id: str, rows: Sequence[Mapping[str, Any]]
                       ) -> dict[str, list[dict[str, Any]]]:
    """`sql._written_otherwise`: by scope, both specs of each row whose own key another job
    owns and wrote otherwise."""
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if (row["op_job_id"] != job_id and row["op_key"] == row["key"]
                and row["op_spec"] != row["spec"]):
            found.setdefault(row["scope"], []).extend(
                [json.loads(row["op_spec"]), json.loads(row["spec"])])
    return found


def _run_record(row: Mapping[str, Any]) -> RunRecord:
    """`history.run_record`."""
    return RunRecord(
        run_id=row["run_id"], job_id=row["job_id"], command=row["command"],
        started_at=row["started_at"], finished_at=row["finished_at"], outcome=row["outcome"],
        reason=row["reason"], requests=row["requests"], throttled=row["throttled"],
        retries=row["retries"], reconciled=row["reconciled"], succeeded=row["succeeded"],
        failed=row["failed"], budget_per_second=row["budget_per_second"],
        bucket_seconds=row["bucket_seconds"], timeline=tuple(json.loads(row["timeline"])),
    )
