"""The checkpoint schema as SQLAlchemy Core tables. Alembic compares its migrations against it.

Shape:
- `ops` holds one row per *operation*: its identity is `(scope, key)`, where the scope is the
  Wix account and API it runs against, across every job and file of the database. That row is
  what is sent, leased, reconciled and recorded, so a row of a re-run, grown or edited file
  that names a done operation is never sent again.
- `job_rows` holds what each job file said, row by row, pointing at its operation. A job's
  report and counts are its rows joined to their operations.
- An operation is *owned* by one job at a time (`ops.job_id`, `ops.seq`: the row it runs for),
  the job that last took it on; claims walk the owner's ops in input order through partial
  indexes. Its dependencies are its owner row's (`row_deps`).
- Leases (`lease_owner`, `lease_expires_at`) live on ops, so many worker processes on
  PostgreSQL can share a job with `FOR UPDATE SKIP LOCKED`; `jobs` carries a lease too (with
  heartbeats), so one process at a time runs a job and a dead holder's lock simply expires.
- Times are unix seconds in floats: one portable type on SQLite and PostgreSQL, no time zones.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.sql.elements import Label
from sqlalchemy.sql.selectable import FromClause

# Explicit constraint names, so migrations and the ORM-free code agree on them on every dialect.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# SQLite only auto-assigns ids to a column declared exactly INTEGER PRIMARY KEY.
OP_ID = BigInteger().with_variant(Integer(), "sqlite")

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("path", Text, nullable=False),
    Column("format", Text, nullable=False),
    Column("total", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("stop_reason", Text),
    Column("account_id", Text, nullable=False, server_default=""),
    Column("base_url", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("lease_owner", Text),
    Column("lease_expires_at", Float),
    Column("lease_since", Float),  # when the holder took the lease: "held by ... since"
    Column("pruned_at", Float),  # `prune` removed its rows (its succeeded ops stay)
)

ops = Table(
    "ops",
    metadata,
    Column("op_id", OP_ID, primary_key=True, autoincrement=True),
    Column("job_id", Text, ForeignKey("jobs.job_id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),  # input order, from 0
    Column("line", Integer, nullable=False),
    Column("key", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("spec", Text, nullable=False),  # OpSpec.to_json() as JSON text
    Column("state", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("site_id", Text),
    Column("invite_id", Text),
    # OpRecord.details as JSON text: what a family keeps beyond the ids (registrar records).
    Column("details", Text),
    Column("error_code", Text),
    Column("error_message", Text),
    Column("error_hint", Text),
    Column("error_status", Integer),
    Column("error_request_id", Text),
    Column("first_sent_at", Float),
    Column("last_sent_at", Float),
    Column("not_before", Float),
    Column("checks", Integer, nullable=False, server_default="0"),
    Column("note", Text),
    Column("lease_owner", Text),
    Column("lease_expires_at", Float),
    Column("updated_at", Float, nullable=False),
    # The account and API the operation runs against (`identity.scope_of`): keys are unique in it.
    Column("scope", Text, nullable=False, server_default=""),
    # Invites only, once succeeded: who was invited to what (`invitees.invite_fingerprint`).
    Column("fingerprint", Text),
    # A final state reached without knowing whether the last request took effect.
    Column("maybe_applied", Boolean, nullable=False, server_default=false()),
    # The owner job holds one row per seq. One per key too, but that follows from
    # `ux_ops_scope_key` (a job's ops all share its scope): no index of its own for it, which
    # was 6% of a million-row database (migration 0005_compact_rows).
    UniqueConstraint("job_id", "seq"),
    # Ops of one state in input order: counts, `iter_ops(only=...)`, finding failed ops.
    Index(None, "job_id", "state", "seq"),
    sqlite_autoincrement=True,  # never reuse an op_id, even after rows are deleted
)


def _claimable_by_seq(state: str) -> Index:
    """claim_ready's index for one claimable state: just those ops, in input order.

    It shrinks as the job progresses and holds no finished op to step over. Without it,
    PostgreSQL (whose statistics lag behind a running job) prefers walking (job_id, seq) past
    every finished op on each claim: quadratic over a large job.
    """
    only_state = ops.c.state == state
    return Index(
        f"ix_ops_{state}_by_seq",
        ops.c.job_id,
        ops.c.seq,
        sqlite_where=only_state,
        postgresql_where=only_state,
    )


PENDING_BY_SEQ = _claimable_by_seq("pending")
UNKNOWN_BY_SEQ = _claimable_by_seq("unknown")

# next_wakeup's index: only ops waiting for a time (retry back-off, reconciliation), by time.
_scheduled = ops.c.not_before.is_not(None)
SCHEDULED = Index(
    "ix_ops_scheduled",
    ops.c.job_id,
    ops.c.not_before,
    sqlite_where=_scheduled,
    postgresql_where=_scheduled,
)

# The operation's identity: one op per key in a scope, whichever job or file names it.
SCOPE_KEY = Index("ux_ops_scope_key", ops.c.scope, ops.c.key, unique=True)
_fingerprinted = ops.c.fingerprint.is_not(None)
FINGERPRINT = Index(
    "ix_ops_fingerprint",
    ops.c.scope,
    ops.c.fingerprint,
    sqlite_where=_fingerprinted,
    postgresql_where=_fingerprinted,
)

# Other keys that name an operation: a row found to be an invite already done under another
# key (same person, place and roles) leaves its own key here, so a later file may name it.
op_aliases = Table(
    "op_aliases",
    metadata,
    Column("scope", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("op_id", OP_ID, ForeignKey("ops.op_id", ondelete="CASCADE"), nullable=False),
    Column("job_id", Text, nullable=False),  # where the key was first seen, for messages
    Column("line", Integer, nullable=False),
    PrimaryKeyConstraint("scope", "key"),
)

# A row stored naming the op made for it (its job owns the op at the row's own seq) keeps its
# line, action and spec only in ops: NULL here, read through `row_value`. Those three were
# more than half of a million-row job's rows (migration 0007_owner_rows). Any other row keeps
# its own (one naming earlier work, or one that took an op on later). An owner row gets its
# values back before another job takes the op on (`takeover.keep_owner_rows`): NULL always
# means "the op's, which this row wrote".
job_rows = Table(
    "job_rows",
    metadata,
    Column("job_id", Text, ForeignKey("jobs.job_id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),  # input order, from 0
    Column("line", Integer),
    Column("key", Text, nullable=False),
    Column("action", Text),
    Column("spec", Text),  # OpSpec.to_json() as compact, key-sorted JSON text
    Column("op_id", OP_ID, ForeignKey("ops.op_id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("job_id", "seq"),
    UniqueConstraint("job_id", "key"),  # resolves the file's `@key` references
    # Which jobs name an operation: take-over and "done in job ..." notes.
    Index(None, "op_id"),
)

OWNER_ROW_COLUMNS = ("line", "action", "spec")


def row_value(name: str, rows: FromClause = job_rows, op: FromClause = ops) -> Label[Any]:
    """The row's own `name` (one of OWNER_ROW_COLUMNS), from `rows` (job_rows or an alias of
    it) or else from its op `op` (ops or an alias, joined by op_id), labelled `name`."""
    return func.coalesce(rows.c[name], op.c[name]).label(name)


row_deps = Table(
    "row_deps",
    metadata,
    Column("job_id", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("dep_key", Text, nullable=False),  # as written in the job file, without "@"
    Column("dep_op_id", OP_ID, ForeignKey("ops.op_id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("job_id", "seq", "dep_key"),
    ForeignKeyConstraint(
        ["job_id", "seq"], ["job_rows.job_id", "job_rows.seq"], ondelete="CASCADE"
    ),
    # block_dependents walks from a failed op to the rows waiting for it.
    Index(None, "dep_op_id"),
)

# One row per `run`/`resume` of a job: what it did, for summaries, `jobs` and the HTML report.
runs = Table(
    "runs",
    metadata,
    Column("run_id", OP_ID, primary_key=True, autoincrement=True),
    Column("job_id", Text, ForeignKey("jobs.job_id", ondelete="CASCADE"), nullable=False),
    Column("command", Text, nullable=False),  # run | resume
    Column("owner", Text, nullable=False),  # host:pid:token, as the job lease names it
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),  # NULL: the process died before it could say
    Column("outcome", Text),
    Column("reason", Text),
    Column("requests", Integer, nullable=False, server_default="0"),
    Column("throttled", Integer, nullable=False, server_default="0"),
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("reconciled", Integer, nullable=False, server_default="0"),
    Column("succeeded", Integer, nullable=False, server_default="0"),
    Column("failed", Integer, nullable=False, server_default="0"),
    Column("budget_per_second", Float, nullable=False, server_default="0"),
    Column("bucket_seconds", Float, nullable=False, server_default="60"),
    Column("timeline", Text, nullable=False, server_default="[]"),  # JSON: requests per bucket
    Index(None, "job_id", "started_at"),
    sqlite_autoincrement=True,
)

# The worker processes sharing a job (`bulkops worker`), each until its heartbeat lapses.
# While any is live, `jobs.lease_owner` is `model.SHARED_OWNER`: a `run` or `resume` of the
# job waits or exits 4. An op a worker claimed carries its `owner` in `ops.lease_owner`: once
# the worker's `expires_at` has passed, it is dead, and the ops it held are taken back (those
# it had sent become UNKNOWN, to be reconciled before anything is sent again).
job_workers = Table(
    "job_workers",
    metadata,
    Column("job_id", Text, ForeignKey("jobs.job_id", ondelete="CASCADE"), nullable=False),
    Column("owner", Text, nullable=False),  # host:pid:token
    Column("since", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    PrimaryKeyConstraint("job_id", "owner"),
)

# One row per account (its scope: account and API) that every process running its jobs takes
# its requests' turns from, a few at a time (`sharedbudget`): the account's rate limit is
# Wix's per key, not per process. `next_at` is the next free turn (GCRA's theoretical arrival
# time, unix seconds); `throttled_at` the latest 429 any of them saw, so that all slow down.
budgets = Table(
    "budgets",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("next_at", Float, nullable=False),
    Column("throttled_at", Float, nullable=False, server_default="0"),
    Column("updated_at", Float, nullable=False),
)
