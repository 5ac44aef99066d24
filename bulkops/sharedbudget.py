"""An account's request budget across processes.

Wix's rate limit is the key's (wix-api.md, "Common rules": 200 requests a minute per API key),
and every `run`, `resume` and `worker` process on one database may be sending for the same
account. So beneath each process's own budget (its pacing, its adaptation to 429s, Retry-After
pauses) a request also waits for a *turn* from the account's row in the database: GCRA (the
generic cell rate algorithm), one row per account holding the next free turn. Taken turns are
exclusive, so all processes together never send faster than the rate; turns a process did not
use in time (`LATE_GRACE`) are dropped rather than used late together (a burst).

A process takes several turns at once, so the database is written a few times a second per
account, not per request: twice as many as it used of its last turns (slow start's doubling,
from `FIRST_TURNS`), at most a fifth of a second's worth (`TURNS_SECONDS`). Sized by use, a
process whose requests are held back by their answers (not by the budget) takes few turns and
leaves the rest of the rate to the others. A 429 one process sees is written to the row; the
others, at their next take, slow down as if they had seen it.

Clocks are unix time: processes on several machines need their clocks in step (NTP), as they
do for leases.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import anyio

from bulkops.errors import SendStopped, StoreError
from bulkops.ratelimit import BudgetSnapshot, RequestBudget
from bulkops.store.base import Store

log = logging.getLogger(__name__)

# Most seconds of turns taken from the database at once: small enough that a process stopping
# wastes little of the budget, large enough that the row is written a few times a second.
TURNS_SECONDS = 0.2
FIRST_TURNS = 8  # turns of a process's first take (then twice those it used of the last)
# How late a turn may still be used (seconds; at least one spacing): late turns used together
# add up to this many seconds' worth of the rate to a second, so it stays well under 10%.
LATE_GRACE = 0.05
# A wait shorter than this is not slept (as `ratelimit.TIMER_RESOLUTION`).
TIMER_RESOLUTION = 0.001


class SharedBudget:
    """A `RequestBudget`: `local`'s (this process's pacing and adaptation), then a turn from the
    account `scope`'s budget in `store`, shared with every process on the database."""

    def __init__(
        self,
        local: RequestBudget,
        store: Store,
        scope: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._local = local
        self._store = store
        self._scope = scope
        self._clock = clock
        self._sleep = sleep
        self._next_at = 0.0  # the next turn held (unix seconds)
        self._left = 0  # turns held
        self._spacing = 0.0
        self._taken = 0  # turns of the last take
        self._used = 0  # of them, those used (the rest went stale)
        # asyncio's lock: taken without a turn of the loop when free (anyio's yields one).
        self._taking = asyncio.Lock()
        self._seen_throttled = 0.0  # the latest 429 on the account this process knows of
        self._own_throttled = 0.0  # the latest 429 this process saw itself
        self._echoed = 0  # 429s of other processes passed on to `local`
        self._closed = False
        self._waiting: set[anyio.CancelScope] = set()
        # A 429 another process saw before this one began says nothing about the rate now.
        self._started_at = clock()

    async def acquire(self) -> None:
        """Wait for `local`, then for this request's turn. Raises SendStopped once closed."""
        await self._local.acquire()
        at = await self._turn()
        wait = at - self._clock()
        if wait < TIMER_RESOLUTION:
            return
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                await self._sleep(wait)
            finally:
                self._waiting.discard(scope)
        if scope.cancelled_caught or self._closed:
            raise SendStopped("stopping: no new request leaves")

    async def _turn(self) -> float:
        """The time of the next turn held, taking more from the database when none is left."""
        while True:
            if self._left and self._drop_stale(self._clock()):
                return self._use()
            async with self._taking:
                if not self._left:  # not taken meanwhile by another request of this process
                    await self._take()
                    # A turn just taken is used even if the take was slow: else a database
                    # slower than the grace would have every process take turns for ever.
                    return self._use()

    def _use(self) -> float:
        at = self._next_at
        self._next_at += self._spacing
        self._left -= 1
        self._used += 1
        return at

    def _drop_stale(self, now: float) -> bool:
        """Drop the turns further in the past than the grace (`LATE_GRACE`, or one spacing if
        longer); whether any is left."""
        late = now - max(self._spacing, LATE_GRACE) - self._next_at
        if late > 0:
            stale = min(self._left, math.floor(late / self._spacing) + 1)
            self._next_at += stale * self._spacing
            self._left -= stale
        return self._left > 0

    async def _take(self) -> None:
        rate = self._local.snapshot().current_per_second
        wanted = FIRST_TURNS if not self._taken else 2 * self._used
        count = max(1, min(wanted, math.floor(rate * TURNS_SECONDS)))
        self._taken, self._used = count, 0
        now = self._clock()
        try:
            turns = await self._store.take_turns(self._scope, count=count, rate=rate, now=now,
                                                 throttled_at=self._own_throttled)
        except StoreError as exc:
            # The database is busy for longer than its lock wait: keep to this process's own
            # pace for this batch rather than stop sending (its saves will wait the same way).
            log.warning("budget_turns_unavailable", extra={"error": str(exc)})
            self._next_at, self._left, self._spacing = now, count, 1 / rate
            return
        self._next_at, self._left, self._spacing = turns.first_at, turns.count, turns.spacing
        if turns.throttled_at > max(self._seen_throttled, self._own_throttled,
                                    self._started_at):
            # Another process on the account saw a 429 since: slow down as if this one had.
            log.info("budget_throttled_elsewhere", extra={"at": round(turns.throttled_at, 3)})
            self._local.on_response(429, None)
            self._echoed += 1
        self._seen_throttled = max(self._seen_throttled, turns.throttled_at)

    def close(self) -> None:
        self._closed = True
        self._local.close()
        for scope in self._waiting:
            scope.cancel()

    def on_response(self, status: int | None, retry_after: float | None) -> None:
        if status == 429:
            self._own_throttled = self._clock()
        self._local.on_response(status, retry_after)

    def snapshot(self) -> BudgetSnapshot:
        """`local`'s, less the 429s it was told of that another process saw: this process's
        run counts only the answers it got."""
        local = self._local.snapshot()
        return replace(local, throttled=local.throttled - self._echoed)
