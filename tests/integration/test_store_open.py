"""Opening a store: connection settings, locking between processes, errors a user can read."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bulkops.errors import StoreError
from bulkops.model import Action, JobSource, OpSpec
from bulkops.store import SqlStore, open_store
from bulkops.store.engine import create_engine
from bulkops.store.urls import normalise_url

NOW = 1_700_000_000.0


async def add_creates(store: SqlStore, count: int) -> None:
    specs = [
        OpSpec(line=i + 2, key=f"k{i}", action=Action.CREATE_SITE, site_name=f"S{i}")
        for i in range(count)
    ]
    await store.add_job(JobSource("job-1", "p", "csv", count), specs)


async def test_sqlite_connections_use_wal_normal_sync_busy_timeout_and_foreign_keys(
    sqlite_url: str,
) -> None:
    store = await open_store(sqlite_url)
    try:
        async with store.engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
    finally:
        await store.close()
    # synchronous 1 = NORMAL
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 30_000,
        "foreign_keys": 1,
    }


async def test_a_plain_relative_path_opens_a_sqlite_file_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("relative.db")
    await store.close()
    assert (tmp_path / "relative.db").is_file()


async def test_a_write_waits_for_another_process_lock_instead_of_failing(
    sqlite_url: str,
) -> None:
    store = await open_store(sqlite_url)
    try:
        await add_creates(store, 2)
        other = sqlite3.connect(sqlite_url, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.3, other.execute, "ROLLBACK")
        claimed = await store.claim_ready("job-1", now=NOW, limit=5, owner="w", lease_seconds=9)
        assert len(claimed) == 2
        other.close()
    finally:
        await store.close()


async def test_a_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        await open_store(str(tmp_path / "no-such-dir" / "bulkops.db"))
    assert not (tmp_path / "no-such-dir").exists()


async def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        await open_store(str(tmp_path))


async def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        await open_store(str(garbage))


async def test_an_unreachable_postgres_is_a_store_error_without_the_password() -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    url = "postgresql://someone:hunter2-secret@127.0.0.1:9/db"
    with pytest.raises(StoreError) as caught:
        await open_store(url)
    assert "hunter2-secret" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


@pytest.mark.postgres
async def test_a_postgres_login_failure_is_a_store_error(pg_url: str) -> None:
    wrong_user = make_url(pg_url).set(username="no_such_role_bulkops", password="pw-secret")
    with pytest.raises(StoreError) as caught:
        await open_store(wrong_user.render_as_string(hide_password=False))
    assert "pw-secret" not in str(caught.value)


@pytest.mark.postgres
async def test_claim_passes_over_rows_another_claimer_has_locked(pg_url: str) -> None:
    """SKIP LOCKED: a claim does not wait for, or take, rows locked by a concurrent claim."""
    store = await open_store(pg_url)
    other = create_engine(normalise_url(pg_url))
    try:
        await add_creates(store, 3)
        async with other.begin() as conn:
            await conn.execute(text("SELECT op_id FROM ops WHERE seq = 0 FOR UPDATE"))
            claim = store.claim_ready("job-1", now=NOW, limit=5, owner="w", lease_seconds=9)
            claimed = await asyncio.wait_for(claim, timeout=10)
            assert [op.seq for op in claimed] == [1, 2]
    finally:
        await other.dispose()
        await store.close()


async def test_another_programs_sqlite_file_is_refused_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    app = tmp_path / "app.db"
    conn = sqlite3.connect(app)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = app.read_bytes()
    with pytest.raises(StoreError, match=r"another program's database \(tables orders\)"):
        await open_store(str(app))
    assert app.read_bytes() == before
    assert os.listdir(tmp_path) == ["app.db"]


async def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    # `touch bulkops.db` first is a user's way of saying where the database goes.
    empty = tmp_path / "bulkops.db"
    empty.touch()
    store = await open_store(str(empty))
    try:
        assert await store.latest_job() is None
    finally:
        await store.close()
