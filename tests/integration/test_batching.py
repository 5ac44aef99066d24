"""Invites share calls: the engine against a real SQLite checkpoint and the sandbox over HTTP.

Account invites go in calls of up to 50 invitees, site invites in one call per (site, role set);
partial success inside a 200 maps back to each row; a call refused as a whole for its content is
split so that only the row at fault fails; unknown creates are settled in one listing pass.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import anyio
import pytest
from test_engine import ACCOUNT, SUB, add, by_key, run_engine, sandbox_state

from bulkops.engine import Engine, EngineConfig, RunOutcome
from bulkops.model import Action, OpSpec, OpState
from bulkops.ratelimit import AdaptiveBudget
from bulkops.roles import RoleBook
from bulkops.sandbox import Endpoint, SandboxConfig, running_sandbox
from bulkops.settings import parse_rate
from bulkops.store.base import Store
from bulkops.wix import WixClient
from bulkops.wixwire import Role

ACCOUNT_INVITES = Endpoint.ACCOUNT_INVITE.value
SITE_INVITES = Endpoint.SITE_INVITE_BULK.value
CREATE = Endpoint.CREATE_SITE.value
QUERY = Endpoint.QUERY_SITES.value
TRANSFER = Endpoint.TRANSFER_SITE.value
ROLES = Endpoint.ROLES.value
BOUNCE = SandboxConfig().reject_domains[0]


def calls(state: dict[str, Any]) -> Counter[str]:
    """Requests per Wix endpoint, as the sandbox counted them."""
    return Counter(state["requests"]["by_endpoint"])


def team(n: int, *, line: int = 2, role: str = "Website Manager") -> list[OpSpec]:
    return [OpSpec(line=line + i, key=f"t{i}", action=Action.ACCOUNT_INVITE,
                   email=f"member{i}@example.com", roles=(role,)) for i in range(n)]


async def test_account_invites_go_fifty_to_a_call(sqlite_store: Store) -> None:
    """200 team members: 4 calls, each row with its own invite id."""
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        job = await add(sqlite_store, team(200))
        result = await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED
    assert calls(state)[ACCOUNT_INVITES] == 4
    ops = await by_key(sqlite_store, job)
    invites = {i["email"]: i["id"] for i in state["invites"]}
    for i in range(200):
        op = ops[f"t{i}"]
        assert op.state is OpState.SUCCEEDED and op.attempts == 1
        assert op.invite_id == invites[f"member{i}@example.com"]
    assert state["duplicate_invite_emails"] == 0


async def test_site_invites_share_one_call_per_site_and_role_set(sqlite_store: Store) -> None:
    """Three sites, each with four collaborators on one role set and one on another: six calls
    for fifteen rows, after the three creates."""
    specs: list[OpSpec] = []
    for s in range(3):
        specs.append(OpSpec(line=len(specs) + 2, key=f"s{s}", action=Action.CREATE_SITE,
                            site_name=f"Shop {s}"))
        for p in range(5):
            roles = ("Website Manager",) if p < 4 else ("Website Manager", "Blog Writer")
            specs.append(OpSpec(line=len(specs) + 2, key=f"s{s}-p{p}", action=Action.SITE_INVITE,
                                site=f"@s{s}", email=f"p{p}@shop{s}.example.com", roles=roles))
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        job = await add(sqlite_store, specs)
        result = await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED, result
    assert result.counts[OpState.SUCCEEDED] == 18
    assert calls(state)[SITE_INVITES] == 6
    assert calls(state)[CREATE] == 3
    ops = await by_key(sqlite_store, job)
    for invite in state["invites"]:
        shop, person = invite["email"].split("@")[1].split(".")[0], invite["email"].split("@")[0]
        op = ops[f"s{shop[-1]}-{person}"]
        assert invite["siteId"] == ops[f"s{shop[-1]}"].site_id
        assert op.invite_id == invite["id"]


async def test_a_refused_invitee_fails_alone_with_wix_message(sqlite_store: Store) -> None:
    """Partial success: the invitee Wix lists as failed is `failed` with Wix's message and a
    hint; the others in the same call succeeded with their invite ids."""
    specs = team(10)
    specs[3] = dataclasses.replace(specs[3], email=f"nobody@{BOUNCE}")
    site_rows = [
        OpSpec(line=20, key="shop", action=Action.CREATE_SITE, site_name="Shop"),
        *(OpSpec(line=21 + i, key=f"c{i}", action=Action.SITE_INVITE, site="@shop",
                 email=f"c{i}@{BOUNCE if i == 1 else 'example.com'}", roles=("Website Manager",))
          for i in range(3)),
    ]
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        job = await add(sqlite_store, [*specs, *site_rows])
        result = await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED
    assert calls(state)[ACCOUNT_INVITES] == 1 and calls(state)[SITE_INVITES] == 1
    ops = await by_key(sqlite_store, job)
    for key in ("t3", "c1"):
        failed = ops[key]
        assert failed.state is OpState.FAILED and failed.error is not None
        assert failed.error.code == "INVITE_FAILED"
        assert failed.error.message and failed.error.hint and "e-mail" in failed.error.hint
        assert failed.invite_id is None
        # The request id of the 200 answer that refused it: what Wix support asks for.
        assert failed.error.request_id
    succeeded = [op for key, op in ops.items() if key not in ("t3", "c1")]
    assert all(op.state is OpState.SUCCEEDED for op in succeeded)
    assert len({op.invite_id for op in succeeded if op.spec.action is not Action.CREATE_SITE}) == 11


async def test_a_call_refused_for_one_row_is_split_and_only_that_row_fails(
    sqlite_store: Store,
) -> None:
    """A role Wix stopped knowing since the roles were read (deleted in the meantime) makes
    Wix refuse the whole call with a 400: the call is split, each row goes alone, and only the
    row with that role fails; none is sent twice."""
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        async with WixClient(base_url=fake.base_url, api_key="sandbox-key", account_id=ACCOUNT,
                             budget=AdaptiveBudget(parse_rate("500/s")), timeout=2.0) as wix:
            roles = [*await wix.list_roles(), Role("7000000000000000001", "Gone", None)]
        specs = team(6)
        specs[2] = dataclasses.replace(specs[2], roles=("Gone",))
        job = await add(sqlite_store, specs)
        budget = AdaptiveBudget(parse_rate("500/s"))
        async with WixClient(base_url=fake.base_url, api_key="sandbox-key", account_id=ACCOUNT,
                             budget=budget, timeout=2.0) as client:
            engine = Engine(store=sqlite_store, client=client, budget=budget,
                            roles=RoleBook(roles),
                            config=EngineConfig(account_id=ACCOUNT, backoff_base=0.02))
            result = await engine.run(job, anyio.Event())
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED
    ops = await by_key(sqlite_store, job)
    gone = ops["t2"]
    assert gone.state is OpState.FAILED and gone.error is not None
    assert gone.error.status == 400 and "unknown policy id" in gone.error.message
    assert [k for k, op in ops.items() if op.state is OpState.SUCCEEDED] == [
        "t0", "t1", "t3", "t4", "t5"]
    assert calls(state)[ACCOUNT_INVITES] == 1 + 6  # the refused call, then each row alone
    assert state["duplicate_invite_emails"] == 0
    # The run's own calls: all but the roles read made before it, which also told the engine
    # that Wix answers, so it makes no first read of its own.
    assert calls(state)[QUERY] == 0
    assert engine.stats().calls == calls(state).total() - calls(state)[ROLES] == 7


@pytest.mark.parametrize("faults", [{"drop_after_rate": 0.4}, {"error_rate": 0.4}],
                         ids=["drop-after", "5xx"])
async def test_lost_answers_to_batched_calls_lose_no_invite(
    sqlite_store: Store, faults: dict[str, Any]
) -> None:
    """A batched call whose answer is lost is sent again under the invite policy: every row
    ends succeeded, each re-sent row says so in its note, and the duplicate emails are the
    ones the notes admit to."""
    config = dataclasses.replace(SandboxConfig(), seed=11,
                                 fault_methods=frozenset({Endpoint.ACCOUNT_INVITE}), **faults)
    async with running_sandbox(config, port=0) as fake:
        job = await add(sqlite_store, team(120))
        result = await run_engine(sqlite_store, fake.base_url, job, request_timeout=0.5)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED
    ops = await by_key(sqlite_store, job)
    assert all(op.state is OpState.SUCCEEDED for op in ops.values())
    emails = Counter(i["email"] for i in state["invites"])
    assert set(emails) == {f"member{i}@example.com" for i in range(120)}  # none lost
    resent = {op.spec.email for op in ops.values() if op.note and "sent again" in op.note}
    duplicated = {email for email, n in emails.items() if n > 1}
    assert duplicated <= resent  # every duplicate email is admitted in its row's note
    assert calls(state)[ACCOUNT_INVITES] < 120  # still batched after the faults


async def test_unknown_creates_are_settled_in_one_listing_pass(sqlite_store: Store) -> None:
    """Every create's answer is lost after Wix made the site: the look-ups that settle them
    take far fewer listing calls than one per row, and no site is made twice."""
    config = dataclasses.replace(SandboxConfig(), seed=3, drop_after_rate=1.0,
                                 fault_methods=frozenset({Endpoint.CREATE_SITE}))
    specs = [OpSpec(line=2 + i, key=f"s{i}", action=Action.CREATE_SITE, site_name=f"Lost {i}")
             for i in range(40)]
    async with running_sandbox(config, port=0) as fake:
        job = await add(sqlite_store, specs)
        result = await run_engine(sqlite_store, fake.base_url, job, request_timeout=0.5, settle=0.2)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED, result
    ops = await by_key(sqlite_store, job)
    assert all(op.state is OpState.SUCCEEDED and op.note and "reconciled" in op.note
               for op in ops.values())
    assert state["duplicate_sites"] == 0 and len(state["sites"]) == 40
    # One preflight read, then look-ups that each cover every create unknown at the time.
    assert calls(state)[QUERY] <= 1 + 40 // 4, calls(state)
    assert {op.site_id for op in ops.values()} == {s["id"] for s in state["sites"]}


async def test_transfers_and_creates_stay_one_call_per_row(sqlite_store: Store) -> None:
    specs = [OpSpec(line=2, key="a", action=Action.CREATE_SITE, site_name="A"),
             OpSpec(line=3, key="b", action=Action.CREATE_SITE, site_name="B"),
             OpSpec(line=4, key="ma", action=Action.TRANSFER_SITE, site="@a", to_account=SUB),
             OpSpec(line=5, key="mb", action=Action.TRANSFER_SITE, site="@b", to_account=SUB)]
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        job = await add(sqlite_store, specs)
        await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert calls(state)[CREATE] == 2
    assert calls(state)[TRANSFER] == 2


async def test_a_role_that_cannot_be_resolved_fails_its_row_with_no_attempt(
    sqlite_store: Store,
) -> None:
    """Rows whose role the account does not have (a run without the checks before the first
    write): refused before any request, 0 attempts, a hint; the rest share their call."""
    specs = team(4)
    specs[1] = dataclasses.replace(specs[1], roles=("Website Boss",))
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        job = await add(sqlite_store, specs)
        await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    ops = await by_key(sqlite_store, job)
    boss = ops["t1"]
    assert boss.state is OpState.FAILED and boss.attempts == 0 and boss.error is not None
    assert boss.error.code == "ROLE_NOT_RESOLVED" and boss.error.hint
    assert {k for k, op in ops.items() if op.state is OpState.SUCCEEDED} == {"t0", "t2", "t3"}
    assert calls(state)[ACCOUNT_INVITES] == 1


async def test_account_invites_waiting_for_their_sites_still_share_one_call(
    sqlite_store: Store,
) -> None:
    """Team members limited to sites the file creates become ready one by one as the sites
    are made; the call waits for the ones still to come (one call, not one per site), and a
    member whose site failed is blocked without holding the others back."""
    specs: list[OpSpec] = [OpSpec(line=2, key="bad", action=Action.CREATE_SITE,
                                  site_name="Bad", template_id="not-a-template")]
    for s in range(4):
        specs.append(OpSpec(line=len(specs) + 2, key=f"s{s}", action=Action.CREATE_SITE,
                            site_name=f"Office {s}"))
    specs += [OpSpec(line=len(specs) + 2 + s, key=f"m{s}", action=Action.ACCOUNT_INVITE,
                     email=f"m{s}@example.com", roles=("Website Manager",), sites=(f"@s{s}",))
              for s in range(4)]
    specs += [*team(2, line=len(specs) + 2),
              OpSpec(line=len(specs) + 4, key="stuck", action=Action.ACCOUNT_INVITE,
                     email="stuck@example.com", roles=("Website Manager",), sites=("@bad",))]
    async with running_sandbox(SandboxConfig(latency=0.05), port=0) as fake:
        job = await add(sqlite_store, specs)
        result = await run_engine(sqlite_store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED
    ops = await by_key(sqlite_store, job)
    assert ops["stuck"].state is OpState.BLOCKED
    assert all(ops[k].state is OpState.SUCCEEDED for k in ("m0", "m1", "m2", "m3", "t0", "t1"))
    assert calls(state)[ACCOUNT_INVITES] == 1
