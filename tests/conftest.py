"""Shared fixtures: checkpoint databases to test against (SQLite always, PostgreSQL when one
answers).

PostgreSQL runs against BULKOPS_TEST_PG_URL when it is set (a server and a user allowed to create
roles), else against this project's machines' own server, postgresql://postgres@127.0.0.1:5432/test,
when one answers there; BULKOPS_TEST_PG_URL=off turns it off. Where none answers, those tests
skip and say so. Each test gets a private, empty schema through a throw-away login role whose
name equals the schema's: PostgreSQL's default search_path ("$user", public) then puts every
table there, with nothing to configure on the connection.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pgserver import pg_admin_url, pg_schema

from bulkops.store import SqlStore, open_store


@pytest.fixture(autouse=True, scope="session")
def _own_data_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Commands that fall back on the per-user default database (`validate`, `status`, ...
    without --db) find one of this test session's own, never the user's real one: a test must
    neither read nor change what the person running it keeps there."""
    before = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("XDG_DATA_HOME", None)
        else:
            os.environ["XDG_DATA_HOME"] = before


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose default schema is new and empty; dropped after the test."""
    admin, why_not = pg_admin_url()
    if admin is None:
        pytest.skip(why_not)
    with pg_schema(admin, prefix="bulkops_t") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A plain file path (the form users pass to --db) in a fresh directory."""
    return str(tmp_path / "bulkops.db")


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database of each kind (the PostgreSQL one skips without the env)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    opened = await open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()
