"""What a run does with the operations its job's rows name: take them on, arm them again, or
leave them to the process that runs them now; and the job lease that makes that process one.

Statements only (no I/O). Parameters are `b_*` bind names, as in `statements`.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    Text,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    select,
)
from sqlalchemy import update as sql_update

from bulkops.model import OpState
from bulkops.store.tables import OWNER_ROW_COLUMNS, job_rows, jobs, ops, row_value

_job_id = bindparam("b_job_id", type_=Text)
_now = bindparam("b_now", type_=Float)
_owner = bindparam("b_owner", type_=Text)

OPEN_STATES = (OpState.PENDING.value, OpState.RUNNING.value, OpState.UNKNOWN.value)
# Final without success: a new run of the file runs them again (the fix-and-rerun loop).
RERUNNABLE_STATES = (OpState.FAILED.value, OpState.BLOCKED.value, OpState.CANCELLED.value)
_CLEARED = {
    "error_code": None,
    "error_message": None,
    "error_hint": None,
    "error_status": None,
    "error_request_id": None,
}
_RELEASED = {"lease_owner": None, "lease_expires_at": None}


def _owner_is_live() -> Select[int]:
    """A live process holds the lease of the op's owner job (correlated to `ops`)."""
    return select(1).where(
        jobs.c.job_id == ops.c.job_id,
        jobs.c.lease_owner.is_not(None),
        jobs.c.lease_expires_at > _now,
    )


def _own_row(column: str) -> Select[object]:
    """`column` of the job's (first) row that names the op, by key or by another name."""
    value = row_value(column).element if column in OWNER_ROW_COLUMNS else job_rows.c[column]
    return (
        select(value)
        .where(job_rows.c.job_id == _job_id, job_rows.c.op_id == ops.c.op_id)
        .order_by(job_rows.c.seq)
        .limit(1)
        .scalar_subquery()  # type: ignore[return-value]
    )


def _adoptable(*, rerun: bool) -> tuple[ColumnElement[bool], ...]:
    """`adopt`'s ops (conditions on `ops`): named by the job's rows, owned by another job that
    no live process runs, open (with `rerun`, also failed, blocked or cancelled)."""
    states = OPEN_STATES + (RERUNNABLE_STATES if rerun else ())
    named = job_rows.alias("named")  # not the job_rows an UPDATE of it would correlate to
    return (
        ops.c.op_id.in_(select(named.c.op_id).where(named.c.job_id == _job_id)),
        ops.c.job_id != _job_id,
        ops.c.state.in_(states),
        ~exists(_owner_is_live()),
    )


@cache
def keep_owner_rows(*, rerun: bool) -> Update:
    """Before `adopt`: the rows that leave their line, action and spec to an op it is about
    to move (its owner's row, `tables.job_rows`) take those values as their own, since the op
    will hold the adopting row's from then on. Parameters: b_job_id, b_now."""
    return (
        sql_update(job_rows)
        .where(
            job_rows.c.spec.is_(None),
            job_rows.c.op_id.in_(select(ops.c.op_id).where(*_adoptable(rerun=rerun))),
        )
        .values({
            name: func.coalesce(
                job_rows.c[name],
                select(ops.c[name]).where(ops.c.op_id == job_rows.c.op_id).scalar_subquery(),
            )
            for name in OWNER_ROW_COLUMNS
        })
    )


@cache
def adopt(*, rerun: bool) -> Update:
    """Take on the ops the job's rows name that another job owns and no live process runs:
    open ones (they were left unfinished), and with `rerun` also failed, blocked and cancelled
    ones. The op then runs for this job's row: its line, its spec (an earlier attempt that had
    no effect is replaced by the row's content), its dependencies. One that was in flight in a
    dead process becomes UNKNOWN. Run `keep_owner_rows` first, in the same transaction.
    Parameters: b_job_id, b_now."""
    # Never an op whose owner row still leaves its values to it: on PostgreSQL (READ
    # COMMITTED) the owner's lease may end between `keep_owner_rows` and this statement, which
    # then sees an op the former did not; it is taken on at the next take-over instead.
    owner_row = job_rows.alias("owner_row")
    written_out = ~exists(select(1).where(
        owner_row.c.job_id == ops.c.job_id, owner_row.c.seq == ops.c.seq,
        owner_row.c.spec.is_(None),
    ))
    return (
        sql_update(ops)
        .where(*_adoptable(rerun=rerun), written_out)
        .values(
            job_id=_job_id,
            seq=_own_row("seq"),
            line=_own_row("line"),
            spec=_own_row("spec"),
            state=case(
                (ops.c.state == OpState.RUNNING.value, OpState.UNKNOWN.value),
                else_=ops.c.state,
            ),
            updated_at=_now,
            **_RELEASED,
        )
    )


@cache
def rearm(*, maybe_applied: bool) -> Update:
    """Failed, blocked or cancelled ops of the job run again with a fresh attempt budget: those
    whose attempts surely had no effect as PENDING; those given up on without knowing their
    effect (`maybe_applied`) as UNKNOWN, looked up at Wix before anything is sent again.
    Parameters: b_job_id, b_now."""
    if maybe_applied:
        # The error stays: it tells what was not known, and a transfer's SITE_NOT_FOUND
        # keeps steering its reconciliation.
        values: dict[str, object] = {"state": OpState.UNKNOWN.value, "maybe_applied": False}
    else:
        values = {"state": OpState.PENDING.value, "note": None, **_CLEARED}
    return (
        sql_update(ops)
        .where(
            ops.c.job_id == _job_id,
            ops.c.state.in_(RERUNNABLE_STATES),
            ops.c.maybe_applied.is_(maybe_applied),
        )
        .values(attempts=0, checks=0, not_before=None, updated_at=_now, **values, **_RELEASED)
    )


@cache
def held_elsewhere() -> Select[int]:
    """How many of the job's rows name an unfinished op another job owns (after `adopt`, those
    a live process runs). Parameters: b_job_id."""
    return (
        select(func.count())
        .select_from(job_rows.join(ops, ops.c.op_id == job_rows.c.op_id))
        .where(
            job_rows.c.job_id == _job_id,
            ops.c.job_id != _job_id,
            ops.c.state.in_(OPEN_STATES),
        )
    )


@cache
def cancel(*, in_flight: bool) -> Update:
    """The job's unfinished ops become CANCELLED; with `in_flight`, those whose outcome is not
    known (RUNNING, UNKNOWN), which keep that fact as `maybe_applied`. Parameters: b_job_id,
    b_now."""
    states = (
        (OpState.RUNNING.value, OpState.UNKNOWN.value)
        if in_flight
        else (OpState.PENDING.value, OpState.BLOCKED.value)
    )
    values: dict[str, object] = {
        "state": OpState.CANCELLED.value, "not_before": None, "updated_at": _now, **_RELEASED,
    }
    if in_flight:
        values["maybe_applied"] = True
        values["note"] = "cancelled while its outcome was unknown: a re-run looks it up first"
    return (
        sql_update(ops)
        .where(ops.c.job_id == _job_id, ops.c.state.in_(states))
        .values(values)
    )


# -- the job lease ---------------------------------------------------------------------------


def lease_free_or_held_by(owner: ColumnElement[str]) -> ColumnElement[bool]:
    """The job's lease is free, expired, or `owner`'s already (needs b_now)."""
    return (jobs.c.lease_owner.is_(None) | (jobs.c.lease_expires_at <= _now)
            | (jobs.c.lease_owner == owner))


@cache
def acquire() -> Update:
    """Take the job's lease for `b_owner` until `b_until` if it is free, expired or already
    ours. Parameters: b_job_id, b_owner, b_now, b_until. rowcount 1: taken."""
    return (
        sql_update(jobs)
        .where(jobs.c.job_id == _job_id, lease_free_or_held_by(_owner))
        .values(
            lease_owner=_owner,
            lease_expires_at=bindparam("b_until", type_=Float),
            lease_since=case(
                (and_(jobs.c.lease_owner == _owner, jobs.c.lease_since.is_not(None)),
                 jobs.c.lease_since),
                else_=_now,
            ),
        )
    )


@cache
def renew() -> Update:
    """Extend our lease to `b_until`. Parameters: b_job_id, b_owner, b_until. rowcount 0: it
    is no longer ours (it expired and another process took it)."""
    return (
        sql_update(jobs)
        .where(jobs.c.job_id == _job_id, jobs.c.lease_owner == _owner)
        .values(lease_expires_at=bindparam("b_until", type_=Float))
    )


@cache
def release() -> Update:
    """Give our lease up at once. Parameters: b_job_id, b_owner."""
    return (
        sql_update(jobs)
        .where(jobs.c.job_id == _job_id, jobs.c.lease_owner == _owner)
        .values(lease_owner=None, lease_expires_at=None, lease_since=None)
    )
