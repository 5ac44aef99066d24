"""The store's operation identity across jobs, take-over and job leases, on every database.

One operation per key in a scope (account + API); jobs' rows point at operations. Every test
talks to a real database through the public verbs only.
"""

from __future__ import annotations

import dataclasses

import pytest

from bulkops.errors import JobFileError, StoreError
from bulkops.identity import scope_of
from bulkops.model import Action, JobSource, JobState, OpRecord, OpSpec, OpState
from bulkops.store import SqlStore

NOW = 1_700_000_000.0
ACCOUNT = "11111111-1111-4111-8111-111111111111"
API = "https://www.wixapis.com"
SITE = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"


def create(key: str, name: str | None = None) -> OpSpec:
    return OpSpec(line=0, key=key, action=Action.CREATE_SITE, site_name=name or f"Site {key}")


def site_invite(key: str, site: str, email: str, roles: tuple[str, ...] = ("Admin",)) -> OpSpec:
    return OpSpec(line=0, key=key, action=Action.SITE_INVITE, site=site, email=email,
                  roles=roles)


def source(job_id: str, total: int, *, account: str = ACCOUNT) -> JobSource:
    return JobSource(job_id=job_id, path=f"/jobs/{job_id}.csv", format="csv", total=total,
                     account_id=account, base_url=API)


async def add(store: SqlStore, job_id: str, specs: list[OpSpec], *, account: str = ACCOUNT,
              owner: str | None = None) -> None:
    lines = [dataclasses.replace(spec, line=i + 2) for i, spec in enumerate(specs)]
    await store.add_job(source(job_id, len(specs), account=account), lines, owner=owner,
                        lease_seconds=30.0)


async def rows(store: SqlStore, job_id: str) -> dict[str, OpRecord]:
    return {op.spec.key: op async for op in store.iter_ops(job_id)}


async def settle_all(store: SqlStore, job_id: str, state: OpState, **fields: object) -> None:
    """Claim every op the job owns and record `state` for it (as the engine would)."""
    claimed = await store.claim_ready(job_id, now=NOW, limit=100, owner="w", lease_seconds=60)
    await store.save([dataclasses.replace(op, state=state, lease_owner=None, **fields)  # type: ignore[arg-type]
                      for op in claimed])


async def test_a_key_done_by_one_job_is_done_for_the_next_job_of_the_scope(
    store: SqlStore,
) -> None:
    await add(store, "A", [create("acme")])
    await settle_all(store, "A", OpState.SUCCEEDED, site_id=SITE)
    await add(store, "B", [create("acme"), create("new")])
    found = await rows(store, "B")
    assert found["acme"].state is OpState.SUCCEEDED and found["acme"].site_id == SITE
    assert found["acme"].elsewhere is not None and found["acme"].elsewhere.job_id == "A"
    assert found["new"].state is OpState.PENDING and found["new"].elsewhere is None
    # Only the new row is B's to claim.
    claimed = await store.claim_ready("B", now=NOW, limit=10, owner="w", lease_seconds=60)
    assert [op.spec.key for op in claimed] == ["new"]
    assert (await store.counts("B"))[OpState.SUCCEEDED] == 1


async def test_another_account_is_another_scope(store: SqlStore) -> None:
    await add(store, "A", [create("acme")])
    await settle_all(store, "A", OpState.SUCCEEDED, site_id=SITE)
    other = "22222222-2222-4222-8222-222222222222"
    await add(store, "B", [create("acme")], account=other)
    assert (await rows(store, "B"))["acme"].state is OpState.PENDING


async def test_a_done_key_with_other_content_is_refused_and_nothing_is_stored(
    store: SqlStore,
) -> None:
    await add(store, "A", [create("acme", "Acme Bakery")])
    await settle_all(store, "A", OpState.SUCCEEDED, site_id=SITE)
    with pytest.raises(JobFileError) as caught:
        await add(store, "B", [create("other"), create("acme", "Acme Florist")])
    [error] = caught.value.errors
    assert (error.line, error.column) == (3, "key")
    assert "'acme' was done in job A (line 2)" in error.reason
    assert await store.get_job("B") is None


async def test_a_failed_key_with_other_content_is_replaced_on_take_over(store: SqlStore) -> None:
    await add(store, "A", [create("acme", "Acme Bakery")])
    await settle_all(store, "A", OpState.FAILED)
    await add(store, "B", [create("acme", "Acme Florist")])
    taken = await store.take_over("B", now=NOW, rerun=True)
    assert (taken.adopted, taken.rearmed) == (1, 1)
    [op] = await store.claim_ready("B", now=NOW, limit=10, owner="w", lease_seconds=60)
    assert op.spec.site_name == "Acme Florist" and op.attempts == 0


async def test_an_unknown_outcome_blocks_other_content_but_reruns_the_same(
    store: SqlStore,
) -> None:
    await add(store, "A", [create("acme", "Acme Bakery")])
    claimed = await store.claim_ready("A", now=NOW, limit=10, owner="w", lease_seconds=60)
    await store.save([dataclasses.replace(claimed[0], state=OpState.FAILED, attempts=8,
                                          maybe_applied=True, lease_owner=None)])
    with pytest.raises(JobFileError) as caught:
        await add(store, "B", [create("acme", "Acme Florist")])
    assert "may already have taken effect in job A" in caught.value.errors[0].reason
    await add(store, "C", [create("acme", "Acme Bakery")])
    await store.take_over("C", now=NOW, rerun=True)
    # Looked up before anything is sent again, with a fresh attempt budget.
    [op] = await store.claim_ready("C", now=NOW, limit=10, owner="w", lease_seconds=60)
    assert (op.state, op.attempts, op.maybe_applied) == (OpState.UNKNOWN, 0, False)


async def test_resume_takes_over_only_unfinished_rows_and_run_also_failed_ones(
    store: SqlStore,
) -> None:
    await add(store, "A", [create("done"), create("failed"), create("open")])
    claimed = {op.spec.key: op for op in await store.claim_ready(
        "A", now=NOW, limit=10, owner="w", lease_seconds=60)}
    await store.save([
        dataclasses.replace(claimed["done"], state=OpState.SUCCEEDED, lease_owner=None),
        dataclasses.replace(claimed["failed"], state=OpState.FAILED, lease_owner=None),
        dataclasses.replace(claimed["open"], state=OpState.RUNNING),
    ])
    await add(store, "B", [create("done"), create("failed"), create("open")])
    resumed = await store.take_over("B", now=NOW, rerun=False)
    assert (resumed.adopted, resumed.rearmed, resumed.held_elsewhere) == (1, 0, 0)
    assert (await rows(store, "B"))["open"].state is OpState.UNKNOWN  # was in flight
    rerun = await store.take_over("B", now=NOW, rerun=True)
    assert (rerun.adopted, rerun.rearmed) == (1, 1)
    states = {key: op.state for key, op in (await rows(store, "B")).items()}
    assert states == {"done": OpState.SUCCEEDED, "failed": OpState.PENDING,
                      "open": OpState.UNKNOWN}


async def test_rows_of_a_job_a_live_process_holds_are_not_taken_over(store: SqlStore) -> None:
    await add(store, "A", [create("shared")], owner="host:1:a")
    await add(store, "B", [create("shared"), create("mine")], owner="host:2:b")
    taken = await store.take_over("B", now=NOW + 1, rerun=True)
    assert (taken.adopted, taken.held_elsewhere) == (0, 1)
    # Once A's lease has ended (its process died), B takes the row over.
    later = await store.take_over("B", now=NOW + 3600 * 24 * 365 * 100, rerun=False)
    assert (later.adopted, later.held_elsewhere) == (1, 0)


async def test_an_invite_done_under_another_key_is_the_same_operation(store: SqlStore) -> None:
    await add(store, "A", [site_invite("first", SITE, "Owner@Acme.com", ("Admin", "Blog"))])
    claimed = await store.claim_ready("A", now=NOW, limit=10, owner="w", lease_seconds=60)
    await store.save([dataclasses.replace(claimed[0], state=OpState.SUCCEEDED,
                                          invite_id="inv-1", lease_owner=None)])
    await add(store, "B", [site_invite("second", SITE.upper(), " owner@acme.com ",
                                       ("blog", "admin")),
                           site_invite("other-role", SITE, "owner@acme.com", ("Admin",))])
    found = await rows(store, "B")
    assert found["second"].state is OpState.SUCCEEDED
    assert found["second"].invite_id == "inv-1"
    assert found["other-role"].state is OpState.PENDING  # other roles: another invite


async def test_a_reference_to_an_earlier_runs_site_resolves_to_its_site_id(
    store: SqlStore,
) -> None:
    await add(store, "A", [create("acme")])
    await settle_all(store, "A", OpState.SUCCEEDED, site_id=SITE)
    await add(store, "B", [site_invite("owner", "@acme", "owner@acme.com")])
    [op] = await store.claim_ready("B", now=NOW, limit=10, owner="w", lease_seconds=60)
    assert op.refs == {"acme": SITE}
    known = await store.known_ops(scope_of(ACCOUNT, API), ["acme", "ghost"])
    assert set(known) == {"acme"} and known["acme"].state is OpState.SUCCEEDED
    assert known["acme"].job_id == "A" and known["acme"].site_id == SITE


async def test_a_job_lease_is_held_by_one_owner_until_released_or_expired(
    store: SqlStore,
) -> None:
    await add(store, "A", [create("a")], owner="host:1:first")
    holder = await store.acquire_job("A", "host:2:second", now=NOW + 1, lease_seconds=30)
    assert holder is not None and holder.pid == "1" and holder.host == "host"
    assert await store.renew_job("A", "host:1:first", now=NOW + 2, lease_seconds=30)
    await store.release_job("A", "host:1:first")
    assert await store.acquire_job("A", "host:2:second", now=NOW, lease_seconds=30) is None
    assert await store.renew_job("A", "host:2:second", now=NOW, lease_seconds=30)
    # Expired: anyone may take it, and the old owner's heartbeat then says so.
    far = NOW + 3600 * 24 * 365 * 100
    assert await store.acquire_job("A", "host:3:third", now=far, lease_seconds=30) is None
    assert not await store.renew_job("A", "host:2:second", now=far, lease_seconds=30)
    with pytest.raises(StoreError):
        await store.acquire_job("nope", "host:3:third", now=NOW, lease_seconds=30)


async def test_cancel_closes_the_jobs_unfinished_rows_and_keeps_unknown_outcomes(
    store: SqlStore,
) -> None:
    await add(store, "A", [create("done"), create("flying"), create("waiting")])
    claimed = {op.spec.key: op for op in await store.claim_ready(
        "A", now=NOW, limit=2, owner="w", lease_seconds=60)}
    await store.save([
        dataclasses.replace(claimed["done"], state=OpState.SUCCEEDED, lease_owner=None),
        dataclasses.replace(claimed["flying"], state=OpState.UNKNOWN, lease_owner=None),
    ])
    assert await store.cancel_job("A") == 2
    job = await store.get_job("A")
    assert job is not None and job.state is JobState.CANCELLED
    found = await rows(store, "A")
    assert {k: op.state for k, op in found.items()} == {
        "done": OpState.SUCCEEDED, "flying": OpState.CANCELLED, "waiting": OpState.CANCELLED}
    assert found["flying"].maybe_applied and not found["waiting"].maybe_applied
    assert await store.latest_job(unfinished_only=True) is None
