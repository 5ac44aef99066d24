"""The rows a run checks before its first write (`prerun`): the job's rows still to do, read
lean.

`iter_ops` gives every row of a job with everything a report shows (the row's op may be
another job's, whose spec is then compared with the row's). The checks need only the rows
whose op the job owns and is not final: a half-done job of a million rows has half a million
of them, and the other half is never read here. The (job_id, state, seq) index of `ops`
finds them; each row comes once, with its own spec and its op's fields (the very record
`iter_ops` gives for it: a row the checks settle is saved from it).

On a SQLite file the rows are streamed through the standard library's driver, one cursor
for the whole pass (no pages, no SQLAlchemy result objects): the statement is the one the
general path runs, compiled for SQLite. On PostgreSQL they are read in keyset pages through
SQLAlchemy.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncGenerator, Collection, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, literal_column, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from bulkops.errors import StoreError
from bulkops.model import FINAL_STATES, Action, OpError, OpRecord, OpSpec, OpState
from bulkops.store.failures import store_errors
from bulkops.store.tables import job_rows, ops, row_value

T = TypeVar("T")

PAGE_SIZE = 5000  # rows per page on the general path
FETCH = 2000  # rows per fetch of the SQLite cursor
OPEN_STATES = tuple(sorted(state.value for state in OpState if state not in FINAL_STATES))

# The row's own seq, line, key and spec (what `iter_ops` gives for a row), then its op's.
_COLUMNS = (
    job_rows.c.seq, row_value("line"), job_rows.c.key, row_value("spec"),
    ops.c.op_id, ops.c.state, ops.c.attempts, ops.c.site_id, ops.c.invite_id, ops.c.details,
    ops.c.error_code, ops.c.error_message, ops.c.error_hint, ops.c.error_status,
    ops.c.error_request_id, ops.c.first_sent_at, ops.c.last_sent_at, ops.c.not_before,
    ops.c.checks, ops.c.note, ops.c.lease_owner, ops.c.maybe_applied,
)


def _open_of_job(*, by_state: bool) -> tuple[Any, ...]:
    """The rows of job `b_job_id` whose op it owns, in an open state. `by_state`: found
    through the (job_id, state, seq) index of ops, never by the rows' (job_id, seq), which
    SQLite (no statistics) would otherwise prefer, stepping over every done row of the job."""
    row_job = job_rows.c.job_id.op("||")(literal_column("''")) if by_state else job_rows.c.job_id
    return (
        ops.c.job_id == bindparam("b_job_id"),
        # As constants, not parameters: the statement is compiled once, with no values.
        ops.c.state.in_([literal_column(f"'{state}'") for state in OPEN_STATES]),
        row_job == bindparam("b_job_id"),
    )


def any_open_query() -> Select[Any]:
    """One open row of job `b_job_id` (`_open_of_job`), if it has any: an index look-up."""
    return (select(job_rows.c.seq)
            .select_from(ops.join(job_rows, job_rows.c.op_id == ops.c.op_id))
            .where(*_open_of_job(by_state=True)).limit(1))


def open_rows_query(*, paged: bool, actions: Collection[Action] | None = None) -> Select[Any]:
    """The job's rows (`b_job_id`) whose op it owns and is in an open state, in input order,
    as `_COLUMNS`; `paged`: only rows after seq `b_after`, at most `b_limit` of them;
    `actions`: only rows of those (None: of any)."""
    query = (
        select(*_COLUMNS)
        .select_from(ops.join(job_rows, job_rows.c.op_id == ops.c.op_id))
        # Paged (PostgreSQL): each page walks the rows in order from the last one, and stops
        # at its size; in one pass (SQLite), the open ops found first and then sorted.
        .where(*_open_of_job(by_state=not paged))
        .order_by(job_rows.c.seq)
    )
    if paged:
        query = query.where(job_rows.c.seq > bindparam("b_after")).limit(bindparam("b_limit"))
    if actions is not None:
        query = query.where(row_value("action").in_(
            [literal_column(f"'{action.value}'") for action in sorted(actions)]))
    return query


# OpSpec's fields and their defaults; of the stored spec's, those kept as text and as tuples.
_SPEC_FIELDS = {f.name: f.default for f in fields(OpSpec)}
_SPEC_LISTS = frozenset(name for name, default in _SPEC_FIELDS.items() if default == ())
_SPEC_TEXT = frozenset(name for name, default in _SPEC_FIELDS.items()
                       if default is None and name != "ttl")
_OP_FIELDS = {f.name: f.default for f in fields(OpRecord) if f.default is not MISSING}
# By value: a dict look-up costs a fraction of calling the enum.
_ACTIONS = {action.value: action for action in Action}
_STATES = {state.value: state for state in OpState}


def _frozen(cls: type[T], values: dict[str, Any]) -> T:
    """A frozen dataclass record of `values` (every field), made without its `__init__`:
    that sets each field through `object.__setattr__`, which for OpSpec and OpRecord (over
    forty fields between them) cost more than reading and checking the row."""
    record = object.__new__(cls)
    record.__dict__.update(values)
    return record


def _spec(line: int, key: str, data: dict[str, Any]) -> OpSpec:
    """`OpSpec.from_json(line, key, data)`, the same record, made faster."""
    values = dict(_SPEC_FIELDS)
    for name, value in data.items():
        if name in _SPEC_TEXT:
            values[name] = value
        elif name in _SPEC_LISTS:
            values[name] = tuple(value or ())
    ttl = data.get("ttl")
    values.update(line=line, key=key, action=_ACTIONS[data["action"]],
                  notify=data.get("notify") is True, ttl=ttl if isinstance(ttl, int) else None)
    return _frozen(OpSpec, values)


def _record(job_id: str, row: Sequence[Any]) -> OpRecord:
    """A row of `open_rows_query` as `store.rows.op_record` makes it (no refs, no elsewhere:
    the job owns the op)."""
    (seq, line, key, spec, op_id, state, attempts, site_id, invite_id, details, error_code,
     error_message, error_hint, error_status, error_request_id, first_sent_at, last_sent_at,
     not_before, checks, note, lease_owner, maybe_applied) = row
    error = None
    if error_message is not None or error_code is not None:
        error = OpError(code=error_code, message=error_message or "", hint=error_hint,
                        status=error_status, request_id=error_request_id)
    return _frozen(OpRecord, {
        **_OP_FIELDS, "refs": {},
        "op_id": op_id, "job_id": job_id, "seq": seq,
        "spec": _spec(line, key, json.loads(spec)),
        "state": _STATES[state], "attempts": attempts, "site_id": site_id,
        "invite_id": invite_id, "details": json.loads(details) if details else None,
        "error": error, "first_sent_at": first_sent_at, "last_sent_at": last_sent_at,
        "not_before": not_before, "checks": checks, "note": note, "lease_owner": lease_owner,
        "maybe_applied": bool(maybe_applied),
    })


async def open_rows(engine: AsyncEngine, file: Path | None, job_id: str, *,
                    actions: Collection[Action] | None = None
                    ) -> AsyncGenerator[OpRecord, None]:
    """The job's rows still to do (see the module's docstring), in input order; `actions`:
    only rows of those (None: of any). `file`: the SQLite database file, or None
    (PostgreSQL). Raises StoreError when the database cannot be read."""
    if actions is not None and not actions:
        return  # of no action: no row (and SQL has no empty IN list)
    if file is not None:
        async for record in _from_file(file, job_id, actions):
            yield record
        return
    query = open_rows_query(paged=True, actions=actions)
    after = -1
    while True:
        params = {"b_job_id": job_id, "b_after": after, "b_limit": PAGE_SIZE}
        # One short read per page: a consumer waiting for Wix holds no connection meanwhile.
        async with (store_errors(f"cannot read operations of job {job_id}", engine.url),
                    engine.connect() as conn):
            page = (await conn.execute(query, params)).all()
        for row in page:
            yield _record(job_id, row)
        if len(page) < PAGE_SIZE:
            return
        after = page[-1][0]


async def _from_file(file: Path, job_id: str, actions: Collection[Action] | None
                     ) -> AsyncGenerator[OpRecord, None]:
    """`open_rows` on a SQLite file: one read-only connection and cursor for the pass, on
    the loop's thread (as `direct`'s saves: nothing else runs during the checks' passes, and
    a thread hand-off per fetch would cost more than the fetch); its snapshot is the
    pass's. The first fetch sorts the open rows (about a second for half a million)."""
    sql = str(open_rows_query(paged=False, actions=actions).compile(
        dialect=sqlite.dialect(paramstyle="named")))
    params = {"b_job_id": job_id}
    try:
        conn = sqlite3.connect(str(file), check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read operations of job {job_id}: {exc}") from exc
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute("PRAGMA busy_timeout = 30000")
        cursor = conn.execute(sql, params)
        while True:
            page = cursor.fetchmany(FETCH)
            for row in page:
                yield _record(job_id, row)
            if len(page) < FETCH:
                return
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read operations of job {job_id}: {exc}") from exc
    finally:
        conn.close()

