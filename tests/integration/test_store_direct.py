"""SQLite's loop-thread writes (`store/direct.py`): claims and saves on the standard driver, and
the way they give way to another connection's write lock.

A save or claim that finds the write lock held for longer than BUSY_WAIT must not block the
event loop waiting for it, nor fail: it is done through the store's ordinary path, which waits
on a thread. These tests hold the lock from a second connection, as another process would.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from bulkops.model import Action, JobSource, OpSpec, OpState
from bulkops.store import SqlStore, open_store
from bulkops.store.direct import BUSY_WAIT

NOW = 1_700_000_000.0


def specs() -> list[OpSpec]:
    return [
        OpSpec(line=2, key="acme", action=Action.CREATE_SITE, site_name="Acme"),
        OpSpec(line=3, key="inv", action=Action.SITE_INVITE, site="@acme",
               email="a@example.com", roles=("Website Manager",)),
        OpSpec(line=4, key="o'brien", action=Action.CREATE_SITE, site_name="O'Brien"),
    ]


def hold_write_lock(path: Path, seconds: float, taken: threading.Event) -> None:
    """Another connection's write transaction, held for `seconds`."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    """A store on tmp_path/jobs.db holding job-1 of `specs`."""
    opened = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    try:
        source = JobSource(job_id="job-1", path="/jobs/j.csv", format="csv", total=3)
        await opened.add_job(source, specs())
        yield opened
    finally:
        await opened.close()


async def test_claims_and_saves_wait_off_the_loop_for_another_writer(
        store: SqlStore, tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    taken = threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(path, BUSY_WAIT * 6, taken))
    holder.start()
    taken.wait()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while holder.is_alive():
            ticks += 1
            await anyio.sleep(BUSY_WAIT / 5)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        claimed = await store.claim_ready("job-1", now=NOW, limit=10, owner="w1",
                                          lease_seconds=60)
    holder.join()
    # The loop kept turning while the claim waited for the lock.
    assert ticks >= 5
    assert [op.spec.key for op in claimed] == ["acme", "o'brien"]
    assert all(op.lease_owner == "w1" for op in claimed)

    taken.clear()
    holder = threading.Thread(target=hold_write_lock, args=(path, BUSY_WAIT * 4, taken))
    holder.start()
    taken.wait()
    await store.save([dataclasses.replace(claimed[0], state=OpState.SUCCEEDED,
                                          site_id="site-acme", lease_owner=None)])
    holder.join()
    [ready] = await store.claim_ready("job-1", now=NOW + 1, limit=10, owner="w1",
                                      lease_seconds=60)
    assert ready.spec.key == "inv"
    assert ready.refs == {"acme": "site-acme"}


async def test_a_claim_reads_back_every_column_as_the_general_path_does(store: SqlStore) -> None:
    [acme, _] = await store.claim_ready("job-1", now=NOW, limit=10, owner="w1",
                                        lease_seconds=60)
    await store.save([dataclasses.replace(acme, state=OpState.SUCCEEDED, site_id="s-1",
                                          details={"kept": [1, "two"]}, lease_owner=None)])
    [inv] = await store.claim_ready("job-1", now=NOW + 1, limit=10, owner="w2",
                                    lease_seconds=60)
    read = {op.spec.key: op async for op in store.iter_ops("job-1")}
    # iter_ops reads through SQLAlchemy: the claimed record is the same but for the refs
    # a claim fills.
    assert dataclasses.replace(read["inv"], refs={"acme": "s-1"}) == inv
    assert read["acme"].details == {"kept": [1, "two"]}
