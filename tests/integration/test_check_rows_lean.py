"""The checks before sending read the rows still to do lean (`Store.open_rows`), and find
exactly what they found reading every row (`iter_ops`), on every database.

`open_rows` is compared with its definition: the job's rows as `iter_ops` streams them whose
op the job owns and is not final. The checks are run both ways against the sandbox over HTTP,
on a job with a problem of each kind, rows done, rows in flight and rows another job owns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Collection

from test_engine import ACCOUNT

from bulkops.model import FINAL_STATES, Action, JobSource, OpRecord, OpSpec, OpState
from bulkops.precheck import Candidate, Findings, check_rows, read_roles
from bulkops.ratelimit import AdaptiveBudget
from bulkops.retry import ReadRetry
from bulkops.sandbox import SandboxConfig, running_sandbox
from bulkops.sandbox.config import DEMO_ACME_SITE_ID, DEMO_BLUEFIN_SITE_ID, DEMO_SITES
from bulkops.settings import parse_rate
from bulkops.store import SqlStore
from bulkops.wix import WixClient

NOW = 1_700_000_000.0
BASE_URL = "https://www.wixapis.com"
SUB = SandboxConfig().sub_accounts[0]
MISSING_SITE = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
TAKEN_NAME = DEMO_SITES[0].display_name


def spec(key: str, action: Action, **fields: object) -> OpSpec:
    return OpSpec(line=0, key=key, action=action, **fields)  # type: ignore[arg-type]


def invite(key: str, action: Action, role: str = "Website Manager", **fields: object) -> OpSpec:
    return spec(key, action, email=f"{key}@example.com", roles=(role,), **fields)


# A problem of each kind, and rows the checks find nothing in.
ROWS = [
    spec("site-1", Action.CREATE_SITE, site_name="Client 1 Studio"),
    spec("site-2", Action.CREATE_SITE, site_name="Client 2 Studio"),
    spec("taken", Action.CREATE_SITE, site_name=TAKEN_NAME),  # the name exists
    spec("done", Action.CREATE_SITE, site_name=DEMO_SITES[1].display_name),  # done: unchecked
    invite("owner-1", Action.SITE_INVITE, site="@site-1"),
    invite("bad-role", Action.SITE_INVITE, role="Nope", site="@site-1"),
    invite("missing", Action.SITE_INVITE, site=MISSING_SITE),  # not in the account
    invite("team-1", Action.ACCOUNT_INVITE, sites=("@site-1", DEMO_BLUEFIN_SITE_ID)),
    spec("move-1", Action.TRANSFER_SITE, site="@site-1", to_account=SUB),  # does not wait
    spec("move-2", Action.TRANSFER_SITE, site=MISSING_SITE, to_account=SUB),
    spec("domain-1", Action.CONNECT_DOMAIN, site=DEMO_ACME_SITE_ID, domain="client1.com",
         connection="nameservers"),
    spec("domain-2", Action.CONNECT_DOMAIN, site="@site-2", domain="client2.com",
         connection="nameservers"),  # a site still to create has no Premium
    spec("mx-3", Action.SET_DNS_RECORD, domain="client3.com", record_type="MX",
         host="client3.com", values=("10 mx.client3.com",)),  # no zone at Wix
    invite("running", Action.SITE_INVITE, role="Nope", site="@site-1"),  # in flight: checked
]
# Another job's rows: the first names two of the job's keys, so their ops move to it.
OTHER = [ROWS[0], invite("bad-role", Action.SITE_INVITE, role="Nope", site="@site-1")]


async def add(store: SqlStore, job_id: str, specs: list[OpSpec]) -> None:
    lines = [dataclasses.replace(row, line=i + 2) for i, row in enumerate(specs)]
    await store.add_job(JobSource(job_id=job_id, path=f"/jobs/{job_id}.csv", format="csv",
                                  total=len(specs), account_id=ACCOUNT, base_url=BASE_URL),
                        lines)


async def set_state(store: SqlStore, job_id: str, states: dict[str, OpState]) -> None:
    ops = {op.spec.key: op async for op in store.iter_ops(job_id)}
    await store.save([dataclasses.replace(ops[key], state=state, attempts=1,
                                          first_sent_at=NOW, note=f"was {state}")
                      for key, state in states.items()])


async def job_half_done(store: SqlStore) -> None:
    """Job "a" with rows done, failed, in flight and unknown; some of its ops job "b"'s."""
    await add(store, "a", ROWS)
    await set_state(store, "a", {"done": OpState.SUCCEEDED, "move-2": OpState.FAILED,
                                 "running": OpState.RUNNING, "owner-1": OpState.UNKNOWN})
    await add(store, "b", OTHER)
    taken = await store.take_over("b", now=NOW, rerun=False)
    assert taken.adopted == 2  # its rows name ops "a" owns: they are not all its own


async def by_definition(store: SqlStore, job_id: str) -> list[OpRecord]:
    return [op async for op in store.iter_ops(job_id)
            if op.elsewhere is None and op.state not in FINAL_STATES]


async def test_open_rows_are_the_rows_the_job_owns_still_to_do(store: SqlStore) -> None:
    await job_half_done(store)
    for job_id in ("a", "b"):
        expected = await by_definition(store, job_id)
        assert [op async for op in store.open_rows(job_id)] == expected
        assert await store.has_open_rows(job_id) == bool(expected)
        some = {Action.CREATE_SITE, Action.SET_DNS_RECORD}
        assert [op async for op in store.open_rows(job_id, actions=some)] == [
            op for op in expected if op.spec.action in some]
        assert [op async for op in store.open_rows(job_id, actions=())] == []
    keys = [op.spec.key async for op in store.open_rows("a")]
    assert "done" not in keys and "move-2" not in keys and "site-1" not in keys
    assert {"running", "owner-1"} <= set(keys)


async def test_a_job_owning_all_its_rows_takes_nothing_over(store: SqlStore) -> None:
    await job_half_done(store)
    taken = await store.take_over("a", now=NOW, rerun=False)
    assert (taken.adopted, taken.held_elsewhere) == (2, 0)  # its two ops back from "b"
    taken = await store.take_over("a", now=NOW, rerun=False)
    assert (taken.adopted, taken.held_elsewhere) == (0, 0)
    assert [op async for op in store.open_rows("a")] == await by_definition(store, "a")


async def test_a_job_with_every_row_done_has_no_open_row(store: SqlStore) -> None:
    await add(store, "a", ROWS[:2])
    await set_state(store, "a", {"site-1": OpState.SUCCEEDED, "site-2": OpState.CANCELLED})
    assert not await store.has_open_rows("a")
    assert [op async for op in store.open_rows("a")] == []


async def check(store: SqlStore, client: WixClient, *, lean: bool, job_id: str = "a"
                ) -> Findings:
    """The checks of a job as a run makes them (`lean`), or reading every row twice."""

    async def every_row() -> AsyncIterator[Candidate]:
        for op in await by_definition(store, job_id):
            yield Candidate(op.spec, op)

    async def of_actions(actions: Collection[Action]) -> AsyncIterator[Candidate]:
        async for op in store.open_rows(job_id, actions=actions):
            yield Candidate(op.spec, op)

    async def lean_rows() -> AsyncIterator[Candidate]:
        async for op in store.open_rows(job_id):
            yield Candidate(op.spec, op)

    async def produced(site_ids: Collection[str]) -> set[str]:
        return await store.produced_sites("", site_ids)

    roles = await read_roles(client)
    return await check_rows(lean_rows if lean else every_row, client, roles,
                            account_id=ACCOUNT, if_exists="fail", produced=produced,
                            retry=ReadRetry(attempts=2, base=0.01),
                            of_actions=of_actions if lean else None)


async def test_the_lean_read_finds_every_problem_the_full_read_finds(store: SqlStore) -> None:
    await job_half_done(store)
    async with (running_sandbox(SandboxConfig(demo_sites=True), port=0) as fake,
                WixClient(base_url=fake.base_url, api_key="sandbox-key", account_id=ACCOUNT,
                          budget=AdaptiveBudget(parse_rate("500/s")), timeout=5.0) as client):
        full = await check(store, client, lean=False)
        lean = await check(store, client, lean=True)
    assert lean.problems == full.problems
    assert lean.adoptions == full.adoptions
    assert lean.settled == full.settled
    found = {(problem.line, problem.column) for problem in full.problems}
    line = {row.key: i + 2 for i, row in enumerate(ROWS)}
    # One of each kind (a row another job owns, or done, is not checked).
    assert found == {
        (line["taken"], "site_name"), (line["missing"], "site"), (line["team-1"], "sites"),
        (line["domain-2"], "site"), (line["mx-3"], "domain"), (line["running"], "role"),
    }


async def test_rows_the_second_pass_finds_nothing_in_are_checked_once(store: SqlStore) -> None:
    """Invites naming their site by `@key` (of an earlier run): their roles are checked, and
    the second pass reads no row at all."""
    await job_half_done(store)
    await add(store, "c", [invite("late", Action.SITE_INVITE, role="Nope", site="@site-1"),
                           invite("fine", Action.SITE_INVITE, site="@site-1")])
    async with (running_sandbox(SandboxConfig(demo_sites=True), port=0) as fake,
                WixClient(base_url=fake.base_url, api_key="sandbox-key", account_id=ACCOUNT,
                          budget=AdaptiveBudget(parse_rate("500/s")), timeout=5.0) as client):
        full = await check(store, client, lean=False, job_id="c")
        lean = await check(store, client, lean=True, job_id="c")
    assert lean.problems == full.problems
    assert [(problem.line, problem.column) for problem in lean.problems] == [(2, "role")]


async def test_creates_whose_names_no_site_has_are_read_once(store: SqlStore) -> None:
    """The second pass reads the creates only when a site of the account has one of their
    names: here none has, so it reads no create; with a taken name among them, it does, and
    finds it."""
    await add(store, "fresh", [spec("new-1", Action.CREATE_SITE, site_name="Brand New One"),
                               spec("new-2", Action.CREATE_SITE, site_name="Brand New Two")])
    await add(store, "clash", [spec("new-3", Action.CREATE_SITE, site_name="Brand New Three"),
                               spec("clash", Action.CREATE_SITE, site_name=TAKEN_NAME.upper())])
    asked: list[frozenset[Action]] = []

    async def every_row(job_id: str) -> AsyncIterator[Candidate]:
        async for op in store.open_rows(job_id):
            yield Candidate(op.spec, op)

    async def produced(site_ids: Collection[str]) -> set[str]:
        return await store.produced_sites("", site_ids)

    findings = {}
    async with (running_sandbox(SandboxConfig(demo_sites=True), port=0) as fake,
                WixClient(base_url=fake.base_url, api_key="sandbox-key", account_id=ACCOUNT,
                          budget=AdaptiveBudget(parse_rate("500/s")), timeout=5.0) as client):
        roles = await read_roles(client)
        for job_id in ("fresh", "clash"):

            async def of_actions(actions: Collection[Action], job_id: str = job_id
                                 ) -> AsyncIterator[Candidate]:
                asked.append(frozenset(actions))
                async for op in store.open_rows(job_id, actions=actions):
                    yield Candidate(op.spec, op)

            findings[job_id] = await check_rows(
                lambda job_id=job_id: every_row(job_id), client, roles, account_id=ACCOUNT,
                if_exists="fail", produced=produced, retry=ReadRetry(attempts=2, base=0.01),
                of_actions=of_actions)

    assert [Action.CREATE_SITE in actions for actions in asked] == [False, True]
    assert findings["fresh"].problems == []
    assert [(problem.line, problem.column) for problem in findings["clash"].problems] == [
        (3, "site_name")]
