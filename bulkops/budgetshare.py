"""One Wix account's request budget, shared by the jobs a worker runs at once.

Wix's rate limit belongs to the account's key, not to a job (wix-api.md, "Common rules": 200
requests a minute per API key): two jobs of one account that each paced themselves at `--rate`
would together send twice that. So a worker keeps one budget per account, and every job of that
account draws from it through a `BudgetShare`. The budget's turn is first come,
first served, so jobs running side by side get the account's requests in proportion to the
requests they have waiting: a 50-row job is not queued behind a 10,000-row one.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from bulkops.errors import SendStopped
from bulkops.ratelimit import BudgetSnapshot, RequestBudget


class BudgetShare:
    """A `RequestBudget` for one job: requests wait in the account's budget, but stopping the
    job (`close`) stops only its own requests, and `snapshot` counts only its own."""

    def __init__(self, account: RequestBudget) -> None:
        self._account = account
        self._closed = False
        self._waiting: set[anyio.CancelScope] = set()
        self._requests = 0
        self._throttled = 0

    async def acquire(self) -> None:
        """Wait for the account's budget. Raises SendStopped once this share is closed (a
        request still waiting then does not leave), or once the account's budget is."""
        if self._closed:
            raise SendStopped("stopping: no new request leaves")
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                await self._account.acquire()
            finally:
                self._waiting.discard(scope)
        if scope.cancelled_caught:
            raise SendStopped("stopping: no new request leaves")
        self._requests += 1

    def close(self) -> None:
        self._closed = True
        for scope in self._waiting:
            scope.cancel()

    def on_response(self, status: int | None, retry_after: float | None) -> None:
        # A 429 or a Retry-After that one job sees slows every job of the account.
        if status == 429:
            self._throttled += 1
        self._account.on_response(status, retry_after)

    def snapshot(self) -> BudgetSnapshot:
        account = self._account.snapshot()
        return BudgetSnapshot(
            limit_per_second=account.limit_per_second,
            current_per_second=account.current_per_second,
            achieved_per_second=account.achieved_per_second,
            requests=self._requests,
            throttled=self._throttled,
            paused_until=account.paused_until,
        )


class AccountBudgets:
    """The process's budgets, one per account (its scope: account and API), made on first use
    by `make(scope)`; every job of an account gets a share of the same one."""

    def __init__(self, make: Callable[[str], RequestBudget]) -> None:
        self._make = make
        self._budgets: dict[str, RequestBudget] = {}

    def share(self, scope: str) -> BudgetShare:
        """A new share of the budget of the account `scope`."""
        budget = self._budgets.get(scope)
        if budget is None:
            budget = self._budgets[scope] = self._make(scope)
        return BudgetShare(budget)
