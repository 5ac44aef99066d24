"""What the checks before a run (and `plan`) read from the store, on every database: the
operations rows would name if stored now, and which site ids bulkops produced. Both read only."""

from __future__ import annotations

import dataclasses

from bulkops.identity import scope_of
from bulkops.model import Action, JobSource, OpSpec, OpState
from bulkops.store import SqlStore

NOW = 1_700_000_000.0
ACCOUNT = "11111111-1111-4111-8111-111111111111"
API = "https://www.wixapis.com"
SCOPE = scope_of(ACCOUNT, API)
SITE = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
OTHER_SITE = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"


def create(key: str, name: str) -> OpSpec:
    return OpSpec(line=2, key=key, action=Action.CREATE_SITE, site_name=name)


async def _done(store: SqlStore, job_id: str, specs: list[OpSpec], site_ids: list[str],
                *, state: OpState = OpState.SUCCEEDED) -> None:
    lines = [dataclasses.replace(spec, line=i + 2) for i, spec in enumerate(specs)]
    await store.add_job(JobSource(job_id=job_id, path=f"/{job_id}.csv", format="csv",
                                  total=len(specs), account_id=ACCOUNT, base_url=API), lines)
    claimed = await store.claim_ready(job_id, now=NOW, limit=10, owner="w", lease_seconds=60)
    by_key = dict(zip([spec.key for spec in specs], site_ids, strict=True))
    await store.save([dataclasses.replace(op, state=state, site_id=by_key[op.spec.key],
                                          lease_owner=None) for op in claimed])


async def test_prior_ops_finds_rows_by_key_and_creates_by_their_name(store: SqlStore) -> None:
    await _done(store, "A", [create("acme", "Acme Bakery")], [SITE])
    rows = [create("acme", "Acme Bakery"), create("renamed", "ACME  bakery"),
            create("new", "New Place")]

    found = await store.prior_ops(SCOPE, rows)

    assert set(found) == {"acme", "renamed"}
    assert found["acme"].state is OpState.SUCCEEDED and found["acme"].site_id == SITE
    assert found["renamed"].op_id == found["acme"].op_id  # the same work, another key
    assert found["acme"].job_id == "A"
    # Read only: nothing was stored for the new key or the other name.
    assert await store.prior_ops(SCOPE, [create("new", "New Place")]) == {}
    assert await store.known_ops(SCOPE, ["renamed", "new"]) == {}


async def test_prior_ops_are_of_the_scope_only(store: SqlStore) -> None:
    await _done(store, "A", [create("acme", "Acme Bakery")], [SITE])
    other = scope_of("22222222-2222-4222-8222-222222222222", API)
    assert await store.prior_ops(other, [create("acme", "Acme Bakery")]) == {}


async def test_produced_sites_are_succeeded_results_of_the_scope_compared_in_any_case(
    store: SqlStore,
) -> None:
    await _done(store, "A", [create("acme", "Acme")], [SITE.upper()])
    await _done(store, "B", [create("fail", "Failed")], [OTHER_SITE], state=OpState.FAILED)

    found = await store.produced_sites(SCOPE, [SITE, OTHER_SITE, "cccc"])

    assert found == {SITE}
    assert await store.produced_sites(scope_of("x", API), [SITE]) == set()
    assert await store.produced_sites(SCOPE, []) == set()
