"""Runs: one row per `run`/`resume` of a job, for the morning-after account; pruned jobs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("pruned_at", sa.Float()))
    op.create_table(
        "runs",
        sa.Column("run_id", RUN_ID, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float()),
        sa.Column("outcome", sa.Text()),
        sa.Column("reason", sa.Text()),
        sa.Column("requests", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("throttled", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("retries", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reconciled", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("succeeded", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("budget_per_second", sa.Float(), nullable=False, server_default="0"),
        sa.Column("bucket_seconds", sa.Float(), nullable=False, server_default="60"),
        sa.Column("timeline", sa.Text(), nullable=False, server_default="[]"),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.job_id"], name="fk_runs_job_id_jobs", ondelete="CASCADE"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_runs_job_id_started_at", "runs", ["job_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_job_id_started_at", table_name="runs")
    op.drop_table("runs")
    op.drop_column("jobs", "pruned_at")
