"""A worker's turn on a job other workers share: until when it holds, and how to renew it.

Other workers take a worker's rows back once its turn has lapsed in the database. So a worker
must not send a row once its own reckoning of the turn has lapsed, until the database has
confirmed the turn is still its own (nobody took its rows back): a worker that stalled — a
frozen process, a paused machine — would otherwise send rows another worker now holds, and
write its stale copies of them over the other's.

The same stall may have kept the others from renewing: a worker frozen while it held SQLite's
write lock held every other worker's renewal up with it. So a worker whose own turn lapsed
judges nobody dead until the others have had one whole turn to renew (`judges_others`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from bulkops.errors import SendStopped
from bulkops.ratelimit import BudgetLayer, RequestBudget

# Renews the turn in the database now: the new end of the turn (unix seconds), or None when
# the turn was lost (another worker took this one's rows back).
Renewal = Callable[[], Awaitable[float | None]]


class WorkerTurn:
    """The turn of one worker on one shared job, on unix time."""

    def __init__(self, renew: Renewal, clock: Callable[[], float] = time.time) -> None:
        self._renew = renew
        self._clock = clock
        self._until = -math.inf  # not confirmed yet: the first send confirms it
        self._back_at = -math.inf  # when the turn last came back from a lapse (unix seconds)
        self._renewing = asyncio.Lock()
        self.lost = False

    async def renew(self) -> bool:
        """Renew now (the heartbeat). False once the turn is lost; it stays lost."""
        async with self._renewing:
            return await self._renew_now()

    async def holds(self) -> bool:
        """Whether a row may be sent now: the turn has not lapsed by this worker's reckoning,
        or the database confirms it is still this worker's. False once it is lost."""
        if self.lost:
            return False
        if self._clock() < self._until:
            return True
        async with self._renewing:
            if self._clock() < self._until:  # renewed while this one waited
                return not self.lost
            return await self._renew_now()

    def judges_others(self, lease_seconds: float) -> bool:
        """Whether other workers' lapsed turns may be taken as their death now: not within
        `lease_seconds` (one turn) of this worker's own turn coming back from a lapse, since
        whatever stalled this one (a frozen process, a paused machine, a write lock everyone
        waited on) may have stalled their renewals too."""
        return self._clock() >= self._back_at + lease_seconds

    async def _renew_now(self) -> bool:
        if self.lost:
            return False
        until = await self._renew()
        if until is None:
            self.lost = True
            return False
        now = self._clock()
        if now >= self._until > -math.inf:  # lapsed before this renewal came back
            self._back_at = now
        self._until = until
        return True


class TurnGate(BudgetLayer):
    """A `RequestBudget`: `inner`'s, then the check that the worker's turn still holds, as
    close to the request leaving as the budget gets. Raises SendStopped once it is lost: the
    request does not leave."""

    def __init__(self, inner: RequestBudget, turn: WorkerTurn) -> None:
        super().__init__(inner)
        self._turn = turn

    async def acquire(self) -> None:
        await self._inner.acquire()
        if not await self._turn.holds():
            raise SendStopped("this worker's turn lapsed and its rows went to another worker")
