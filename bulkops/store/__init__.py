"""Checkpoint store: the `Store` port and its SQLAlchemy implementation (SQLite, PostgreSQL)."""

from bulkops.store.base import Store
from bulkops.store.sql import SqlStore, open_store

__all__ = ["SqlStore", "Store", "open_store"]
