"""Fixtures the engine's integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bulkops.store import open_store
from bulkops.store.base import Store


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh SQLite store in a file of the test's own, for tests of the engine (the store's
    own tests use `store`, once per kind of database: tests/conftest.py)."""
    opened = await open_store(str(tmp_path / "engine.db"))
    try:
        yield opened
    finally:
        await opened.close()
