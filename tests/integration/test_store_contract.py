"""The `Store` contract, run against every implementation (SQLite file; PostgreSQL when set up).

Every test talks to a real database through the public verbs only.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import pytest

from bulkops.errors import StoreError
from bulkops.model import (
    Action,
    JobSource,
    JobState,
    OpError,
    OpRecord,
    OpSpec,
    OpState,
)
from bulkops.store import SqlStore, Store, open_store

NOW = 1_700_000_000.0


def create(key: str, line: int = 0) -> OpSpec:
    return OpSpec(line=line, key=key, action=Action.CREATE_SITE, site_name=f"Site {key}")


def invite(key: str, site: str, *, depends_on: tuple[str, ...] = ()) -> OpSpec:
    return OpSpec(
        line=0,
        key=key,
        action=Action.SITE_INVITE,
        site=site,
        email=f"{key}@example.com",
        roles=("Website Manager",),
        depends_on=depends_on,
    )


def numbered(specs: list[OpSpec]) -> list[OpSpec]:
    """The specs with line numbers as a CSV would give them (header on line 1)."""
    return [dataclasses.replace(spec, line=i + 2) for i, spec in enumerate(specs)]


async def add(store: Store, specs: list[OpSpec], job_id: str = "job-1") -> JobSource:
    source = JobSource(job_id=job_id, path=f"/jobs/{job_id}.csv", format="csv", total=len(specs))
    await store.add_job(source, numbered(specs))
    return source


async def all_ops(store: Store, job_id: str = "job-1") -> list[OpRecord]:
    return [op async for op in store.iter_ops(job_id)]


async def by_key(store: Store, job_id: str = "job-1") -> dict[str, OpRecord]:
    return {op.spec.key: op async for op in store.iter_ops(job_id)}


async def claim(
    store: Store, owner: str = "w1", *, now: float = NOW, limit: int = 100, lease: float = 60.0
) -> list[OpRecord]:
    return await store.claim_ready("job-1", now=now, limit=limit, owner=owner, lease_seconds=lease)


async def finish(store: Store, key: str, state: OpState, site_id: str | None = None) -> None:
    op = (await by_key(store))[key]
    await store.save([dataclasses.replace(op, state=state, site_id=site_id, lease_owner=None)])


def test_sql_store_satisfies_the_store_protocol() -> None:
    """Type-level check (mypy) that SqlStore implements every verb of Store."""
    store_type: type[Store] = SqlStore
    assert store_type is SqlStore


# -- add_job -------------------------------------------------------------------------------


async def test_add_job_creates_a_pending_job_with_its_total(store: SqlStore) -> None:
    source = JobSource(job_id="job-1", path="/jobs/a.csv", format="csv", total=2)
    info, created = await store.add_job(source, numbered([create("a"), create("b")]))
    assert created
    assert (info.job_id, info.path, info.format, info.total) == ("job-1", "/jobs/a.csv", "csv", 2)
    assert info.state is JobState.PENDING
    assert await store.get_job("job-1") == info


async def test_add_job_twice_keeps_the_first_and_does_not_read_the_ops(store: SqlStore) -> None:
    first = await add(store, [create("a")])

    def must_not_be_read() -> Iterator[OpSpec]:
        raise AssertionError("ops of an existing job were consumed")
        yield  # pragma: no cover - makes this a generator

    again, created = await store.add_job(dataclasses.replace(first, total=5), must_not_be_read())
    assert not created
    assert again.total == 1
    assert [op.spec.key for op in await all_ops(store)] == ["a"]


async def test_ops_come_back_in_input_order_with_their_specs(store: SqlStore) -> None:
    specs = numbered([create(f"k{i:04d}") for i in range(2500)])  # more than one page
    specs[7] = dataclasses.replace(specs[7], template_id="tmpl", folder_id="fld")
    source = JobSource(job_id="job-1", path="p", format="csv", total=len(specs))
    await store.add_job(source, iter(specs))
    ops = await all_ops(store)
    assert [op.seq for op in ops] == list(range(2500))
    assert [op.spec for op in ops] == specs
    assert all(op.state is OpState.PENDING and op.attempts == 0 for op in ops)


async def test_add_job_rejects_a_reference_to_a_missing_key_and_stores_nothing(
    store: SqlStore,
) -> None:
    with pytest.raises(StoreError, match="@ghost"):
        await add(store, [create("a"), invite("inv", "@ghost")])
    assert await store.get_job("job-1") is None


async def test_add_job_rejects_a_total_that_does_not_match_the_ops(store: SqlStore) -> None:
    source = JobSource(job_id="job-1", path="p", format="csv", total=3)
    with pytest.raises(StoreError, match="expected 3"):
        await store.add_job(source, [create("a")])
    assert await store.get_job("job-1") is None


async def test_jobs_are_separate(store: SqlStore) -> None:
    """The same key in two jobs names two operations."""
    await add(store, [create("a")], job_id="job-1")
    await add(store, [create("a"), create("b")], job_id="job-2")
    assert len(await all_ops(store, "job-1")) == 1
    assert len(await all_ops(store, "job-2")) == 2
    assert (await store.counts("job-2"))[OpState.PENDING] == 2


# -- claim_ready ---------------------------------------------------------------------------


async def test_claim_waits_for_dependencies_and_fills_refs(store: SqlStore) -> None:
    await add(
        store,
        [
            create("acme"),
            create("beta"),
            invite("inv", "@acme", depends_on=("beta",)),
        ],
    )
    first = await claim(store)
    assert [op.spec.key for op in first] == ["acme", "beta"]
    assert all(op.lease_owner == "w1" for op in first)

    await finish(store, "acme", OpState.SUCCEEDED, site_id="site-acme")
    # inv still waits for beta (pending, and leased to w1)
    assert await claim(store, "w2", now=NOW + 1) == []

    await finish(store, "beta", OpState.SUCCEEDED, site_id="site-beta")
    [ready] = await claim(store, "w2", now=NOW + 2)
    assert ready.spec.key == "inv"
    assert ready.refs == {"acme": "site-acme", "beta": "site-beta"}


async def test_claim_returns_input_order_and_respects_the_limit(store: SqlStore) -> None:
    await add(store, [create(f"k{i}") for i in range(10)])
    assert [op.seq for op in await claim(store, "w1", limit=3)] == [0, 1, 2]
    assert [op.seq for op in await claim(store, "w2", limit=3)] == [3, 4, 5]


async def test_claim_includes_unknown_ops_in_input_order_whatever_their_deps(
    store: SqlStore,
) -> None:
    await add(store, [create("a"), invite("inv", "@a"), create("c")])
    ops = await by_key(store)
    await store.save([dataclasses.replace(ops["inv"], state=OpState.UNKNOWN)])
    claimed = await claim(store)
    assert [(op.spec.key, op.state) for op in claimed] == [
        ("a", OpState.PENDING),
        ("inv", OpState.UNKNOWN),
        ("c", OpState.PENDING),
    ]


async def test_claim_skips_states_that_are_not_claimable(store: SqlStore) -> None:
    states = [
        OpState.RUNNING,
        OpState.SUCCEEDED,
        OpState.FAILED,
        OpState.BLOCKED,
        OpState.CANCELLED,
    ]
    await add(store, [create(s.value) for s in states])
    ops = await all_ops(store)
    await store.save([dataclasses.replace(op, state=s) for op, s in zip(ops, states, strict=True)])
    assert await claim(store) == []


async def test_claim_respects_not_before(store: SqlStore) -> None:
    await add(store, [create("a")])
    [op] = await all_ops(store)
    await store.save([dataclasses.replace(op, not_before=NOW + 10)])
    assert await claim(store, now=NOW + 9.9) == []
    assert [o.spec.key for o in await claim(store, now=NOW + 10)] == ["a"]


async def test_a_live_lease_keeps_every_claimer_out_until_it_expires(store: SqlStore) -> None:
    """Its owner included: an op is handed out once per lease, never to two workers."""
    await add(store, [create("a")])
    assert len(await claim(store, "w1", lease=30)) == 1
    assert await claim(store, "w2", now=NOW + 29) == []
    assert await claim(store, "w1", now=NOW + 29) == []
    [again] = await claim(store, "w2", now=NOW + 30)
    assert again.lease_owner == "w2"


async def test_an_op_saved_unknown_under_its_lease_stays_with_its_worker(store: SqlStore) -> None:
    """A worker that records UNKNOWN and goes on reconciling keeps the op to itself."""
    await add(store, [create("a")])
    [op] = await claim(store, "w1", lease=300)
    await store.save([dataclasses.replace(op, state=OpState.UNKNOWN, not_before=NOW)])
    assert await claim(store, "w1", now=NOW + 1) == []
    assert await claim(store, "w2", now=NOW + 1) == []


async def test_saving_with_no_owner_releases_the_lease(store: SqlStore) -> None:
    await add(store, [create("a")])
    [op] = await claim(store, "w1", lease=300)
    await store.save([dataclasses.replace(op, lease_owner=None)])
    assert [o.lease_owner for o in await claim(store, "w2")] == ["w2"]


async def test_saving_with_the_owner_keeps_the_lease(store: SqlStore) -> None:
    await add(store, [create("a")])
    [op] = await claim(store, "w1", lease=300)
    await store.save([dataclasses.replace(op, attempts=1)])
    assert await claim(store, "w2", now=NOW + 299) == []


async def test_two_stores_claiming_at_once_never_share_an_op(store_url: str) -> None:
    """Two connections pools (as two processes would have) race for the same ready ops."""
    first = await open_store(store_url)
    second = await open_store(store_url)
    try:
        await add(first, [create(f"k{i}") for i in range(200)])

        async def drain(store: SqlStore, owner: str) -> list[int]:
            """Claim and mark running (as the engine does) until nothing is left."""
            got: list[int] = []
            for _ in range(200):
                batch = await claim(store, owner, limit=7)
                if not batch:
                    break
                await store.save([dataclasses.replace(op, state=OpState.RUNNING) for op in batch])
                got += [op.op_id for op in batch]
                await asyncio.sleep(0)
            return got

        results = await asyncio.gather(
            drain(first, "a"), drain(second, "b"), drain(first, "c"), drain(second, "d")
        )
        claimed = [op_id for result in results for op_id in result]
        assert len(claimed) == len(set(claimed)) == 200
    finally:
        await first.close()
        await second.close()


# -- save ----------------------------------------------------------------------------------


async def test_save_round_trips_every_mutable_field(store: SqlStore) -> None:
    await add(store, [create("a")])
    [op] = await claim(store)
    changed = dataclasses.replace(
        op,
        state=OpState.FAILED,
        attempts=3,
        site_id="site-1",
        invite_id="inv-1",
        details={"registrar_records": [{"type": "A", "host": "client.com",
                                        "values": ["185.230.63.107"], "ttl": 3600}]},
        error=OpError(
            code="SITE_NAME_TAKEN",
            message="name taken",
            hint="rename it",
            status=409,
            request_id="req-9",
        ),
        first_sent_at=NOW + 1.25,
        last_sent_at=NOW + 2.5,
        not_before=NOW + 99.75,
        checks=4,
        note="reconciled: found by name",
        lease_owner="w1",
        refs={},
    )
    await store.save([changed])
    await store.save([changed])  # idempotent
    assert await all_ops(store) == [changed]

    cleared = dataclasses.replace(changed, error=None, note=None, site_id=None, lease_owner=None,
                                  details=None)
    await store.save([cleared])
    assert await all_ops(store) == [cleared]


async def test_save_writes_many_ops_at_once(store: SqlStore) -> None:
    await add(store, [create(f"k{i}") for i in range(5)])
    ops = await claim(store)
    await store.save([dataclasses.replace(op, state=OpState.RUNNING, attempts=1) for op in ops])
    assert (await store.counts("job-1"))[OpState.RUNNING] == 5


async def test_save_touches_the_job_at_most_once_a_second(store_url: str) -> None:
    clock = [100.0]
    store = await open_store(store_url, clock=lambda: clock[0])
    try:
        await add(store, [create("a")])
        [op] = await all_ops(store)
        for moment, expected in ((100.5, 100.0), (101.0, 101.0), (101.9, 101.0), (103.0, 103.0)):
            clock[0] = moment
            await store.save([dataclasses.replace(op, attempts=1)])
            job = await store.get_job("job-1")
            assert job is not None and job.updated_at == expected, moment
    finally:
        await store.close()


# -- block_dependents ----------------------------------------------------------------------


async def test_block_dependents_is_transitive_and_names_the_failed_dependency(
    store: SqlStore,
) -> None:
    await add(
        store,
        [
            create("acme"),
            invite("inv", "@acme"),
            invite("after-inv", "site-x", depends_on=("inv",)),
            create("free"),
            invite("free-inv", "@free"),
        ],
    )
    await finish(store, "acme", OpState.FAILED)
    assert await store.block_dependents("job-1") == 2
    assert await store.block_dependents("job-1") == 0

    ops = await by_key(store)
    assert ops["inv"].state is OpState.BLOCKED
    assert ops["inv"].error == OpError(code="DEPENDENCY_FAILED", message="dependency @acme failed")
    assert ops["after-inv"].state is OpState.BLOCKED
    assert ops["after-inv"].error is not None
    assert ops["after-inv"].error.message == "dependency @inv failed"
    assert ops["free"].state is OpState.PENDING
    assert ops["free-inv"].state is OpState.PENDING


async def test_block_dependents_names_the_first_dead_dependency_in_input_order(
    store: SqlStore,
) -> None:
    await add(store, [create("a"), create("b"), invite("inv", "@b", depends_on=("a",))])
    await finish(store, "b", OpState.CANCELLED)
    await finish(store, "a", OpState.FAILED)
    assert await store.block_dependents("job-1") == 1
    error = (await by_key(store))["inv"].error
    assert error is not None and error.message == "dependency @a failed"


async def test_block_dependents_leaves_unknown_and_succeeded_dependencies_alone(
    store: SqlStore,
) -> None:
    await add(store, [create("a"), create("b"), invite("ia", "@a"), invite("ib", "@b")])
    await finish(store, "a", OpState.UNKNOWN)
    await finish(store, "b", OpState.SUCCEEDED, site_id="s")
    assert await store.block_dependents("job-1") == 0


async def test_reopen_blocked_returns_blocked_ops_to_pending_without_their_error(
    store: SqlStore,
) -> None:
    await add(store, [create("a"), invite("ia", "@a"), create("b"), invite("ib", "@b")])
    await finish(store, "a", OpState.FAILED)
    await finish(store, "b", OpState.FAILED)
    assert await store.block_dependents("job-1") == 2
    await finish(store, "b", OpState.SUCCEEDED, site_id="site-b")  # b was fixed meanwhile

    assert await store.reopen_blocked("job-1") == 2
    ops = await by_key(store)
    assert [(ops[k].state, ops[k].error) for k in ("ia", "ib")] == [(OpState.PENDING, None)] * 2
    assert await store.block_dependents("job-1") == 1  # only ia: a is still failed
    [ready] = await claim(store)
    assert (ready.spec.key, ready.refs) == ("ib", {"b": "site-b"})


# -- recovery, counts, wake-up -------------------------------------------------------------


async def test_recover_in_flight_turns_running_into_unknown_and_frees_leases(
    store: SqlStore,
) -> None:
    await add(store, [create("a"), create("b"), create("c")])
    a, *_ = await claim(store, "dead-worker", lease=3600)
    await store.save([dataclasses.replace(a, state=OpState.RUNNING, attempts=1)])
    assert await store.recover_in_flight("job-1") == 1
    ops = await by_key(store)
    assert ops["a"].state is OpState.UNKNOWN and ops["a"].attempts == 1
    assert ops["b"].state is OpState.PENDING
    assert all(op.lease_owner is None for op in ops.values())
    assert len(await claim(store, "new-worker")) == 3


async def test_counts_list_every_state_with_zeros(store: SqlStore) -> None:
    assert await store.counts("no-such-job") == {state: 0 for state in OpState}
    await add(store, [create("a"), create("b"), create("c")])
    await finish(store, "a", OpState.SUCCEEDED, site_id="s")
    counts = await store.counts("job-1")
    assert counts == {**{state: 0 for state in OpState}, OpState.PENDING: 2, OpState.SUCCEEDED: 1}


async def test_iter_ops_only_yields_one_state_in_input_order(store: SqlStore) -> None:
    await add(store, [create(f"k{i}") for i in range(6)])
    ops = await all_ops(store)
    await store.save([dataclasses.replace(op, state=OpState.FAILED) for op in ops[1::2]])
    failed = [op.spec.key async for op in store.iter_ops("job-1", only=OpState.FAILED)]
    assert failed == ["k1", "k3", "k5"]
    assert [op async for op in store.iter_ops("job-1", only=OpState.UNKNOWN)] == []


async def test_next_wakeup_is_the_earliest_not_before_of_unleased_waiting_ops(
    store: SqlStore,
) -> None:
    assert await store.next_wakeup("job-1") is None
    await add(store, [create("a"), create("b"), create("c"), create("d")])
    assert await store.next_wakeup("job-1") is None  # nothing is scheduled
    a, b, c, d = await all_ops(store)
    await store.save(
        [
            dataclasses.replace(a, not_before=NOW + 50),
            dataclasses.replace(b, state=OpState.UNKNOWN, not_before=NOW + 30),
            dataclasses.replace(c, state=OpState.SUCCEEDED, not_before=NOW + 5),  # final: ignored
            dataclasses.replace(d, not_before=NOW + 1, lease_owner="w1"),  # leased: ignored
        ]
    )
    assert await store.next_wakeup("job-1") == NOW + 30


# -- jobs ----------------------------------------------------------------------------------


async def test_latest_job_and_unfinished_only(store_url: str) -> None:
    ticks = iter(float(t) for t in range(100, 200))
    store = await open_store(store_url, clock=lambda: next(ticks))
    try:
        assert await store.latest_job() is None
        await add(store, [create("a")], job_id="old")
        await add(store, [create("a")], job_id="new")
        latest = await store.latest_job()
        assert latest is not None and latest.job_id == "new"
        await store.set_job_state("new", JobState.FINISHED)
        unfinished = await store.latest_job(unfinished_only=True)
        assert unfinished is not None and unfinished.job_id == "old"
    finally:
        await store.close()


async def test_set_job_state_records_the_stop_reason(store: SqlStore) -> None:
    await add(store, [create("a")])
    await store.set_job_state("job-1", JobState.STOPPED, stop_reason="failure breaker")
    job = await store.get_job("job-1")
    assert job is not None
    assert (job.state, job.stop_reason) == (JobState.STOPPED, "failure breaker")
    await store.set_job_state("job-1", JobState.RUNNING)
    job = await store.get_job("job-1")
    assert job is not None and (job.state, job.stop_reason) == (JobState.RUNNING, None)


async def test_set_job_state_of_an_unknown_job_is_an_error(store: SqlStore) -> None:
    with pytest.raises(StoreError, match="no job"):
        await store.set_job_state("nope", JobState.RUNNING)


async def test_get_job_of_an_unknown_job_is_none(store: SqlStore) -> None:
    assert await store.get_job("nope") is None


async def test_a_reopened_store_sees_everything_saved(store_url: str) -> None:
    first = await open_store(store_url)
    await add(first, [create("a")])
    [op] = await claim(first)
    await first.save([dataclasses.replace(op, state=OpState.SUCCEEDED, site_id="s-1")])
    await first.close()
    second = await open_store(store_url)
    try:
        [again] = await all_ops(second)
        assert (again.state, again.site_id) == (OpState.SUCCEEDED, "s-1")
    finally:
        await second.close()


async def test_counts_by_action_add_up_to_the_counts(store: SqlStore) -> None:
    """Per action, the job's rows per state; summed over actions, `counts` exactly."""
    specs = [OpSpec(line=2, key="a", action=Action.CREATE_SITE, site_name="A"),
             OpSpec(line=3, key="m", action=Action.ACCOUNT_INVITE, email="m@example.com",
                    roles=("Website Manager",))]
    await store.add_job(JobSource(job_id="byact", path="j.csv", format="csv", total=2),
                        iter(specs))
    per_action = await store.counts_by_action("byact")
    assert set(per_action) == {Action.CREATE_SITE, Action.ACCOUNT_INVITE}
    assert per_action[Action.ACCOUNT_INVITE][OpState.PENDING] == 1
    counts = await store.counts("byact")
    assert {s: sum(c[s] for c in per_action.values()) for s in OpState} == dict(counts)


async def test_open_jobs_are_those_a_worker_may_run_oldest_first(store: Store) -> None:
    """Stored, running and interrupted jobs (held or not: `held_at` tells), oldest first;
    never finished, stopped (a person decides) or cancelled ones."""
    states = {
        "j-running": JobState.RUNNING, "j-finished": JobState.FINISHED,
        "j-pending": None, "j-stopped": JobState.STOPPED,
        "j-cancelled": JobState.CANCELLED, "j-interrupted": JobState.INTERRUPTED,
    }
    for job_id, state in states.items():
        await add(store, [create(f"{job_id}-a")], job_id=job_id)
        if state is not None:
            await store.set_job_state(job_id, state)
        await asyncio.sleep(0.002)  # each created after the last, by the store's own clock
    assert await store.acquire_job("j-running", "w1", now=NOW, lease_seconds=30.0) is None

    found = await store.open_jobs()

    assert [job.job_id for job in found] == ["j-running", "j-pending", "j-interrupted"]
    assert [job.held_at(NOW + 1) for job in found] == [True, False, False]
    assert [job.held_at(NOW + 31) for job in found] == [False, False, False]
