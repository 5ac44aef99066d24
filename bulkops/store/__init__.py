"""Checkpoint store: the `Store` port and its SQLAlchemy implementation (SQLite, PostgreSQL).

The names are loaded on first use (PEP 562): importing a light submodule such as
`bulkops.store.urls` must not load the SQLAlchemy implementation, its asyncio extension and
Alembic (~0.5 s at start-up), which only commands that open a database need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bulkops.store.base import Store
    from bulkops.store.sql import SqlStore, open_store

__all__ = ["SqlStore", "Store", "open_store"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from bulkops.store.base import Store

        return Store
    if name in ("SqlStore", "open_store"):
        from bulkops.store import sql

        return getattr(sql, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
