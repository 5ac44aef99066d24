"""Storing a job whose scope has no operation yet (the bulk path) against the general path.

The first job of an account in a database is stored with raw batched inserts and no look-ups;
every later job goes through the look-ups by key and by fingerprint. Both must leave the same
rows behind: the same ops, job rows and dependency links, up to the op ids' numbering.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from checkedrows import checked_one_by_one
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bulkops import rowcheckers
from bulkops.errors import StoreError
from bulkops.identity import scope_of
from bulkops.jobfile import check_job
from bulkops.model import Action, JobSource, OpSpec
from bulkops.store import adding, open_store
from bulkops.storedspec import StoredSpecs

ACCOUNT = "11111111-1111-4111-8111-111111111111"
API = "https://www.wixapis.com"
JOBS = Path(__file__).resolve().parents[2] / "jobs"


def specs() -> list[OpSpec]:
    return [
        OpSpec(line=2, key="site-a", action=Action.CREATE_SITE, site_name="Site A"),
        OpSpec(line=3, key="site-b", action=Action.CREATE_SITE, site_name="Site B"),
        OpSpec(line=4, key="owner-a", action=Action.SITE_INVITE, site="@site-a",
               email="a@example.com", roles=("Admin",)),
        OpSpec(line=5, key="team", action=Action.ACCOUNT_INVITE, email="t@example.com",
               roles=("Admin",), sites=("@site-a", "@site-b")),
        OpSpec(line=6, key="move-a", action=Action.TRANSFER_SITE, site="@site-a",
               to_account="22222222-2222-4222-8222-222222222221", depends_on=("owner-a",)),
    ]


def source(job_id: str, total: int) -> JobSource:
    return JobSource(job_id=job_id, path=f"/jobs/{job_id}.csv", format="csv", total=total,
                     account_id=ACCOUNT, base_url=API)


async def stored(db: Path, *, general: bool, monkeypatch: pytest.MonkeyPatch,
                 job_id: str = "job1") -> None:
    if general:
        async def used(conn: object, scope: str) -> bool:
            return True

        monkeypatch.setattr(adding, "scope_used", used)
    store = await open_store(str(db))
    try:
        await store.add_job(source(job_id, 5), specs())
    finally:
        await store.close()
        monkeypatch.undo()


def contents(db: Path) -> tuple[list[tuple[object, ...]], ...]:
    """The stored rows, with op ids replaced by the seq of the op they name."""
    with sqlite3.connect(db) as conn:
        seq_of = dict(conn.execute("SELECT op_id, seq FROM ops"))
        ops = conn.execute(
            "SELECT job_id, seq, line, key, action, spec, state, attempts, checks, scope,"
            " fingerprint, maybe_applied FROM ops ORDER BY seq").fetchall()
        rows = [(*row[:-1], seq_of[row[-1]]) for row in conn.execute(
            "SELECT job_id, seq, line, key, action, spec, op_id FROM job_rows ORDER BY seq")]
        deps = [(*row[:-1], seq_of[row[-1]]) for row in conn.execute(
            "SELECT job_id, seq, dep_key, dep_op_id FROM row_deps ORDER BY seq, dep_key")]
    return ops, rows, deps


async def test_the_first_job_of_a_scope_is_stored_as_the_general_path_stores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stored(tmp_path / "fresh.db", general=False, monkeypatch=monkeypatch)
    await stored(tmp_path / "general.db", general=True, monkeypatch=monkeypatch)
    fresh = contents(tmp_path / "fresh.db")
    assert fresh == contents(tmp_path / "general.db")
    ops, rows, deps = fresh
    assert len(ops) == len(rows) == 5
    assert [dep[2] for dep in deps] == ["site-a", "site-a", "site-b", "owner-a", "site-a"]
    assert ops[0][10] is not None  # a create's fingerprint is stored at once


async def two_jobs_of_one_scope(db: Path) -> tuple[dict[str, int], dict[str, int]]:
    """The same rows stored twice in `db`, as job1 then job2: each job's key -> op id."""
    store = await open_store(str(db))
    try:
        await store.add_job(source("job1", 5), specs())
        await store.add_job(source("job2", 5), specs())
        one = {op.spec.key: op.op_id async for op in store.iter_ops("job1")}
        two = {op.spec.key: op.op_id async for op in store.iter_ops("job2")}
    finally:
        await store.close()
    return one, two


async def test_a_second_job_of_the_scope_takes_the_general_path_and_names_the_same_ops(
    tmp_path: Path
) -> None:
    one, two = await two_jobs_of_one_scope(tmp_path / "two.db")
    assert one == two


async def test_a_dependency_naming_no_op_rolls_the_fresh_job_back(tmp_path: Path) -> None:
    bad = [*specs(), OpSpec(line=7, key="late", action=Action.CREATE_SITE, site_name="Late",
                            depends_on=("nowhere",))]
    store = await open_store(str(tmp_path / "dangling.db"))
    try:
        with pytest.raises(StoreError, match="line 7: dependency @nowhere names no operation"):
            await store.add_job(source("job1", 6), bad)
        assert await store.get_job("job1") is None
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "dangling.db") as conn:
        assert conn.execute("SELECT count(*) FROM ops WHERE scope = ?",
                            (scope_of(ACCOUNT, API),)).fetchone() == (0,)


async def test_a_fresh_load_runs_unchecked_and_leaves_foreign_keys_checked_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load itself skips the foreign-key checks (its references are to its own rows); the
    pooled connection checks them again afterwards, after a commit and after a rollback."""
    during: list[int] = []
    load = adding._load_fresh

    async def watched(conn: AsyncConnection, *args: Any) -> None:
        during.append((await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one())
        await load(conn, *args)

    monkeypatch.setattr(adding, "_load_fresh", watched)
    store = await open_store(str(tmp_path / "checked.db"))
    try:
        dangling = [*specs(), OpSpec(line=7, key="late", action=Action.CREATE_SITE,
                                     site_name="Late", depends_on=("nowhere",))]
        with pytest.raises(StoreError, match="names no operation"):
            await store.add_job(source("job0", 6), dangling)  # rolled back
        await store.add_job(source("job1", 5), specs())  # committed
        assert during == [0, 0]
        async with store.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
            assert (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one() == 1000
            with pytest.raises(IntegrityError):
                await conn.exec_driver_sql(
                    "INSERT INTO job_rows (job_id, seq, key, op_id) VALUES ('none', 0, 'k', 1)")
        await store.add_job(source("job2", 5), specs())  # the scope is used: checked
        assert during == [0, 0]
    finally:
        await store.close()


async def test_a_fresh_loads_log_is_copied_into_the_database_file_while_the_store_is_open(
    tmp_path: Path
) -> None:
    """Its commit leaves the write-ahead log as it is; a thread of the store checkpoints it,
    so the database file alone (no log beside it) soon holds the job."""
    db = tmp_path / "copied.db"
    store = await open_store(str(db))
    try:
        await store.add_job(source("job1", 5), specs())
        deadline = time.monotonic() + 10
        while (found := ops_in_file_alone(db, tmp_path / "alone.db")) != 5:
            assert time.monotonic() < deadline, f"{found} ops in the file after 10 s"
            await anyio.sleep(0.05)
    finally:
        await store.close()


def ops_in_file_alone(db: Path, copy: Path) -> int:
    shutil.copyfile(db, copy)  # the main file only: not its -wal
    with sqlite3.connect(copy) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        found: int = conn.execute("SELECT count(*) FROM ops").fetchone()[0] if "ops" in tables \
            else 0
    copy.unlink()
    return found


def schema(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()


async def test_a_large_fresh_load_builds_the_ops_indexes_again_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loaded with the key and fingerprint indexes built after the rows (every job counts as
    large here): the same rows, the same schema, and the indexes hold every op."""
    empty = await open_store(str(tmp_path / "empty.db"))
    await empty.close()
    await stored(tmp_path / "general.db", general=True, monkeypatch=monkeypatch)
    monkeypatch.setattr(adding, "REBUILD_FROM", 1)
    # A second job of the scope finds the ops through the rebuilt key index.
    one, two = await two_jobs_of_one_scope(tmp_path / "rebuilt.db")
    assert one == two
    assert schema(tmp_path / "rebuilt.db") == schema(tmp_path / "empty.db")
    rebuilt, general = contents(tmp_path / "rebuilt.db"), contents(tmp_path / "general.db")
    assert rebuilt[0] == general[0]
    with sqlite3.connect(tmp_path / "rebuilt.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        indexed = conn.execute("SELECT count(*) FROM ops INDEXED BY ux_ops_scope_key"
                               " WHERE scope = ?", (scope_of(ACCOUNT, API),)).fetchone()
        assert indexed == (5,)
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            conn.execute("INSERT INTO ops (job_id, seq, line, key, action, spec, state,"
                         " updated_at, scope) SELECT job_id, 99, line, key, action, spec,"
                         " state, updated_at, scope FROM ops LIMIT 1")


async def test_a_failed_large_fresh_load_leaves_the_indexes_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = await open_store(str(tmp_path / "empty.db"))
    await empty.close()
    monkeypatch.setattr(adding, "REBUILD_FROM", 1)
    bad = [*specs(), OpSpec(line=7, key="late", action=Action.CREATE_SITE, site_name="Late",
                            depends_on=("nowhere",))]
    store = await open_store(str(tmp_path / "failed.db"))
    try:
        with pytest.raises(StoreError, match="line 7: dependency @nowhere names no operation"):
            await store.add_job(source("job1", 6), bad)
    finally:
        await store.close()
    assert schema(tmp_path / "failed.db") == schema(tmp_path / "empty.db")


async def test_batches_copied_while_the_next_is_built_store_what_the_general_path_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two rows a batch: each batch's copy into job_rows runs while the next is built."""
    await stored(tmp_path / "general.db", general=True, monkeypatch=monkeypatch)
    monkeypatch.setattr(adding, "FRESH_BATCH", 2)
    await stored(tmp_path / "batched.db", general=False, monkeypatch=monkeypatch)
    assert contents(tmp_path / "batched.db") == contents(tmp_path / "general.db")


async def test_a_file_failing_while_a_copy_runs_leaves_nothing_and_the_store_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The specs' iterator fails (the file changed) after a batch's copy was handed to the
    driver: the job is rolled back whole, and the next add of the job stores it."""
    monkeypatch.setattr(adding, "FRESH_BATCH", 2)

    def failing() -> Iterator[OpSpec]:
        yield from specs()[:3]
        raise StoreError("the file changed")

    store = await open_store(str(tmp_path / "failed.db"))
    try:
        with pytest.raises(StoreError, match="the file changed"):
            await store.add_job(source("job1", 5), failing())
        assert await store.get_job("job1") is None
        await store.add_job(source("job1", 5), specs())
        assert [op.spec.key async for op in store.iter_ops("job1")] == [
            spec.key for spec in specs()]
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "failed.db") as conn:
        assert conn.execute("SELECT count(*) FROM job_rows").fetchone() == (5,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_a_copy_that_fails_in_the_driver_is_a_store_error_and_nothing_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy runs on the driver's own connection: its failure is worded as any other
    database failure (one line, no traceback), and the job is rolled back whole."""
    monkeypatch.setattr(adding, "FRESH_BATCH", 2)
    monkeypatch.setattr(adding, "_ROWS_OF_FRESH_OPS",
                        "INSERT INTO job_rows (no_such_column) SELECT ? + ? + ?")
    store = await open_store(str(tmp_path / "copy.db"))
    try:
        with pytest.raises(StoreError, match="no_such_column") as info:
            await store.add_job(source("job1", 5), specs())
        assert "SELECT" not in str(info.value)  # the driver's words, not the statement
        assert await store.get_job("job1") is None
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "copy.db") as conn:
        assert conn.execute("SELECT count(*) FROM ops").fetchone() == (0,)


async def test_a_job_id_with_a_quote_is_stored_as_the_general_path_stores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fresh load writes the job id into its statement: quoted, it is stored as given."""
    await stored(tmp_path / "fresh.db", general=False, monkeypatch=monkeypatch, job_id="o'job")
    await stored(tmp_path / "general.db", general=True, monkeypatch=monkeypatch, job_id="o'job")
    fresh = contents(tmp_path / "fresh.db")
    assert fresh == contents(tmp_path / "general.db")
    assert {op[0] for op in fresh[0]} == {"o'job"}


@pytest.mark.parametrize("helpers", [False, True], ids=["one process", "helpers"])
async def test_a_checked_files_rows_are_stored_in_the_form_made_when_they_were_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpers: bool
) -> None:
    """A fresh load binds each row's stored form as the first pass made it (on the helpers,
    for a large file), without a spec in between: the same rows as the general path stores
    from the file's specs made one by one."""
    if helpers:
        monkeypatch.setattr(rowcheckers, "HELPER_FROM_BYTES", 0)
    path = JOBS / "onboarding.csv"
    checked = check_job(path)
    assert not checked.errors and isinstance(checked.specs(), StoredSpecs)
    total = checked.source.total
    monkeypatch.undo()
    store = await open_store(str(tmp_path / "fresh.db"))
    try:
        await store.add_job(source("job1", total), checked.specs())
    finally:
        await store.close()

    async def used(conn: object, scope: str) -> bool:
        return True

    monkeypatch.setattr(adding, "scope_used", used)
    store = await open_store(str(tmp_path / "general.db"))
    try:
        await store.add_job(source("job1", total), checked_one_by_one(path))
    finally:
        await store.close()
    fresh = contents(tmp_path / "fresh.db")
    assert fresh == contents(tmp_path / "general.db")
    assert any('"implied_depends_on"' in op[5] for op in fresh[0])  # a DNS row's, made here
