"""`quickread.database_file` names the file the store would open, or leaves the URL to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkops.store.quickread import database_file
from bulkops.store.urls import normalise_url, sqlite_path

SAME_FILE = [
    "bulkops.db",
    " spaced.db ",
    "~/jobs/bulkops.db",
    "/var/lib/bulkops/bulkops.db",
    "with space/and@at:colon.db",
    "sqlite:///relative.db",
    "sqlite:////absolute/bulkops.db",
    "sqlite:///~/home.db",
    "sqlite:///a@b:c.db",
]
# Left to the store: another database, a named driver, options, escapes, memory, URIs.
THE_STORE_S = [
    "",
    "postgresql://user@host/db",
    "postgres://host/db",
    "sqlite+aiosqlite:///bulkops.db",
    "sqlite:///bulkops.db?timeout=5",
    "sqlite:///with%20escape.db",
    "sqlite://",
    "sqlite:///:memory:",
    "sqlite:///file:x.db?mode=ro&uri=true",
    "sqlite://host/bulkops.db",
]


@pytest.mark.parametrize("given", SAME_FILE)
def test_a_plain_sqlite_file_is_the_one_the_store_opens(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert database_file(given) == sqlite_path(normalise_url(given))


@pytest.mark.parametrize("given", THE_STORE_S)
def test_anything_else_is_left_to_the_store(given: str) -> None:
    assert database_file(given) is None
