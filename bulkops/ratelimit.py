"""The request budget: one token per HTTP request, adapted to what the server allows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class BudgetSnapshot:
    """What the progress display shows: the configured budget against the rate in force."""

    limit_per_second: float  # the configured --rate
    current_per_second: float  # the rate in force now (lowered after 429s)
    achieved_per_second: float  # requests actually sent over the recent window
    requests: int  # every request acquired so far
    throttled: int  # 429 answers seen so far
    paused_until: float | None  # a Retry-After pause in force (clock time), if any


class RequestBudget(Protocol):
    async def acquire(self) -> None:
        """Wait until one more request may leave (rate, and any Retry-After pause)."""
        ...

    def on_response(self, status: int | None, retry_after: float | None) -> None:
        """Feed back an answer: `status` None when no answer came (connection error, timeout).
        A 429 lowers the rate; `retry_after` (seconds) pauses every caller of `acquire`."""
        ...

    def snapshot(self) -> BudgetSnapshot: ...
