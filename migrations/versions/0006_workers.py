"""Many processes on one database: the workers sharing each job, and each account's request
budget as one row all processes take their turns from.

Revision ID: 0006_workers
Revises: 0005_compact_rows
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_workers"
down_revision: str | Sequence[str] | None = "0005_compact_rows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_workers",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.job_id"], ondelete="CASCADE",
                                name="fk_job_workers_job_id_jobs"),
        sa.PrimaryKeyConstraint("job_id", "owner", name="pk_job_workers"),
    )
    op.create_table(
        "budgets",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("throttled_at", sa.Float(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name="pk_budgets"),
    )


def downgrade() -> None:
    op.drop_table("budgets")
    op.drop_table("job_workers")
