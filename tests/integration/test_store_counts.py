"""`counts`, `list_jobs` and `produced_by_keys` agree with the job's rows, on every database.

`counts` reads the ops a job owns from an index and joins only the rows that name another
job's op; each test compares it with the definition itself, the job's rows as `iter_ops`
streams them (each row with its op's state), after the saves, take-overs and prunes that move
ops between jobs.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter

from bulkops.model import Action, JobSource, JobState, OpSpec, OpState
from bulkops.store import SqlStore

NOW = 1_700_000_000.0
SITE = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"


def create(key: str) -> OpSpec:
    return OpSpec(line=0, key=key, action=Action.CREATE_SITE, site_name=f"Site {key}")


def site_invite(key: str, site: str, email: str) -> OpSpec:
    return OpSpec(line=0, key=key, action=Action.SITE_INVITE, site=site, email=email,
                  roles=("Admin",))


async def add(store: SqlStore, job_id: str, specs: list[OpSpec]) -> None:
    lines = [dataclasses.replace(spec, line=i + 2) for i, spec in enumerate(specs)]
    await store.add_job(JobSource(job_id=job_id, path=f"/jobs/{job_id}.csv", format="csv",
                                  total=len(specs), account_id="acc",
                                  base_url="https://www.wixapis.com"), lines)


async def settle_all(store: SqlStore, job_id: str, state: OpState, site_id: str) -> None:
    """Claim every op the job owns and record `state` for it (as the engine would)."""
    claimed = await store.claim_ready(job_id, now=NOW, limit=100, owner="w", lease_seconds=60)
    await store.save([dataclasses.replace(op, state=state, site_id=site_id, lease_owner=None)
                      for op in claimed])


async def by_rows(store: SqlStore, job_id: str) -> dict[OpState, int]:
    """Counts per state as the job's rows say (every state)."""
    found = Counter([op.state async for op in store.iter_ops(job_id)])
    return {state: found[state] for state in OpState}


async def assert_counts_match(store: SqlStore, *job_ids: str) -> None:
    listed = {entry.job.job_id: dict(entry.counts) for entry in await store.list_jobs()}
    for job_id in job_ids:
        expected = await by_rows(store, job_id)
        assert dict(await store.counts(job_id)) == expected, job_id
        assert listed[job_id] == expected, job_id


async def test_counts_stay_right_as_a_job_s_ops_are_saved(store: SqlStore) -> None:
    await add(store, "A", [create(f"s{i}") for i in range(5)])
    await assert_counts_match(store, "A")
    claimed = await store.claim_ready("A", now=NOW, limit=3, owner="w", lease_seconds=60)
    await store.save([dataclasses.replace(claimed[0], state=OpState.RUNNING)])
    await assert_counts_match(store, "A")
    await store.save([dataclasses.replace(claimed[1], state=OpState.SUCCEEDED, site_id=SITE,
                                          lease_owner=None),
                      dataclasses.replace(claimed[2], state=OpState.FAILED, lease_owner=None)])

    await assert_counts_match(store, "A")
    counts = await store.counts("A")
    assert (counts[OpState.RUNNING], counts[OpState.SUCCEEDED], counts[OpState.FAILED],
            counts[OpState.PENDING]) == (1, 1, 1, 2)


async def test_rows_naming_another_job_s_ops_count_in_both_jobs(store: SqlStore) -> None:
    """A grown file's job names the done ops of the first: each job counts its own rows."""
    await add(store, "A", [create("one"), create("two")])
    await settle_all(store, "A", OpState.SUCCEEDED, site_id=SITE)
    await add(store, "B", [create("one"), create("two"), create("three"),
                           site_invite("inv", "@one", "a@example.com")])

    await assert_counts_match(store, "A", "B")
    counts = await store.counts("B")
    assert (counts[OpState.SUCCEEDED], counts[OpState.PENDING]) == (2, 2)


async def test_counts_follow_ops_taken_over_by_a_later_job(store: SqlStore) -> None:
    await add(store, "A", [create("one"), create("two")])
    claimed = await store.claim_ready("A", now=NOW, limit=1, owner="w", lease_seconds=60)
    await store.save([dataclasses.replace(claimed[0], state=OpState.FAILED, lease_owner=None)])
    await add(store, "B", [create("two"), create("one")])  # the same work, in another order

    await store.take_over("B", now=NOW, rerun=True)

    await assert_counts_match(store, "A", "B")
    assert (await store.counts("A"))[OpState.PENDING] == 2  # "one" was armed again for B


async def test_a_pruned_job_counts_no_rows_while_its_done_ops_stay(store: SqlStore) -> None:
    await add(store, "A", [create("one"), create("two")])
    await settle_all(store, "A", OpState.SUCCEEDED, site_id=SITE)
    await store.set_job_state("A", JobState.FINISHED)

    await store.prune(before=NOW * 10)

    assert await store.counts("A") == {state: 0 for state in OpState}
    await assert_counts_match(store, "A")


async def test_prune_takes_a_done_job_whose_holder_died_but_not_one_still_held(
    store: SqlStore,
) -> None:
    """A process killed while holding a job leaves its name on it, with a lease that runs
    out: the job is pruned once done with. A job whose holder is live is not."""
    for job_id in ("dead", "live"):
        await add(store, job_id, [create(f"{job_id}-site")])
        await settle_all(store, job_id, OpState.SUCCEEDED, site_id=SITE)
        await store.set_job_state(job_id, JobState.FINISHED)
    now = time.time()
    assert await store.acquire_job("dead", "host:1:gone", now=now - 120, lease_seconds=30) is None
    assert await store.acquire_job("live", "host:2:here", now=now, lease_seconds=600) is None

    pruned = await store.prune(before=now + 3600)

    assert pruned.jobs == 1
    pruned_at = {entry.job.job_id: entry.pruned_at for entry in await store.list_jobs()}
    assert pruned_at["dead"] is not None and pruned_at["live"] is None


async def test_produced_by_keys_names_only_the_job_s_succeeded_rows(store: SqlStore) -> None:
    await add(store, "A", [create("one"), create("two"), create("three")])
    claimed = await store.claim_ready("A", now=NOW, limit=3, owner="w", lease_seconds=60)
    await store.save([
        dataclasses.replace(claimed[0], state=OpState.SUCCEEDED, site_id=SITE, lease_owner=None),
        dataclasses.replace(claimed[1], state=OpState.FAILED, lease_owner=None),
    ])

    found = await store.produced_by_keys("A", ["one", "two", "three", "nowhere"])

    assert found == {"one": SITE}
    assert await store.produced_by_keys("B", ["one"]) == {}
