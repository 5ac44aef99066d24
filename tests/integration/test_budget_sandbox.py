"""The request budget against the sandbox's sliding-window rate limit, over loopback HTTP.

The engine runs a real job (SQLite checkpoint file, Wix client, sandbox on 127.0.0.1) with a
small server window — 20 requests per 2 s — so that several windows pass in a few seconds.
Bounds are loose enough for a loaded machine and tight enough that a budget which ignored
429s, or a request that bypassed the budget, would break them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from windows import busiest_second

from bulkops.engine import Engine, EngineConfig, RunOutcome, RunResult
from bulkops.model import Action, JobSource, OpSpec, OpState
from bulkops.ratelimit import AdaptiveBudget, BudgetSnapshot
from bulkops.sandbox import Endpoint, SandboxConfig, running_sandbox
from bulkops.settings import Rate
from bulkops.store import open_store
from bulkops.wix import WixClient

ACCOUNT = SandboxConfig().account_id
SUB = SandboxConfig().sub_accounts[0]
LIMIT, WINDOW = 20, 2.0  # the server's limit: 10 requests a second


@dataclass(frozen=True)
class Run:
    result: RunResult
    budget: BudgetSnapshot
    requests: dict[str, Any]  # the sandbox's request statistics

    @property
    def total(self) -> int:
        return int(self.requests["total"])

    @property
    def throttled(self) -> int:
        return int(self.requests["by_status"].get("429", 0))

    @property
    def admitted_per_second(self) -> float:
        span = float(self.requests["last_request_at"]) - float(self.requests["first_request_at"])
        return (self.total - self.throttled - 1) / span


def onboarding(clients: int) -> Iterator[OpSpec]:
    """Per client: create a site, invite its owner to it, then move it to a sub-account."""
    for i in range(clients):
        line = 2 + 3 * i
        yield OpSpec(line=line, key=f"c{i}", action=Action.CREATE_SITE, site_name=f"Client {i}")
        yield OpSpec(line=line + 1, key=f"c{i}-invite", action=Action.SITE_INVITE,
                     site=f"@c{i}", email=f"owner{i}@example.com", roles=("Website Manager",))
        yield OpSpec(line=line + 2, key=f"c{i}-move", action=Action.TRANSFER_SITE,
                     site=f"@c{i}", to_account=SUB, depends_on=(f"c{i}-invite",))


async def run_job(tmp_path: Path, config: SandboxConfig, rate: Rate, clients: int) -> Run:
    specs = list(onboarding(clients))
    store = await open_store(str(tmp_path / "budget.db"))
    try:
        await store.add_job(JobSource(job_id="job", path="job.csv", format="csv",
                                      total=len(specs)), iter(specs))
        async with running_sandbox(config, port=0) as fake:
            budget = AdaptiveBudget(rate)  # not told the server's window
            async with WixClient(base_url=fake.base_url, api_key=config.api_key,
                                 account_id=ACCOUNT, budget=budget, timeout=2.0) as client:
                engine = Engine(store=store, client=client, budget=budget,
                                config=EngineConfig(account_id=ACCOUNT, concurrency=8,
                                                    settle=0.3, backoff_base=0.2))
                result = await engine.run("job", anyio.Event())
            async with aiohttp.ClientSession() as http, \
                    http.get(f"{fake.base_url}/_sandbox/state") as resp:
                state: dict[str, Any] = await resp.json()
        return Run(result, budget.snapshot(), state["requests"])
    finally:
        await store.close()


def limited(**faults: Any) -> SandboxConfig:
    return dataclasses.replace(SandboxConfig(), rate_limit=(LIMIT, WINDOW), seed=3, **faults)


def assert_all_succeeded(run: Run, clients: int) -> None:
    assert run.result.outcome is RunOutcome.FINISHED
    assert run.result.counts.get(OpState.SUCCEEDED) == 3 * clients, run.result.counts


async def test_budget_at_the_servers_limit_fills_it_with_almost_no_429s(tmp_path: Path) -> None:
    """Configured at exactly what the server allows: no more than two 429s, and the admitted
    rate stays near the limit (a budget that over-slowed would take far longer)."""
    run = await run_job(tmp_path, limited(), Rate(LIMIT, WINDOW), clients=15)
    assert_all_succeeded(run, 15)
    assert run.throttled <= 2, run.requests["by_status"]
    assert run.admitted_per_second >= 0.7 * LIMIT / WINDOW


@pytest.mark.parametrize("retry_after", [False, True], ids=["plain-429", "retry-after"])
async def test_budget_set_twice_too_high_adapts_to_the_server(
    tmp_path: Path, retry_after: bool
) -> None:
    """Configured at twice the limit, with or without Retry-After: the budget learns the real
    limit, so refused requests stay a small share (sending at 2x unadapted would get about
    half refused) while the admitted rate stays a good part of the limit."""
    run = await run_job(tmp_path, limited(retry_after=retry_after), Rate(2 * LIMIT, WINDOW),
                        clients=15)
    assert_all_succeeded(run, 15)
    assert run.throttled / run.total < 0.25, run.requests["by_status"]
    assert run.admitted_per_second >= 0.5 * LIMIT / WINDOW


async def test_budget_ten_times_too_high_finds_the_limit_without_being_told_the_window(
    tmp_path: Path,
) -> None:
    """Configured at ten times the limit, over a window the budget is not told: after the
    first full window it sends at about the server's limit, so refused requests stay a small
    share (unadapted, nine in ten would be refused) and the admitted rate a good part of the
    limit (a short job: most of its 429s are the first window's); and it never sends faster
    than the configured rate in any second."""
    run = await run_job(tmp_path, limited(), Rate(10 * LIMIT, WINDOW), clients=30)
    assert_all_succeeded(run, 30)
    assert run.throttled / run.total < 0.15, run.requests["by_status"]
    assert run.admitted_per_second >= 0.5 * LIMIT / WINDOW
    assert busiest_second(run.requests["request_times"]) <= 1.1 * 10 * LIMIT / WINDOW


async def test_every_request_including_look_ups_takes_a_budget_token(tmp_path: Path) -> None:
    """Lost answers make the engine look created and moved sites up (Query Sites), 5xx make it
    retry, 429s come from the limit: the budget counts exactly the requests the server saw."""
    config = limited(drop_after_rate=0.2, error_rate=0.1, listing_lag=0.1,
                     fault_methods=frozenset({Endpoint.CREATE_SITE, Endpoint.TRANSFER_SITE,
                                              Endpoint.SITE_INVITE_BULK}))
    run = await run_job(tmp_path, config, Rate(2 * LIMIT, WINDOW), clients=8)
    assert_all_succeeded(run, 8)
    by_endpoint = run.requests["by_endpoint"]
    assert by_endpoint.get(Endpoint.QUERY_SITES.value, 0) > 1  # look-ups beyond the pre-flight
    assert run.throttled > 0  # the limit was reached, so 429 answers were counted too
    assert run.budget.requests == run.total
    assert run.budget.throttled == run.throttled
