"""Compact rows: no unique index on ops (job_id, key), which `ux_ops_scope_key` implies.

An operation's identity is (scope, key), and every op a job owns is of that job's scope, so
(job_id, key) is unique whenever (scope, key) is. Its index cost a second copy of every key
(about 49 bytes an op, 6% of a million-row SQLite database) and one more B-tree to update on
each insert. No statement looks ops up by (job_id, key).

PostgreSQL drops the constraint. SQLite cannot drop a table constraint: `ops` is rebuilt from
its own stored definition less that clause. The tables pointing at `ops` with cascading
foreign keys (`row_deps`, `job_rows`, `op_aliases`) are set aside in temporary tables first
and put back after, since dropping a referenced table deletes its dependents' rows; op ids
and the AUTOINCREMENT high-water mark are kept, so no id is ever reused.

Revision ID: 0005_compact_rows
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from alembic import op
from bulkops.migrations.sqlite_rebuild import rebuild_table

revision: str = "0005_compact_rows"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CONSTRAINT = "uq_ops_job_id_key"
_CLAUSE = re.compile(r",\s*CONSTRAINT uq_ops_job_id_key UNIQUE \(job_id, \"?key\"?\)")
# Tables with a foreign key to ops, each after the tables that point at it.
_DEPENDENTS = ("row_deps", "job_rows", "op_aliases")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(_CONSTRAINT, "ops", type_="unique")
        return
    _rebuild_ops(lambda sql: _CLAUSE.sub("", sql, count=1))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.create_unique_constraint(_CONSTRAINT, "ops", ["job_id", "key"])
        return

    def add(sql: str) -> str:
        head, _, tail = sql.rpartition(")")
        return f'{head.rstrip()}, \n\tCONSTRAINT {_CONSTRAINT} UNIQUE (job_id, "key")\n){tail}'

    _rebuild_ops(add)


def _rebuild_ops(change: Callable[[str], str]) -> None:
    rebuild_table("ops", _DEPENDENTS, change, order_by="op_id")
