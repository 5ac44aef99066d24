"""A job's row whose op it owns leaves its line, action and spec to that op (`tables.job_rows`),
on every database: stored once, read back whole, and kept whole when another job takes the op.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from bulkops.model import Action, JobSource, OpSpec, OpState
from bulkops.store import SqlStore, open_store, takeover
from bulkops.store.tables import OWNER_ROW_COLUMNS, job_rows
from bulkops.store.urls import normalise_url

REPO = Path(__file__).resolve().parents[2]

NOW = 1_700_000_000.0
ACCOUNT = "11111111-1111-4111-8111-111111111111"
SITE = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"


def create(key: str, name: str) -> OpSpec:
    return OpSpec(line=0, key=key, action=Action.CREATE_SITE, site_name=name)


async def add(store: SqlStore, job_id: str, specs: list[OpSpec]) -> list[OpSpec]:
    """Store `specs` as job `job_id` (lines from 2, as a CSV's); the specs as stored."""
    lines = [dataclasses.replace(spec, line=i + 2) for i, spec in enumerate(specs)]
    await store.add_job(JobSource(job_id=job_id, path=f"/jobs/{job_id}.csv", format="csv",
                                  total=len(lines), account_id=ACCOUNT,
                                  base_url="https://www.wixapis.com"), lines)
    return lines


async def stored(store: SqlStore, job_id: str) -> dict[str, bool]:
    """key -> whether the job's row keeps its own line, action and spec (False: its op's)."""
    async with store.engine.connect() as conn:
        found = await conn.execute(
            select(job_rows.c.key, *(job_rows.c[name] for name in OWNER_ROW_COLUMNS))
            .where(job_rows.c.job_id == job_id))
        result: dict[str, bool] = {}
        for key, *values in found.all():
            assert len({value is None for value in values}) == 1, f"{key}: all three or none"
            result[key] = values[0] is not None
        return result


async def read_back(store: SqlStore, job_id: str) -> list[OpSpec]:
    return [op.spec async for op in store.iter_ops(job_id)]


async def settle(store: SqlStore, job_id: str, state: OpState) -> None:
    claimed = await store.claim_ready(job_id, now=NOW, limit=100, owner="w", lease_seconds=60)
    await store.save([dataclasses.replace(op, state=state, lease_owner=None) for op in claimed])


async def test_a_new_jobs_rows_are_left_to_their_ops_and_read_back_whole(
    store: SqlStore,
) -> None:
    written = await add(store, "A", [
        create("acme", "Acme Bakery"),
        OpSpec(line=0, key="owner", action=Action.SITE_INVITE, site="@acme",
               email="owner@acme.example.com", roles=("Website Manager",)),
        OpSpec(line=0, key="move", action=Action.TRANSFER_SITE, site="@acme",
               to_account="22222222-2222-4222-8222-222222222222", depends_on=("owner",)),
    ])
    assert await stored(store, "A") == {"acme": False, "owner": False, "move": False}
    assert await read_back(store, "A") == written
    job = await store.get_job("A")
    assert job is not None
    by_action = (await store.overview(job)).by_action
    assert {action: counts[OpState.PENDING] for action, counts in by_action.items()} == {
        Action.CREATE_SITE: 1, Action.SITE_INVITE: 1, Action.TRANSFER_SITE: 1}


async def test_a_grown_file_keeps_its_own_values_only_for_rows_naming_earlier_work(
    store: SqlStore,
) -> None:
    await add(store, "A", [create("acme", "Acme Bakery")])
    await settle(store, "A", OpState.SUCCEEDED)
    written = await add(store, "B", [create("bluefin", "Bluefin Grill"),
                                     create("acme", "Acme Bakery")])
    assert await stored(store, "B") == {"bluefin": False, "acme": True}
    assert await read_back(store, "B") == written
    assert await read_back(store, "A") == [dataclasses.replace(written[1], line=2)]


async def test_a_row_whose_op_another_job_takes_on_keeps_its_own_line_and_spec(
    store: SqlStore,
) -> None:
    """Job A's failed create is taken on by B, an edited file with the row elsewhere and the
    name changed: the op now runs B's row, and A's report still shows A's row as A wrote it."""
    a = await add(store, "A", [create("bluefin", "Bluefin Grill"), create("acme", "Acme Bakery")])
    await settle(store, "A", OpState.FAILED)
    b = await add(store, "B", [create("acme", "Acme Florist")])
    taken = await store.take_over("B", now=NOW, rerun=True)
    assert taken.adopted == 1
    assert await stored(store, "A") == {"bluefin": False, "acme": True}
    assert await read_back(store, "A") == a
    assert await read_back(store, "B") == b
    [op] = await store.claim_ready("B", now=NOW, limit=10, owner="w", lease_seconds=60)
    assert (op.spec.site_name, op.spec.line) == ("Acme Florist", 2)


async def test_down_to_0006_every_row_holds_its_values_and_back_up_they_read_the_same(
    store: SqlStore, store_url: str,
) -> None:
    """0006 requires every row's line, action and spec: the downgrade writes the owner rows'
    out from their ops; the upgrade (opening the database) reads them back unchanged."""
    a = await add(store, "A", [create("acme", "Acme Bakery"), create("bluefin", "Bluefin Grill")])
    await settle(store, "A", OpState.SUCCEEDED)
    b = await add(store, "B", [create("acme", "Acme Bakery"), create("coral", "Coral Cafe")])
    assert await stored(store, "B") == {"acme": True, "coral": False}
    await store.close()

    config = Config(str(REPO / "alembic.ini"),
                    cmd_opts=argparse.Namespace(x=[f"db={store_url}"]))
    # Alembic's env runs its own event loop: from a thread, as the command line would.
    await asyncio.to_thread(command.downgrade, config, "0006_workers")
    at_0006 = create_async_engine(normalise_url(store_url))
    try:
        async with at_0006.connect() as conn:
            missing = await conn.scalar(select(func.count()).select_from(job_rows).where(
                job_rows.c.spec.is_(None)))
    finally:
        await at_0006.dispose()
    assert missing == 0, "the downgrade wrote every row's values out"
    reopened = await open_store(store_url)  # upgrades to the head again
    try:
        assert (await read_back(reopened, "A"), await read_back(reopened, "B")) == (a, b)
        # SQLite's upgrade rebuilds the table, leaving owner rows' values to their ops again;
        # PostgreSQL's keeps what the rows hold.
        sqlite = reopened.engine.dialect.name == "sqlite"
        assert await stored(reopened, "B") == {"acme": True, "coral": not sqlite}
    finally:
        await reopened.close()


async def test_an_op_whose_owner_row_was_not_written_out_is_not_taken_on(
    store: SqlStore,
) -> None:
    """The owner's lease ending between `keep_owner_rows` and `adopt` (PostgreSQL runs each
    statement on its own snapshot): `adopt` leaves the op whose owner row still leaves its
    values to it, and the next take-over writes the row out and takes the op on."""
    a = await add(store, "A", [create("acme", "Acme Bakery")])
    await settle(store, "A", OpState.FAILED)
    assert await store.acquire_job("A", "host:1:a", now=NOW, lease_seconds=30.0) is None
    await add(store, "B", [create("bluefin", "Bluefin Grill"), create("acme", "Acme Florist")])
    later = NOW + 3600.0  # A's lease has ended by then
    async with store.engine.begin() as conn:
        params = {"b_job_id": "B", "b_now": NOW}
        await conn.execute(takeover.keep_owner_rows(rerun=True), params)  # A is live: none
        adopted = await conn.execute(takeover.adopt(rerun=True), {**params, "b_now": later})
    assert adopted.rowcount == 0
    assert await read_back(store, "A") == a
    taken = await store.take_over("B", now=later, rerun=True)
    assert taken.adopted == 1
    assert await stored(store, "A") == {"acme": True}
    assert await read_back(store, "A") == a
