"""A counting `RequestBudget` for client tests: it only records what the client asks of it."""

from __future__ import annotations

from bulkops.ratelimit import BudgetSnapshot


class CountingBudget:
    """The budget protocol, counting: one acquire and one on_response per request."""

    def __init__(self) -> None:
        self.acquired = 0
        self.answers: list[tuple[int | None, float | None]] = []

    async def acquire(self) -> None:
        self.acquired += 1

    def on_response(self, status: int | None, retry_after: float | None) -> None:
        self.answers.append((status, retry_after))

    def close(self) -> None:
        """Nothing to stop: these tests never ask for a stop."""

    def snapshot(self) -> BudgetSnapshot:
        return BudgetSnapshot(1.0, 1.0, 0.0, self.acquired, 0, None)
