"""Local pacing beneath the request budget: the budget decides the rate, a pacer spaces requests.

Two pacers behind one seam, both with room for one request and no more (a sliding-window
server answers any burst with 429s), measured side by side (README, "The request budget"):
- `LeakyBucketPacer`, on `aiolimiter.AsyncLimiter(1, 1 / rate)`, which reads the event loop's
  own clock: the default of runs, which filled a short window's limit better;
- `EvenPacer`, hand-written on the budget's injected clock: what unit tests drive without
  sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiolimiter import AsyncLimiter

from bulkops.settings import PacerName

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# A wait shorter than this (seconds) is not slept: the loop's timers are no finer, and at a
# raised limit (thousands a second) sleeping microseconds costs a loop turn per request. The
# request is charged to the moment it was due, so the pace over many requests holds.
TIMER_RESOLUTION = 0.001
# AsyncLimiter has no public way to change its rate: a new one is made when the rate in force
# has moved by more than this share since the limiter in use was made.
RATE_STEP = 0.01


class Pacer(Protocol):
    async def take(self, per_second: float, patience: float) -> bool:
        """Let one request leave if it is at least 1 / `per_second` seconds after the last one
        (`per_second`: requests per second). Waits at most `patience` seconds for that (0: not
        at all, and then never suspends). True if the request may leave now (it is counted);
        False if the caller should check its own conditions and ask again."""
        ...


class EvenPacer:
    """One request per 1 / rate seconds on an injected clock, never a burst."""

    def __init__(self, clock: Clock, sleep: Sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._last: float | None = None  # when the last request was due

    def _delay(self, per_second: float) -> float:
        if self._last is None:
            return 0.0
        return max(self._last + 1 / per_second - self._clock(), 0.0)

    async def take(self, per_second: float, patience: float) -> bool:
        delay = self._delay(per_second)
        if delay >= TIMER_RESOLUTION:
            if patience > 0:
                # Slept, then handed back: the caller looks again at what may have changed
                # meanwhile (a stop, a pause, a lower rate) before the request leaves.
                await self._sleep(min(delay, patience))
            return False
        self._last = self._clock() + delay
        return True


class LeakyBucketPacer:
    """One request per 1 / rate seconds on aiolimiter: a bucket of capacity one (a
    millisecond's worth above 1,000 a second), re-made when the rate moves. It runs on the
    event loop's clock, whatever clock the budget has."""

    def __init__(self) -> None:
        self._limiter: AsyncLimiter | None = None
        self._per_second = 0.0
        self._last_left = -float("inf")  # loop time of the last request let out

    async def _limiter_for(self, per_second: float) -> AsyncLimiter:
        limiter = self._limiter
        if limiter is None or abs(per_second - self._per_second) > RATE_STEP * self._per_second:
            # Room for one request, or for one millisecond's worth at a raised limit: the
            # loop's clock moves in millisecond steps (uvloop), so a bucket of one would let
            # out one request a step, whatever the rate.
            room = max(1.0, per_second * TIMER_RESOLUTION)
            limiter = self._limiter = AsyncLimiter(room, room / per_second)
            self._per_second = per_second
            if asyncio.get_running_loop().time() - self._last_left < 1 / per_second:
                # A new bucket is empty: fill it, or the next request would leave right after
                # the last one. An empty bucket fills without suspending; this charges the last
                # request to now, up to one interval later than needed, once per change of rate.
                await limiter.acquire()
        return limiter

    async def take(self, per_second: float, patience: float) -> bool:
        limiter = await self._limiter_for(per_second)
        if not limiter.has_capacity():
            if patience <= 0:
                return False
            try:
                await asyncio.wait_for(limiter.acquire(), patience)
            except TimeoutError:
                return False
        else:
            await limiter.acquire()  # capacity is there: returns without suspending
        self._last_left = asyncio.get_running_loop().time()
        return True


def make_pacer(name: PacerName, clock: Clock, sleep: Sleep) -> Pacer:
    """The pacer called `name` ("even": hand-written on `clock`; "aiolimiter")."""
    if name == "aiolimiter":
        return LeakyBucketPacer()
    return EvenPacer(clock, sleep)
