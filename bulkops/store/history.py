"""What a job's runs did, for the morning after: run records, overviews, listing and pruning.

Statements and row conversions only; `SqlStore` runs them in its transactions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    Delete,
    Select,
    Text,
    Update,
    and_,
    column,
    delete,
    exists,
    func,
    or_,
    select,
    update,
    values,
)
from sqlalchemy import insert as sql_insert
from sqlalchemy.sql.dml import Insert

from bulkops.model import Action, ErrorCount, OpState, RunRecord
from bulkops.store.listing import JobListing as JobListing
from bulkops.store.listing import PruneResult as PruneResult
from bulkops.store.listing import add_counts as add_counts
from bulkops.store.tables import job_rows, jobs, op_aliases, ops, row_value, runs

TOP_ERRORS = 5


def run_values(record: RunRecord) -> dict[str, Any]:
    """The columns of `runs` for `record` (all but run_id)."""
    return {
        "job_id": record.job_id,
        "command": record.command,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "outcome": record.outcome,
        "reason": record.reason,
        "requests": record.requests,
        "throttled": record.throttled,
        "retries": record.retries,
        "reconciled": record.reconciled,
        "succeeded": record.succeeded,
        "failed": record.failed,
        "budget_per_second": record.budget_per_second,
        "bucket_seconds": record.bucket_seconds,
        "timeline": json.dumps(list(record.timeline), separators=(",", ":")),
    }


def insert_run(record: RunRecord, owner: str) -> Insert:
    return sql_insert(runs).values(owner=owner, **run_values(record)).returning(runs.c.run_id)


def update_run(record: RunRecord) -> Update:
    return update(runs).where(runs.c.run_id == record.run_id).values(run_values(record))


def run_record(row: Mapping[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        job_id=row["job_id"],
        command=row["command"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outcome=row["outcome"],
        reason=row["reason"],
        requests=row["requests"],
        throttled=row["throttled"],
        retries=row["retries"],
        reconciled=row["reconciled"],
        succeeded=row["succeeded"],
        failed=row["failed"],
        budget_per_second=row["budget_per_second"],
        bucket_seconds=row["bucket_seconds"],
        timeline=tuple(json.loads(row["timeline"])),
    )


def runs_of(job_id: str) -> Select[Any]:
    return select(runs).where(runs.c.job_id == job_id).order_by(runs.c.started_at, runs.c.run_id)


def counts_by_action(job_id: str) -> Select[Any]:
    """(action, state, rows) of the job's rows: the action as the row says, the state its op's."""
    action = row_value("action")
    return (
        select(action, ops.c.state, func.count())
        .select_from(job_rows.join(ops, ops.c.op_id == job_rows.c.op_id))
        .where(job_rows.c.job_id == job_id)
        .group_by(action.element, ops.c.state)
    )


def by_action(found: list[Any]) -> dict[Action, dict[OpState, int]]:
    result: dict[Action, dict[OpState, int]] = {}
    for action, state, count in found:
        per_state = result.setdefault(Action(action), {s: 0 for s in OpState})
        per_state[OpState(state)] = count
    return result


def top_errors(job_id: str, limit: int = TOP_ERRORS) -> Select[Any]:
    """The commonest (code, hint) among the job's failed and blocked rows, with a first line
    and message as an example."""
    failed = (OpState.FAILED.value, OpState.BLOCKED.value)
    line = row_value("line").element
    return (
        select(
            ops.c.error_code, ops.c.error_hint, func.count().label("n"),
            func.min(line).label("first_line"),
            func.min(ops.c.error_message).label("message"),
        )
        .select_from(job_rows.join(ops, ops.c.op_id == job_rows.c.op_id))
        .where(job_rows.c.job_id == job_id, ops.c.state.in_(failed))
        .group_by(ops.c.error_code, ops.c.error_hint)
        .order_by(func.count().desc(), func.min(line))
        .limit(limit)
    )


def error_counts(found: list[Any]) -> tuple[ErrorCount, ...]:
    return tuple(
        ErrorCount(code=code, hint=hint, count=n, first_line=line, message=message or "")
        for code, hint, n, line, message in found
    )


def owned_counts(job_id: str | None = None) -> Select[Any]:
    """(job_id, state, ops) of the ops each job owns (`job_id`: that job's only).

    Read from the index on (job_id, state, seq) alone, never from the rows: ~1M index entries
    per second-tenth, where joining a million rows to their ops took seconds. The ops a job
    owns are the ops of its own rows (an op is owned through the row it runs for: `ops.seq`
    is that row's seq), so they count its rows, except rows naming another job's op
    (`foreign_counts`) and the rows of a pruned job (gone; its done ops stay).
    """
    query = select(ops.c.job_id, ops.c.state, func.count()).group_by(ops.c.job_id, ops.c.state)
    return query if job_id is None else query.where(ops.c.job_id == job_id)


def foreign_counts(job_id: str) -> Select[Any]:
    """(state, rows) of the job's rows whose op another job owns (done before, taken over)."""
    return (
        select(ops.c.state, func.count())
        .select_from(job_rows.join(ops, ops.c.op_id == job_rows.c.op_id))
        .where(job_rows.c.job_id == job_id, ops.c.job_id != job_id)
        .group_by(ops.c.state)
    )


def row_counts(job_id: str) -> Select[Any]:
    """(state, rows) of every row of the job, joined to its op: the definition itself."""
    return (
        select(ops.c.state, func.count())
        .select_from(job_rows.join(ops, ops.c.op_id == job_rows.c.op_id))
        .where(job_rows.c.job_id == job_id)
        .group_by(ops.c.state)
    )


def produced_by_rows(job_id: str, keys: list[str]) -> Select[Any]:
    """(key, site id) of the job's rows named by `keys` whose op succeeded.

    The keys are a VALUES list joined to the rows' unique (job_id, key) index, one equality
    look-up each: with `key IN (...)` instead, SQLite (no statistics) walks every row of the
    job through the primary key, ~1 s a look-up at a million rows."""
    wanted = values(column("key", Text), name="wanted").data([(key,) for key in keys])
    found = wanted.cte("wanted")
    return (
        select(job_rows.c.key, ops.c.site_id)
        .select_from(
            found.join(job_rows, and_(job_rows.c.job_id == job_id,
                                      job_rows.c.key == found.c.key))
            .join(ops, ops.c.op_id == job_rows.c.op_id)
        )
        .where(ops.c.state == OpState.SUCCEEDED.value)
    )


def run_spans() -> Select[Any]:
    """(job_id, first start, last finish, runs) for every job that ran."""
    return select(
        runs.c.job_id, func.min(runs.c.started_at), func.max(runs.c.finished_at), func.count()
    ).group_by(runs.c.job_id)


# -- prune ---------------------------------------------------------------------------------------


def prunable(before: float, now: float) -> Select[Any]:
    """Jobs done with (finished or cancelled), last changed before `before`, not pruned yet,
    and held by no live process at `now` (a process killed holding one leaves its name, with
    a lease that has run out)."""
    return select(jobs.c.job_id).where(
        jobs.c.state.in_(("finished", "cancelled")),
        jobs.c.updated_at < before,
        jobs.c.pruned_at.is_(None),
        or_(jobs.c.lease_owner.is_(None), jobs.c.lease_expires_at <= now),
    )


def delete_rows(job_ids: list[str]) -> Delete:
    return delete(job_rows).where(job_rows.c.job_id.in_(job_ids))


def forget_ops(job_ids: list[str]) -> Delete:
    """Ops owned by pruned jobs that never succeeded and that no remaining row names: nothing
    done, nothing to remember (a later file with the key simply does the work). Succeeded ops
    always stay, so their keys are never sent again."""
    named = exists(select(1).where(job_rows.c.op_id == ops.c.op_id))
    aliased = exists(select(1).where(op_aliases.c.op_id == ops.c.op_id))
    return delete(ops).where(
        ops.c.job_id.in_(job_ids),
        ops.c.state != OpState.SUCCEEDED.value,
        ~named,
        ~aliased,
    )


def mark_pruned(job_ids: list[str], now: float) -> Update:
    return update(jobs).where(jobs.c.job_id.in_(job_ids)).values(pruned_at=now)
