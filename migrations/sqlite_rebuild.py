"""Changing a table SQLite's ALTER TABLE cannot change: a constraint, a column's NOT NULL, a
table's storage (WITHOUT ROWID). Used by the revision scripts; keep its behaviour fixed, as
they are replayed on every database that is behind."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op


def rebuild_table(
    table: str, dependents: Sequence[str], change: Callable[[str], str], *, order_by: str,
    values: str = "*",
) -> None:
    """Recreate `table` from `change(its CREATE TABLE text)`, with every row, index and
    dependent table as it was (their own stored definitions, replayed). Rows are copied in
    `order_by` order (SQL, of the old table's columns), as `values` (SQL: the new table's
    columns in order, from the old table's, named `old` there).

    `dependents` are the tables whose foreign keys point at `table`, each listed after the
    tables that point at it. They are set aside in temporary tables and put back after:
    dropping a referenced table deletes its dependents' rows (cascading foreign keys), and
    renaming it would point their keys at the old name. An AUTOINCREMENT high-water mark
    (sqlite_sequence) is kept, so no id is ever reused.
    """
    bind = op.get_bind()
    names = (table, *dependents)
    listed = ", ".join(f"'{name}'" for name in names)
    schema = dict(bind.execute(sa.text(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN ({listed})"
    )).all())
    indexes = bind.execute(sa.text(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({listed})")).scalars().all()
    high = bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = :name"),
                        {"name": table}).scalar()
    for name in dependents:
        bind.execute(sa.text(
            f"CREATE TEMPORARY TABLE bulkops_saved_{name} AS SELECT * FROM {name}"))
        bind.execute(sa.text(f"DROP TABLE {name}"))  # leaves first: nothing cascades
    bind.execute(sa.text(f"ALTER TABLE {table} RENAME TO bulkops_old_{table}"))
    bind.execute(sa.text(change(schema[table])))
    bind.execute(sa.text(
        f"INSERT INTO {table} SELECT {values} FROM bulkops_old_{table} AS old ORDER BY {order_by}"))
    bind.execute(sa.text(f"DROP TABLE bulkops_old_{table}"))  # its indexes go with it
    if high is not None:
        bind.execute(sa.text("UPDATE sqlite_sequence SET seq = :high WHERE name = :name"),
                     {"high": high, "name": table})
    for name in reversed(dependents):
        bind.execute(sa.text(schema[name]))
        bind.execute(sa.text(f"INSERT INTO {name} SELECT * FROM bulkops_saved_{name}"))
        bind.execute(sa.text(f"DROP TABLE bulkops_saved_{name}"))
    for sql in indexes:
        bind.execute(sa.text(sql))
