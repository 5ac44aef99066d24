"""The store's non-trivial SQL as SQLAlchemy Core statements (no I/O here).

Each statement is built once and reused with bound parameters (named `b_*`, and `p_*` for
save's rows): the hot path (claim, save) then skips rebuilding the expression and hashing it
for SQLAlchemy's compiled-statement cache, which cost more than SQLite's own work for a batch.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import (
    Column,
    ColumnElement,
    Float,
    Insert,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    Update,
    and_,
    bindparam,
    case,
    exists,
    insert,
    literal,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from bulkops.model import OpState
from bulkops.store.rows import MUTABLE_COLUMNS
from bulkops.store.tables import job_rows, jobs, op_aliases, ops, row_deps, row_value

# A dependency in one of these states can never succeed: whoever waits for it is blocked.
DEAD_STATES = (OpState.FAILED.value, OpState.BLOCKED.value, OpState.CANCELLED.value)
BLOCKED_CODE = "DEPENDENCY_FAILED"
JOB_TOUCH_INTERVAL = 1.0  # seconds: how stale a job's updated_at may get while ops are saved

_dep = ops.alias("dep")

# add_job's scratch table: (seq, dep_key) pairs of the job being added, kept until every row is
# in so references can be resolved with one join whatever order the rows came in. Temporary:
# private to the connection, never part of the schema Alembic manages.
staged_deps = Table(
    "bulkops_staged_deps",
    MetaData(),
    Column("seq", Integer, nullable=False),
    Column("dep_key", Text, nullable=False),
    prefixes=["TEMPORARY"],
)

_job_id = bindparam("b_job_id", type_=Text)
_now = bindparam("b_now", type_=Float)


def insert_job_if_absent(dialect_name: str) -> Insert:
    """INSERT of a jobs row that does nothing (rowcount 0) when the job_id exists already.

    ON CONFLICT rather than look-then-insert: two processes adding the same file at once on
    PostgreSQL both get an answer, and neither gets a unique-violation error.
    """
    dialect_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    return dialect_insert(jobs).on_conflict_do_nothing(index_elements=[jobs.c.job_id])


@cache
def claim(*, skip_locked: bool) -> Update:
    """Lease the first `b_limit` claimable ops of `b_job_id` (input order); return their rows.

    Parameters: b_job_id, b_now, b_owner, b_limit, b_lease_until.

    Each claimable state is read on its own from the (job_id, state, seq) index, already in
    input order, and the two short lists are merged: a single `state IN (...) ORDER BY seq`
    would sort every pending row of the job on each claim.

    With `skip_locked` (PostgreSQL), rows another claimer has locked are passed over while
    scanning, and the lease conditions sit in the locking query itself so PostgreSQL re-checks
    them against a row a concurrent claim has just committed.
    """
    # Rendered into the SQL text, not sent as a parameter: PostgreSQL re-plans a prepared
    # statement generically after five runs, and a generic plan that cannot see the limit (or
    # which state is asked for) hash-joins the whole ops table on every claim.
    limit = bindparam("b_limit", type_=Integer, literal_execute=True)
    ready = [
        _claimable(OpState.PENDING, limit, skip_locked).cte("pending_ready"),
        _claimable(OpState.UNKNOWN, limit, skip_locked).cte("unknown_ready"),
    ]
    merged = union_all(*(select(c.c.op_id, c.c.seq) for c in ready)).subquery("ready")
    first = select(merged.c.op_id).order_by(merged.c.seq).limit(limit)
    return (
        update(ops)
        .where(ops.c.op_id.in_(first))
        .values(
            lease_owner=bindparam("b_owner", type_=Text),
            lease_expires_at=bindparam("b_lease_until", type_=Float),
            updated_at=_now,
        )
        .returning(*ops.c)
    )


def _claimable(state: OpState, limit: ColumnElement[int], skip_locked: bool) -> Select[int, int]:
    conditions: list[ColumnElement[bool]] = [
        ops.c.job_id == _job_id,
        ops.c.state == _inline(state),
        or_(ops.c.not_before.is_(None), ops.c.not_before <= _now),
        # Any live lease, the claimer's own included, means the op is being worked on: a
        # worker that claims again before its write-ahead record lands must not get it twice.
        or_(ops.c.lease_owner.is_(None), ops.c.lease_expires_at <= _now),
    ]
    if state is OpState.PENDING:
        # An UNKNOWN op was sent already: it is reconciled whatever its dependencies did.
        # Its dependencies are those of the row it runs for: the owner job's row.
        unmet = exists(
            select(1)
            .select_from(row_deps.join(_dep, _dep.c.op_id == row_deps.c.dep_op_id))
            .where(
                row_deps.c.job_id == ops.c.job_id,
                row_deps.c.seq == ops.c.seq,
                _dep.c.state != _inline(OpState.SUCCEEDED),
            )
        )
        conditions.append(~unmet)
    query = select(ops.c.op_id, ops.c.seq).where(*conditions).order_by(ops.c.seq).limit(limit)
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return query


def _inline(state: OpState) -> ColumnElement[str]:
    """A state as a constant in the SQL text, so the planner can use its row statistics."""
    return literal(state.value, Text, literal_execute=True)


@cache
def refs() -> Select[int, str, str | None]:
    """(op_id, dep_key, site_id) of every dependency of the ops `b_op_ids`.

    Ops without a site are dropped by the caller, not by SQL: a `site_id IS NOT NULL` test
    tempts PostgreSQL, whose statistics may still say "no op has a site yet", into scanning
    ops first instead of starting from the few claimed op ids.
    """
    return (
        select(ops.c.op_id, row_deps.c.dep_key, _dep.c.site_id)
        .select_from(ops)
        .join(row_deps, and_(row_deps.c.job_id == ops.c.job_id, row_deps.c.seq == ops.c.seq))
        .join(_dep, _dep.c.op_id == row_deps.c.dep_op_id)
        .where(ops.c.op_id.in_(bindparam("b_op_ids", expanding=True)))
    )


@cache
def next_wakeup() -> Select[float | None]:
    """The earliest not_before among unleased PENDING/UNKNOWN ops of `b_job_id` (no row: none).

    Only scheduled ops (not_before set) can have one, and the partial index holding just
    those gives the answer without visiting every waiting op: this runs each time the
    engine finds nothing to claim.
    """
    return (
        select(ops.c.not_before)
        .where(
            ops.c.job_id == _job_id,
            ops.c.not_before.is_not(None),
            ops.c.state.in_((_inline(OpState.PENDING), _inline(OpState.UNKNOWN))),
            ops.c.lease_owner.is_(None),
        )
        .order_by(ops.c.not_before)
        .limit(1)
    )


@cache
def block_waiting_on_dead() -> Update:
    """One layer of blocking in `b_job_id`: PENDING ops it owns with a FAILED/BLOCKED/CANCELLED
    dependency (in this job or, through `@key` to an earlier run, in another). Parameters:
    b_job_id, b_now."""
    waiting_on_dead = (
        select(row_deps.c.seq)
        .select_from(row_deps.join(_dep, _dep.c.op_id == row_deps.c.dep_op_id))
        .where(row_deps.c.job_id == _job_id, _dep.c.state.in_(DEAD_STATES))
    )
    first_dead_key = (
        select(row_deps.c.dep_key)
        .select_from(row_deps.join(_dep, _dep.c.op_id == row_deps.c.dep_op_id))
        .where(
            row_deps.c.job_id == ops.c.job_id,
            row_deps.c.seq == ops.c.seq,
            _dep.c.state.in_(DEAD_STATES),
        )
        .order_by(row_deps.c.dep_key)
        .limit(1)
        .scalar_subquery()
    )
    return (
        update(ops)
        .where(
            ops.c.job_id == _job_id,
            ops.c.state == OpState.PENDING.value,
            ops.c.seq.in_(waiting_on_dead),
        )
        .values(
            state=OpState.BLOCKED.value,
            error_code=BLOCKED_CODE,
            error_message=literal("dependency @", Text) + first_dead_key + literal(" failed", Text),
            error_hint=None,
            error_status=None,
            error_request_id=None,
            not_before=None,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=_now,
        )
    )


def link_dependencies(job_id: str, scope: str) -> list[Insert]:
    """row_deps for every staged (seq, dep_key): a key of the file names that row's op; any
    other key names the op of an earlier run in the same scope (by its key, or an alias)."""
    job = literal(job_id, Text)
    in_file = (
        select(job, staged_deps.c.seq, staged_deps.c.dep_key, job_rows.c.op_id)
        .select_from(staged_deps)
        .join(job_rows, and_(job_rows.c.job_id == job_id,
                             job_rows.c.key == staged_deps.c.dep_key))
    )
    named_in_file = exists(
        select(1).where(job_rows.c.job_id == job_id, job_rows.c.key == staged_deps.c.dep_key)
    )
    earlier = (
        select(job, staged_deps.c.seq, staged_deps.c.dep_key, ops.c.op_id)
        .select_from(staged_deps)
        .join(ops, and_(ops.c.scope == scope, ops.c.key == staged_deps.c.dep_key))
        .where(~named_in_file)
    )
    named_by_op = exists(
        select(1).where(ops.c.scope == scope, ops.c.key == staged_deps.c.dep_key)
    )
    aliased = (
        select(job, staged_deps.c.seq, staged_deps.c.dep_key, op_aliases.c.op_id)
        .select_from(staged_deps)
        .join(op_aliases, and_(op_aliases.c.scope == scope,
                               op_aliases.c.key == staged_deps.c.dep_key))
        .where(~named_in_file, ~named_by_op)
    )
    columns = ["job_id", "seq", "dep_key", "dep_op_id"]
    return [
        insert(row_deps).from_select(columns, query) for query in (in_file, earlier, aliased)
    ]


def first_dangling_dependency(job_id: str) -> Select[int, str]:
    """(line, dep_key) of a staged dependency that was linked to no op, if any."""
    waiter = job_rows.alias("waiter")
    linked = exists(
        select(1).where(
            row_deps.c.job_id == job_id,
            row_deps.c.seq == staged_deps.c.seq,
            row_deps.c.dep_key == staged_deps.c.dep_key,
        )
    )
    return (
        select(row_value("line", waiter), staged_deps.c.dep_key)
        .select_from(staged_deps)
        .join(waiter, and_(waiter.c.job_id == job_id, waiter.c.seq == staged_deps.c.seq))
        .join(ops, ops.c.op_id == waiter.c.op_id)
        .where(~linked)
        .order_by(staged_deps.c.seq)
        .limit(1)
    )


@cache
def touch_jobs() -> Update:
    """Set updated_at = b_now on the jobs `b_job_ids`, at most once per JOB_TOUCH_INTERVAL.

    Every save would otherwise update the same jobs row, and on PostgreSQL that row's lock
    would queue the saves of all workers sharing a job behind one another.
    """
    return (
        update(jobs)
        .where(
            jobs.c.job_id.in_(bindparam("b_job_ids", expanding=True)),
            jobs.c.updated_at <= _now - JOB_TOUCH_INTERVAL,
        )
        .values(updated_at=_now)
    )


@cache
def touch_job() -> Update:
    """As `touch_jobs`, for one job `b_job_id` (executemany over several)."""
    return (
        update(jobs)
        .where(jobs.c.job_id == _job_id, jobs.c.updated_at <= _now - JOB_TOUCH_INTERVAL)
        .values(updated_at=_now)
    )


@cache
def save_many(*, fingerprint: bool = True) -> Update:
    """UPDATE by op_id of every mutable column, for executemany with `p_*` parameter dicts;
    without `fingerprint`, every one but the fingerprint (and no p_fingerprint parameter).

    Releasing an op (lease_owner NULL) also clears its lease expiry; keeping an owner keeps
    the expiry the claim set.

    A fingerprint only ever changes once, from none to its value when the op succeeds (a
    create's is stored with the row): the saves that cannot change it leave its index alone,
    which SQLite otherwise rewrites on every update that names the column, same value or not
    (about three times the cost of the rest of the update).
    """
    values: dict[str, object] = {name: bindparam(f"p_{name}") for name in MUTABLE_COLUMNS
                                 if fingerprint or name != "fingerprint"}
    values["lease_expires_at"] = case(
        (bindparam("p_lease_owner", type_=Text).is_(None), null()),
        else_=ops.c.lease_expires_at,
    )
    values["updated_at"] = bindparam("p_updated_at")
    return update(ops).where(ops.c.op_id == bindparam("p_op_id")).values(values)
