"""The checkpoint schema as SQLAlchemy Core tables. Alembic compares its migrations against it.

Shape chosen for where the store is going, not only where it is:
- `ops.op_id` is a global surrogate key (not `(job_id, key)`), so dependency links and any later
  cross-job identity of an operation point at one row without repeating text keys.
- Leases (`lease_owner`, `lease_expires_at`) live on rows, so many worker processes on PostgreSQL
  can share a job with `FOR UPDATE SKIP LOCKED` and a dead worker's claims simply expire.
- `jobs` carries the same lease pair so one runner per job can be enforced by a row, not a file.
- Times are unix seconds in floats: one portable type on SQLite and PostgreSQL, no time zones.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)

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
    UniqueConstraint("job_id", "key"),  # also resolves `@key` references when a job is added
    UniqueConstraint("job_id", "seq"),  # also serves input-order paging (iter_ops)
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

op_deps = Table(
    "op_deps",
    metadata,
    Column("op_id", OP_ID, ForeignKey("ops.op_id", ondelete="CASCADE"), primary_key=True),
    Column("dep_op_id", OP_ID, ForeignKey("ops.op_id", ondelete="CASCADE"), primary_key=True),
    Column("dep_key", Text, nullable=False),  # as written in the job file, without "@"
    # block_dependents walks from a failed op to the ops waiting for it.
    Index(None, "dep_op_id"),
)
