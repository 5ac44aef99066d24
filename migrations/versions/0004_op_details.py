"""Operation details: what an action family keeps about a row beyond its ids.

A connected domain's registrar records (what the client must set), a DNS row's record as it was
before the write (so that an unknown outcome can be told from someone else's change).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ops", sa.Column("details", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("ops") as batch:
        batch.drop_column("details")
