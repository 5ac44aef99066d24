"""Operation identity across jobs: one op per key and scope; jobs point at ops through rows.

Before: a job's identity was its file's bytes and every job had its own ops, so an edited file
sent everything again. After: `ops` holds one row per (scope, key) and `job_rows` records what
each job file said. Every recorded outcome is kept: where old jobs hold the same key in one
scope (the duplicates this revision exists to stop), the op that succeeded (the latest, if
several did) is kept and every job's row points at it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from bulkops.identity import fingerprint
from bulkops.model import OpSpec

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OP_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("lease_since", sa.Float()))
    op.add_column("ops", sa.Column("scope", sa.Text(), nullable=False, server_default=""))
    op.add_column("ops", sa.Column("fingerprint", sa.Text()))
    op.add_column(
        "ops", sa.Column("maybe_applied", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    _create_rows_tables()
    bind = op.get_bind()
    _fill_scopes(bind)
    bind.execute(sa.text(
        "INSERT INTO job_rows (job_id, seq, line, key, action, spec, op_id) "
        "SELECT job_id, seq, line, key, action, spec, op_id FROM ops"
    ))
    bind.execute(sa.text(
        "INSERT INTO row_deps (job_id, seq, dep_key, dep_op_id) "
        "SELECT w.job_id, w.seq, d.dep_key, d.dep_op_id FROM op_deps d "
        "JOIN ops w ON w.op_id = d.op_id"
    ))
    # Outcomes that were given up on without knowing whether they took effect.
    bind.execute(sa.text(
        "UPDATE ops SET maybe_applied = :yes WHERE state = 'failed' AND "
        "(error_code = 'OUTCOME_UNKNOWN' OR error_message LIKE 'the outcome of attempt %')"
    ), {"yes": True})
    _merge_duplicates(bind)
    _fill_fingerprints(bind)
    op.drop_index("ix_op_deps_dep_op_id", table_name="op_deps")
    op.drop_table("op_deps")
    op.create_index("ux_ops_scope_key", "ops", ["scope", "key"], unique=True)
    fingerprinted = sa.text("fingerprint IS NOT NULL")
    op.create_index(
        "ix_ops_fingerprint", "ops", ["scope", "fingerprint"],
        sqlite_where=fingerprinted, postgresql_where=fingerprinted,
    )


def _create_rows_tables() -> None:
    op.create_table(
        "job_rows",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("op_id", OP_ID, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_job_rows"),
        sa.UniqueConstraint("job_id", "key", name="uq_job_rows_job_id_key"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.job_id"], name="fk_job_rows_job_id_jobs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["op_id"], ["ops.op_id"], name="fk_job_rows_op_id_ops", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_job_rows_op_id", "job_rows", ["op_id"])
    op.create_table(
        "row_deps",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("dep_key", sa.Text(), nullable=False),
        sa.Column("dep_op_id", OP_ID, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "seq", "dep_key", name="pk_row_deps"),
        sa.ForeignKeyConstraint(
            ["job_id", "seq"], ["job_rows.job_id", "job_rows.seq"],
            name="fk_row_deps_job_id_job_rows", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["dep_op_id"], ["ops.op_id"], name="fk_row_deps_dep_op_id_ops", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_row_deps_dep_op_id", "row_deps", ["dep_op_id"])
    op.create_table(
        "op_aliases",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("op_id", OP_ID, nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_op_aliases"),
        sa.ForeignKeyConstraint(
            ["op_id"], ["ops.op_id"], name="fk_op_aliases_op_id_ops", ondelete="CASCADE"
        ),
    )


def _scope(account_id: str, base_url: str) -> str:
    # The same text as bulkops.identity.scope_of, spelt out: a migration is a frozen snapshot.
    return hashlib.sha256(f"{account_id}|{base_url}".encode()).hexdigest()[:16]


def _fill_scopes(bind: sa.Connection) -> None:
    jobs = bind.execute(sa.text("SELECT job_id, account_id, base_url FROM jobs")).all()
    for job_id, account_id, base_url in jobs:
        bind.execute(
            sa.text("UPDATE ops SET scope = :scope WHERE job_id = :job"),
            {"scope": _scope(account_id, base_url), "job": job_id},
        )


def _merge_duplicates(bind: sa.Connection) -> None:
    """One op per (scope, key): keep the one that succeeded (latest first), else the latest."""
    groups = bind.execute(sa.text(
        "SELECT scope, key FROM ops GROUP BY scope, key HAVING COUNT(*) > 1"
    )).all()
    for scope, key in groups:
        candidates = bind.execute(sa.text(
            "SELECT op_id FROM ops WHERE scope = :scope AND key = :key ORDER BY "
            "CASE WHEN state = 'succeeded' THEN 0 ELSE 1 END, updated_at DESC, op_id DESC"
        ), {"scope": scope, "key": key}).scalars().all()
        keeper, losers = candidates[0], list(candidates[1:])
        for loser in losers:
            params = {"keeper": keeper, "loser": loser}
            bind.execute(
                sa.text("UPDATE job_rows SET op_id = :keeper WHERE op_id = :loser"), params
            )
            bind.execute(
                sa.text("UPDATE row_deps SET dep_op_id = :keeper WHERE dep_op_id = :loser"),
                params,
            )
            bind.execute(sa.text("DELETE FROM op_deps WHERE op_id = :loser OR dep_op_id = :loser"),
                         params)
            bind.execute(sa.text("DELETE FROM ops WHERE op_id = :loser"), params)


def _fill_fingerprints(bind: sa.Connection) -> None:
    """Succeeded ops and every create get the fingerprint that makes the same work one
    operation whatever the key of the row that did it (bulkops.identity.fingerprint)."""
    done = bind.execute(sa.text(
        "SELECT op_id, scope, key, line, spec FROM ops "
        "WHERE state = 'succeeded' OR action = 'create_site'"
    )).all()
    if not done:
        return
    site_of: dict[str, dict[str, str]] = defaultdict(dict)
    for scope, key, site_id in bind.execute(sa.text(
        "SELECT scope, key, site_id FROM ops WHERE state = 'succeeded' AND site_id IS NOT NULL"
    )).all():
        site_of[scope][key] = site_id
    for op_id, scope, key, line, spec_text in done:
        data: dict[str, Any] = json.loads(spec_text)
        spec = OpSpec.from_json(line, key, data)
        sites = site_of[scope]

        def resolve(value: str, sites: dict[str, str] = sites) -> str:
            return sites.get(value[1:], value) if value.startswith("@") else value

        bind.execute(
            sa.text("UPDATE ops SET fingerprint = :fp WHERE op_id = :op"),
            {"fp": fingerprint(spec, resolve), "op": op_id},
        )


def downgrade() -> None:
    """Back to one op per job row. Rows of later jobs that named an earlier job's op have no op
    of their own in the old shape: they are dropped with `job_rows` (their outcomes live on in
    the op's own job)."""
    op.create_table(
        "op_deps",
        sa.Column("op_id", OP_ID, nullable=False),
        sa.Column("dep_op_id", OP_ID, nullable=False),
        sa.Column("dep_key", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("op_id", "dep_op_id", name="pk_op_deps"),
        sa.ForeignKeyConstraint(
            ["op_id"], ["ops.op_id"], name="fk_op_deps_op_id_ops", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["dep_op_id"], ["ops.op_id"], name="fk_op_deps_dep_op_id_ops", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_op_deps_dep_op_id", "op_deps", ["dep_op_id"])
    op.get_bind().execute(sa.text(
        "INSERT INTO op_deps (op_id, dep_op_id, dep_key) "
        "SELECT o.op_id, d.dep_op_id, d.dep_key FROM row_deps d "
        "JOIN ops o ON o.job_id = d.job_id AND o.seq = d.seq"
    ))
    op.drop_table("op_aliases")
    op.drop_table("row_deps")
    op.drop_table("job_rows")
    op.drop_index("ix_ops_fingerprint", table_name="ops")
    op.drop_index("ux_ops_scope_key", table_name="ops")
    for column in ("maybe_applied", "fingerprint", "scope"):
        op.drop_column("ops", column)
    op.drop_column("jobs", "lease_since")
