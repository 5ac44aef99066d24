"""The run's own record of when its requests left, for the report's rate-over-time chart."""

from __future__ import annotations

import time
from collections.abc import Callable

from bulkops.ratelimit import BudgetLayer, RequestBudget

BUCKET_SECONDS = 10.0


class RequestTimeline(BudgetLayer):
    """A `RequestBudget` that counts the requests leaving in each `bucket_seconds` span from
    `started_at` (unix seconds), then lets `inner` decide when they may leave."""

    def __init__(
        self,
        inner: RequestBudget,
        *,
        bucket_seconds: float = BUCKET_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(inner)
        self._clock = clock
        self.bucket_seconds = bucket_seconds
        self.started_at = clock()
        self._counts: list[int] = []

    @property
    def counts(self) -> tuple[int, ...]:
        """Requests per bucket, from the first bucket to the last one with a request."""
        return tuple(self._counts)

    async def acquire(self) -> None:
        await self._inner.acquire()
        bucket = int(max(0.0, self._clock() - self.started_at) // self.bucket_seconds)
        if bucket >= len(self._counts):
            self._counts.extend([0] * (bucket + 1 - len(self._counts)))
        self._counts[bucket] += 1
