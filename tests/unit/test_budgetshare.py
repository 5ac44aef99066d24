"""Jobs of one account drawing on its one budget: a share stops only its own requests."""

from __future__ import annotations

import anyio
import pytest

from bulkops.budgetshare import AccountBudgets, BudgetShare
from bulkops.errors import SendStopped
from bulkops.ratelimit import AdaptiveBudget
from bulkops.settings import parse_rate


async def test_closing_a_share_stops_its_waiting_request_and_not_the_other_jobs() -> None:
    account = AdaptiveBudget(parse_rate("1000/s"))
    first, second = BudgetShare(account), BudgetShare(account)
    await first.acquire()
    account.on_response(429, 30.0)  # a Retry-After pause holds every job of the account
    outcomes: dict[str, str] = {}

    async def wait(name: str, share: BudgetShare) -> None:
        try:
            await share.acquire()
            outcomes[name] = "sent"
        except SendStopped:
            outcomes[name] = "stopped"

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait, "first", first)
        tg.start_soon(wait, "second", second)
        await anyio.sleep(0.05)
        first.close()
        await anyio.sleep(0.05)
        assert outcomes == {"first": "stopped"}
        second.close()
    assert outcomes == {"first": "stopped", "second": "stopped"}
    with pytest.raises(SendStopped):
        await first.acquire()


async def test_a_share_counts_its_own_requests_and_429s_and_the_account_sees_all() -> None:
    budgets = AccountBudgets(lambda scope: AdaptiveBudget(parse_rate("1000/s")))
    first = budgets.share("account-1")
    second = budgets.share("account-1")  # another job of the same account
    other = budgets.share("account-2")
    for _ in range(3):
        await first.acquire()
    await second.acquire()
    second.on_response(429, None)
    assert (first.snapshot().requests, first.snapshot().throttled) == (3, 0)
    assert (second.snapshot().requests, second.snapshot().throttled) == (1, 1)
    # The 429 one job saw lowered the rate for both; the other account is untouched.
    assert first.snapshot().current_per_second < 1000
    assert other.snapshot().current_per_second == 1000
