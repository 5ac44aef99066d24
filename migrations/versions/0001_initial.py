"""Initial schema: jobs, their operations, and the links between operations.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A migration is a frozen snapshot: it spells the schema out instead of importing the live tables.
OP_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("stop_reason", sa.Text()),
        sa.Column("account_id", sa.Text(), nullable=False, server_default=""),
        sa.Column("base_url", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("lease_owner", sa.Text()),
        sa.Column("lease_expires_at", sa.Float()),
        sa.PrimaryKeyConstraint("job_id", name="pk_jobs"),
    )
    op.create_table(
        "ops",
        sa.Column("op_id", OP_ID, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("site_id", sa.Text()),
        sa.Column("invite_id", sa.Text()),
        sa.Column("error_code", sa.Text()),
        sa.Column("error_message", sa.Text()),
        sa.Column("error_hint", sa.Text()),
        sa.Column("error_status", sa.Integer()),
        sa.Column("error_request_id", sa.Text()),
        sa.Column("first_sent_at", sa.Float()),
        sa.Column("last_sent_at", sa.Float()),
        sa.Column("not_before", sa.Float()),
        sa.Column("checks", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("note", sa.Text()),
        sa.Column("lease_owner", sa.Text()),
        sa.Column("lease_expires_at", sa.Float()),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("op_id", name="pk_ops"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.job_id"], name="fk_ops_job_id_jobs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "key", name="uq_ops_job_id_key"),
        sa.UniqueConstraint("job_id", "seq", name="uq_ops_job_id_seq"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_ops_job_id_state_seq", "ops", ["job_id", "state", "seq"])
    for state in ("pending", "unknown"):
        only_state = sa.text(f"state = '{state}'")
        op.create_index(
            f"ix_ops_{state}_by_seq",
            "ops",
            ["job_id", "seq"],
            sqlite_where=only_state,
            postgresql_where=only_state,
        )
    scheduled = sa.text("not_before IS NOT NULL")
    op.create_index(
        "ix_ops_scheduled",
        "ops",
        ["job_id", "not_before"],
        sqlite_where=scheduled,
        postgresql_where=scheduled,
    )
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


def downgrade() -> None:
    op.drop_table("op_deps")
    op.drop_table("ops")
    op.drop_table("jobs")
