"""Processes sharing one database: workers sharing a job (joining it, the heartbeat, leaving,
taking back the operations of a worker that died), and every process taking its requests'
turns from its account's one budget.

Statements only (no I/O). Parameters are `b_*` bind names, as in `statements`.

Every statement that changes who shares a job updates the job's own row first (its lease):
on PostgreSQL that row lock orders a worker joining against a `run` taking the job for
itself, and the last worker leaving against one joining, so neither can miss the other. On
SQLite one writer at a time gives the same.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import (
    Delete,
    Float,
    Insert,
    Select,
    Text,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    select,
)
from sqlalchemy import insert as sql_insert
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Update

from bulkops.model import SHARED_OWNER, OpState
from bulkops.store.tables import budgets, job_workers, jobs, ops
from bulkops.store.takeover import lease_free_or_held_by

_job_id = bindparam("b_job_id", type_=Text)
_owner = bindparam("b_owner", type_=Text)
_now = bindparam("b_now", type_=Float)
_until = bindparam("b_until", type_=Float)

_OPEN_STATES = (OpState.PENDING.value, OpState.RUNNING.value, OpState.UNKNOWN.value)


@cache
def share_lease() -> Update:
    """Hold the job's lease for workers until at least `b_until`: when it is free, expired, or
    workers hold it already (never a `run`'s). Parameters: b_job_id, b_now, b_until.
    rowcount 1: held."""
    shared = and_(jobs.c.lease_owner == SHARED_OWNER, jobs.c.lease_expires_at > _now)
    return (
        sql_update(jobs)
        .where(jobs.c.job_id == _job_id, lease_free_or_held_by(literal(SHARED_OWNER)))
        .values(
            lease_owner=SHARED_OWNER,
            lease_since=case((shared, jobs.c.lease_since), else_=_now),
            lease_expires_at=case(
                (and_(shared, jobs.c.lease_expires_at > _until), jobs.c.lease_expires_at),
                else_=_until,
            ),
        )
    )


@cache
def add_worker() -> Insert:
    """Parameters: b_job_id, b_owner, b_now, b_until."""
    return sql_insert(job_workers).values(job_id=_job_id, owner=_owner, since=_now,
                                          expires_at=_until)


@cache
def renew_worker() -> Update:
    """Extend a worker's turn, lapsed or not, unless another worker took its rows back (which
    forgets the worker). Parameters: b_job_id, b_owner, b_until. rowcount 0: lost."""
    return (
        sql_update(job_workers)
        .where(job_workers.c.job_id == _job_id, job_workers.c.owner == _owner)
        .values(expires_at=_until)
    )


@cache
def live_workers() -> Select[int]:
    """How many workers share the job at b_now. Parameters: b_job_id, b_now."""
    return select(func.count()).select_from(job_workers).where(
        job_workers.c.job_id == _job_id, job_workers.c.expires_at > _now)


@cache
def remove_worker() -> Delete:
    """Parameters: b_job_id, b_owner."""
    return delete(job_workers).where(job_workers.c.job_id == _job_id,
                                     job_workers.c.owner == _owner)


@cache
def release_if_last() -> Update:
    """Free the job's lease when no live worker is left on it. Parameters: b_job_id, b_now.
    rowcount 1: the caller was the last."""
    live = select(1).where(job_workers.c.job_id == _job_id, job_workers.c.expires_at > _now)
    return (
        sql_update(jobs)
        .where(jobs.c.job_id == _job_id, jobs.c.lease_owner == SHARED_OWNER, ~exists(live))
        .values(lease_owner=None, lease_expires_at=None, lease_since=None)
    )


@cache
def dead_workers() -> Select[tuple[str]]:
    """Workers of the job whose turn lapsed. Parameters: b_job_id, b_now."""
    return select(job_workers.c.owner).where(job_workers.c.job_id == _job_id,
                                             job_workers.c.expires_at <= _now)


def _taken_back() -> dict[str, object]:
    """An op taken back from a worker or run that died: unleased, and UNKNOWN if it was in
    flight (RUNNING): it is looked up at Wix before anything is sent again."""
    return {
        "state": case((ops.c.state == OpState.RUNNING.value, OpState.UNKNOWN.value),
                      else_=ops.c.state),
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": _now,
    }


def take_back(owners: list[str]) -> Update:
    """The open ops of the job that the dead `owners` held, unleased; those in flight
    (RUNNING) become UNKNOWN. Parameters: b_job_id, b_now."""
    return (
        sql_update(ops)
        .where(ops.c.job_id == _job_id, ops.c.state.in_(_OPEN_STATES),
               ops.c.lease_owner.in_(owners))
        .values(_taken_back())
    )


@cache
def take_back_orphans() -> Update:
    """The job's open ops leased to anyone but its live workers, unleased; those in flight
    (RUNNING) become UNKNOWN: what a process that held the job alone (a `run`) and died left,
    found when workers first share the job after it. Parameters: b_job_id, b_now."""
    live = select(job_workers.c.owner).where(job_workers.c.job_id == _job_id,
                                             job_workers.c.expires_at > _now)
    return (
        sql_update(ops)
        .where(ops.c.job_id == _job_id, ops.c.state.in_(_OPEN_STATES),
               ops.c.lease_owner.is_not(None), ops.c.lease_owner.not_in(live))
        .values(_taken_back())
    )


def forget_workers(owners: list[str]) -> Delete:
    """Parameters: b_job_id."""
    return delete(job_workers).where(job_workers.c.job_id == _job_id,
                                     job_workers.c.owner.in_(owners))


@cache
def held_by_others() -> Select[tuple[int]]:
    """Whether another owner holds an open op of the job (1 row) or not (none): rows in
    flight and being reconciled are looked for first, among few. Parameters: b_job_id,
    b_owner."""
    found = [
        select(ops.c.op_id)
        .where(ops.c.job_id == _job_id, ops.c.state == state,
               ops.c.lease_owner.is_not(None), ops.c.lease_owner != _owner)
        .limit(1)
        .subquery(f"held_{state}")
        for state in (OpState.RUNNING.value, OpState.UNKNOWN.value, OpState.PENDING.value)
    ]
    return select(1).where(exists(select(found[0].c.op_id))
                           | exists(select(found[1].c.op_id))
                           | exists(select(found[2].c.op_id)))


_scope = bindparam("b_scope", type_=Text)
_span = bindparam("b_span", type_=Float)
_throttled = bindparam("b_throttled_at", type_=Float)


@cache
def insert_budget_if_absent(dialect_name: str) -> Insert:
    """The account's budget row, free from `b_now`, if it has none yet. Parameters: b_scope,
    b_now."""
    dialect_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    return (
        dialect_insert(budgets)
        .values(scope=_scope, next_at=_now, updated_at=_now)  # throttled_at: its default, 0
        .on_conflict_do_nothing(index_elements=[budgets.c.scope])
    )


@cache
def take_turns() -> Update:
    """GCRA on the account's row: the next `b_span` seconds of turns from the next free one
    (never before `b_now`: turns not taken in time are not kept for a burst), and the latest
    429 any process saw. Parameters: b_scope, b_now, b_span, b_throttled_at. Returns the new
    (next_at, throttled_at): the turns taken end at next_at."""
    return (
        sql_update(budgets)
        .where(budgets.c.scope == _scope)
        .values(
            next_at=case((budgets.c.next_at > _now, budgets.c.next_at), else_=_now) + _span,
            throttled_at=case((budgets.c.throttled_at > _throttled, budgets.c.throttled_at),
                              else_=_throttled),
            updated_at=_now,
        )
        .returning(budgets.c.next_at, budgets.c.throttled_at)
    )
