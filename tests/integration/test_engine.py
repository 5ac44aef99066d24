"""The engine against a real SQLite checkpoint and the sandbox over loopback HTTP."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import aiohttp
import anyio
import pytest

from bulkops.engine import Engine, EngineConfig, RunOutcome, RunResult
from bulkops.model import FINAL_STATES, Action, JobSource, OpSpec, OpState
from bulkops.ratelimit import AdaptiveBudget
from bulkops.sandbox import Endpoint, SandboxConfig, running_sandbox
from bulkops.settings import parse_rate
from bulkops.store.base import Store
from bulkops.wix import WixClient

ACCOUNT = SandboxConfig().account_id
SUB = SandboxConfig().sub_accounts[0]
TEMPLATE = "3f0c9a2e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """The engine's tests run on a SQLite file: the store's own tests cover PostgreSQL."""
    return sqlite_store


def onboarding_specs(n: int) -> list[OpSpec]:
    """n clients: create a site, invite its owner to it, then move it to a sub-account; plus
    the agency's own site with a team member limited to it (3n + 2 rows)."""
    specs: list[OpSpec] = []
    line = 2
    for i in range(n):
        key = f"c{i}"
        specs.append(OpSpec(line=line, key=key, action=Action.CREATE_SITE,
                            site_name=f"Client {i}", template_id=TEMPLATE))
        specs.append(OpSpec(line=line + 1, key=f"{key}-invite", action=Action.SITE_INVITE,
                            site=f"@{key}", email=f"owner{i}@example.com",
                            roles=("Website Manager",)))
        specs.append(OpSpec(line=line + 2, key=f"{key}-move", action=Action.TRANSFER_SITE,
                            site=f"@{key}", to_account=SUB, depends_on=(f"{key}-invite",)))
        line += 3
    specs.append(OpSpec(line=line, key="hq", action=Action.CREATE_SITE, site_name="Agency HQ"))
    specs.append(OpSpec(line=line + 1, key="team", action=Action.ACCOUNT_INVITE,
                        email="ops@example.com", roles=("Website Manager",), sites=("@hq",)))
    return specs


async def add(store: Store, specs: Iterable[OpSpec], job_id: str = "job1") -> str:
    specs = list(specs)
    await store.add_job(JobSource(job_id=job_id, path="test.csv", format="csv",
                                  total=len(specs)), iter(specs))
    return job_id


async def run_engine(store: Store, base_url: str, job_id: str, *, api_key: str = "sandbox-key",
                     request_timeout: float = 2.0, settle: float = 0.2, max_attempts: int = 10,
                     stop: anyio.Event | None = None) -> RunResult:
    budget = AdaptiveBudget(parse_rate("500/s"))
    async with WixClient(base_url=base_url, api_key=api_key, account_id=ACCOUNT,
                         budget=budget, timeout=request_timeout) as client:
        engine = Engine(store=store, client=client, budget=budget,
                        config=EngineConfig(account_id=ACCOUNT, concurrency=8,
                                            max_attempts=max_attempts, settle=settle,
                                            backoff_base=0.02))
        return await engine.run(job_id, stop or anyio.Event())


async def sandbox_state(base_url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/_sandbox/state") as resp:
        state: dict[str, Any] = await resp.json()
        return state


async def by_key(store: Store, job_id: str) -> dict[str, Any]:
    return {op.spec.key: op async for op in store.iter_ops(job_id)}


async def test_clean_run_does_every_row_once_and_uses_the_created_site_ids(store: Store) -> None:
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        job = await add(store, onboarding_specs(5))
        result = await run_engine(store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert result.outcome is RunOutcome.FINISHED
    assert result.counts[OpState.SUCCEEDED] == 17
    ops = await by_key(store, job)
    sites = {s["id"]: s for s in state["sites"]}
    for i in range(5):
        created = ops[f"c{i}"]
        assert sites[created.site_id]["displayName"] == f"Client {i}"
        assert sites[created.site_id]["ownerAccountId"] == SUB  # moved after the invite
        assert ops[f"c{i}-move"].site_id == created.site_id
    assert state["duplicate_sites"] == 0
    assert state["duplicate_invite_emails"] == 0


@pytest.mark.parametrize(
    "faults",
    [
        {"drop_after_rate": 0.3},
        {"drop_before_rate": 0.3},
        {"error_rate": 0.3},
        {"slow_rate": 0.3, "slow_delay": 1.0},
        {"throttle_rate": 0.3},
        {"drop_after_rate": 0.15, "error_rate": 0.15, "slow_rate": 0.1, "slow_delay": 1.0,
         "listing_lag": 0.1},
    ],
    ids=["drop-after", "drop-before", "5xx", "slow", "429", "mixed"],
)
async def test_faults_never_duplicate_a_site_or_transfer_and_lose_no_row(
    store: Store, faults: dict[str, Any]
) -> None:
    config = dataclasses.replace(SandboxConfig(), seed=7, **faults)
    async with running_sandbox(config, port=0) as fake:
        job = await add(store, onboarding_specs(8))
        result = await run_engine(store, fake.base_url, job, request_timeout=0.5, settle=0.3)
        state = await sandbox_state(fake.base_url)
    open_ops = [op async for op in store.iter_ops(job) if op.state not in FINAL_STATES]
    assert open_ops == []
    assert result.outcome is RunOutcome.FINISHED
    assert result.counts[OpState.SUCCEEDED] == 26, result.counts
    assert state["duplicate_sites"] == 0
    names = sorted(s["displayName"] for s in state["sites"])
    assert names == sorted([*(f"Client {i}" for i in range(8)), "Agency HQ"])
    moved = [t["siteId"] for t in state["transfers"]]
    assert len(moved) == len(set(moved)) == 8


async def test_failed_create_blocks_its_dependents_and_they_are_never_sent(store: Store) -> None:
    specs = [
        OpSpec(line=2, key="bad", action=Action.CREATE_SITE, site_name="Bad", template_id="x"),
        OpSpec(line=3, key="inv", action=Action.SITE_INVITE, site="@bad",
               email="a@example.com", roles=("Website Manager",)),
        OpSpec(line=4, key="after", action=Action.ACCOUNT_INVITE, email="b@example.com",
               roles=("Website Manager",), depends_on=("inv",)),
    ]
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        job = await add(store, specs)
        result = await run_engine(store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    ops = await by_key(store, job)
    assert ops["bad"].state is OpState.FAILED and ops["bad"].error.status == 400
    assert ops["inv"].state is OpState.BLOCKED and ops["after"].state is OpState.BLOCKED
    assert ops["inv"].attempts == 0
    assert state["invites"] == []
    assert result.outcome is RunOutcome.FINISHED


async def test_transfer_error_code_is_final_and_reported(store: Store) -> None:
    config = dataclasses.replace(SandboxConfig(), forbidden_transfer_targets=frozenset({SUB}))
    specs = [
        OpSpec(line=2, key="s", action=Action.CREATE_SITE, site_name="S"),
        OpSpec(line=3, key="m", action=Action.TRANSFER_SITE, site="@s", to_account=SUB),
    ]
    async with running_sandbox(config, port=0) as fake:
        job = await add(store, specs)
        await run_engine(store, fake.base_url, job)
    move = (await by_key(store, job))["m"]
    assert move.state is OpState.FAILED
    assert move.attempts == 1
    assert move.error.code == "SITE_TRANSFER_NOT_ALLOWED" and move.error.status == 403
    assert move.error.request_id


async def test_unknown_create_found_in_listing_is_reconciled_not_resent(store: Store) -> None:
    """A create that was applied but never answered is found by display name, not re-sent."""
    config = dataclasses.replace(
        SandboxConfig(), drop_after_rate=1.0, fault_methods=frozenset({Endpoint.CREATE_SITE})
    )
    specs = [OpSpec(line=2, key="s", action=Action.CREATE_SITE, site_name="Only Once")]
    async with running_sandbox(config, port=0) as fake:
        job = await add(store, specs)
        # Every mutating answer is lost, but the effect is applied: one send, then a look-up.
        await run_engine(store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    op = (await by_key(store, job))["s"]
    assert op.state is OpState.SUCCEEDED and op.attempts == 1
    assert op.note and "reconciled" in op.note
    assert [s["displayName"] for s in state["sites"]] == ["Only Once"]


async def test_stop_event_leaves_unstarted_rows_pending_and_resume_finishes(store: Store) -> None:
    async with running_sandbox(dataclasses.replace(SandboxConfig(), latency=0.05), port=0) as fake:
        job = await add(store, onboarding_specs(6))
        stop = anyio.Event()
        stop.set()  # asked to stop before the first claim
        first = await run_engine(store, fake.base_url, job, stop=stop)
        assert first.outcome is RunOutcome.INTERRUPTED
        assert first.counts[OpState.PENDING] == 20
        second = await run_engine(store, fake.base_url, job)
    assert second.outcome is RunOutcome.FINISHED
    assert second.counts[OpState.SUCCEEDED] == 20


async def test_refused_key_leaves_every_row_pending(store: Store) -> None:
    from bulkops.errors import ConfigError

    async with running_sandbox(SandboxConfig(), port=0) as fake:
        job = await add(store, onboarding_specs(2))
        with pytest.raises(ConfigError, match="refused"):
            await run_engine(store, fake.base_url, job, api_key="wrong-key")
        state = await sandbox_state(fake.base_url)
    counts = await store.counts(job)
    assert counts[OpState.PENDING] == 8
    assert state["sites"] == []


async def test_error_storm_pauses_the_job_and_resume_retries_its_rows(store: Store) -> None:
    """Every transfer refused the same way: the breaker stops the job (not 40 failed rows), and
    once the cause is fixed the same job finishes."""
    from bulkops.breaker import BreakerSettings, FailureBreaker

    forbidden = dataclasses.replace(SandboxConfig(), forbidden_transfer_targets=frozenset({SUB}))
    specs = [OpSpec(line=2 + i, key=f"m{i}", action=Action.TRANSFER_SITE,
                    site=f"@s{i}", to_account=SUB) for i in range(30)]
    specs += [OpSpec(line=40 + i, key=f"s{i}", action=Action.CREATE_SITE, site_name=f"S{i}")
              for i in range(30)]
    async with running_sandbox(forbidden, port=0) as fake:
        job = await add(store, specs)
        budget = AdaptiveBudget(parse_rate("500/s"))
        async with WixClient(base_url=fake.base_url, api_key="sandbox-key", account_id=ACCOUNT,
                             budget=budget, timeout=2) as client:
            engine = Engine(store=store, client=client, budget=budget,
                            config=EngineConfig(account_id=ACCOUNT, concurrency=4,
                                                backoff_base=0.02),
                            breaker=FailureBreaker(BreakerSettings(window=10, ratio=0.8)))
            paused = await engine.run(job, anyio.Event())
        assert paused.outcome is RunOutcome.STOPPED
        assert paused.reason and "SITE_TRANSFER_NOT_ALLOWED" in paused.reason
        assert paused.counts[OpState.FAILED] == 0  # the storm's rows wait for the fix
        transfers_tried = (await sandbox_state(fake.base_url))["requests"]["by_endpoint"]
        assert sum(v for k, v in transfers_tried.items() if "transfer" in k) < 20
        fake.sandbox.reconfigure(SandboxConfig())
        resumed = await run_engine(store, fake.base_url, job)
        state = await sandbox_state(fake.base_url)
    assert resumed.outcome is RunOutcome.FINISHED
    assert resumed.counts[OpState.SUCCEEDED] == 60
    assert len(state["transfers"]) == 30


async def test_stop_lets_no_new_request_leave_and_leaves_waiting_rows_untouched(
    store: Store,
) -> None:
    """Rows claimed but still waiting for the budget when a stop comes are not sent: they go
    back as they were (pending, attempt not counted), and no request leaves after the stop."""
    async with running_sandbox(SandboxConfig(), port=0) as fake:
        job = await add(store, onboarding_specs(6))
        stop = anyio.Event()
        budget = AdaptiveBudget(parse_rate("4/s"))
        async with WixClient(base_url=fake.base_url, api_key="sandbox-key", account_id=ACCOUNT,
                             budget=budget, timeout=2) as client:
            engine = Engine(store=store, client=client, budget=budget,
                            config=EngineConfig(account_id=ACCOUNT, concurrency=8))
            async with anyio.create_task_group() as tg:
                tg.start_soon(engine.run, job, stop)
                for _ in range(200):  # bounded: 10 s at most
                    if fake.sandbox.snapshot()["requests"]["total"] >= 4:
                        break
                    await anyio.sleep(0.05)
                stop.set()
                at_stop = fake.sandbox.snapshot()["requests"]["total"]
        after = fake.sandbox.snapshot()["requests"]["total"]
    assert after - at_stop <= 1  # at most one request that had its token just before the stop
    ops = [op async for op in store.iter_ops(job)]
    assert not [op for op in ops if op.state in (OpState.RUNNING, OpState.UNKNOWN)]
    waiting = [op for op in ops if op.state is OpState.PENDING]
    assert len(waiting) >= 14
    assert all(op.attempts == 0 for op in waiting)
