"""Owner rows: a job's row that names the op its job owns at the row's own seq keeps its line,
action and spec only in ops (NULL in job_rows), read back through `tables.row_value`.

Those three columns were more than half of a million-row job's rows (about 150 of a database's
850 MB): the same values the op holds, once more. Rows stored before this revision keep their
values on PostgreSQL, which read back the same; on SQLite, the rebuild below leaves them out.

PostgreSQL drops the columns' NOT NULL. SQLite cannot: `job_rows` is rebuilt from its own
stored definition less those three clauses, its dependent `row_deps` set aside and put back.

Revision ID: 0007_owner_rows
Revises: 0006_workers
Create Date: 2026-11-30
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from bulkops.migrations.sqlite_rebuild import rebuild_table

revision: str = "0007_owner_rows"
down_revision: str | Sequence[str] | None = "0006_workers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = {"line": sa.Integer(), "action": sa.Text(), "spec": sa.Text()}
# A column's definition in SQLite's stored CREATE TABLE text, its NOT NULL as group 2.
_DEFINITION = r'(\n\t"?{name}"? {type})( NOT NULL)?,'


def upgrade() -> None:
    _set_nullable(True)


def downgrade() -> None:
    # Owner rows take their values back from their ops first: NOT NULL holds again.
    for name in _COLUMNS:
        op.execute(
            f"UPDATE job_rows SET {name} = (SELECT ops.{name} FROM ops "
            f"WHERE ops.op_id = job_rows.op_id) WHERE {name} IS NULL"
        )
    _set_nullable(False)


def _set_nullable(nullable: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        for name, type_ in _COLUMNS.items():
            op.alter_column("job_rows", name, existing_type=type_, nullable=nullable)
        return

    clause = "" if nullable else " NOT NULL"

    def change(sql: str) -> str:
        for name, type_ in _COLUMNS.items():
            pattern = re.compile(_DEFINITION.format(name=name, type=type_.compile()))
            sql, found = pattern.subn(lambda match: f"{match[1]}{clause},", sql, count=1)
            if not found:
                raise RuntimeError(f"job_rows.{name}: definition not found in {sql!r}")
        return sql

    rebuild_table("job_rows", ("row_deps",), change, order_by="job_id, seq",
                  values=_OWNER_ROWS_LEFT_TO_OPS if nullable else "*")


# The rows copied up, each owner row without the values its op holds: the rebuilt table is
# as small as a new load makes it. Any row that differs from its op keeps its own.
# (PostgreSQL's rows keep their values: an UPDATE of every row would leave as many dead ones.)
_SAME_AS_OP = (
    "EXISTS (SELECT 1 FROM ops WHERE ops.op_id = old.op_id AND ops.job_id = old.job_id "
    "AND ops.seq = old.seq AND ops.line = old.line AND ops.action = old.action "
    "AND ops.spec = old.spec)"
)
_OWNER_ROWS_LEFT_TO_OPS = ", ".join(
    f"CASE WHEN {_SAME_AS_OP} THEN NULL ELSE old.{name} END" if name in _COLUMNS
    else f"old.{name}"
    for name in ("job_id", "seq", "line", "key", "action", "spec", "op_id")
)
