"""The local pacers beneath the request budget: one request per interval, never a burst.

The aiolimiter pacer runs on the event loop's own clock, so its tests sleep for real; they
assert only lower bounds on the gaps (a loaded machine makes gaps longer, never shorter).
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bulkops.pacing import EvenPacer, LeakyBucketPacer, make_pacer
from bulkops.ratelimit import AdaptiveBudget
from bulkops.settings import parse_rate

RATE = 200.0  # requests per second: 5 ms apart, so a test takes a tenth of a second
# Loop timers round to the millisecond (uvloop) and the clock reads are not the timers' own:
# a gap may read this much short of the interval without a request having left early.
SLACK = 0.001


async def takes(pacer: LeakyBucketPacer, count: int, per_second: float) -> list[float]:
    loop = asyncio.get_running_loop()
    times = []
    for _ in range(count):
        while not await pacer.take(per_second, 0.25):
            pass
        times.append(loop.time())
    return times


async def test_the_aiolimiter_pacer_spaces_requests_one_interval_apart() -> None:
    times = await takes(LeakyBucketPacer(), 20, RATE)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 1 / RATE - SLACK


async def test_the_aiolimiter_pacer_keeps_the_spacing_when_the_rate_changes() -> None:
    """A new limiter is made for a new rate; it must not let the next request out at once."""
    pacer = LeakyBucketPacer()
    first = await takes(pacer, 5, RATE)
    second = await takes(pacer, 5, RATE / 2)
    assert second[0] - first[-1] >= 1 / (RATE / 2) - SLACK


async def test_the_aiolimiter_pacer_without_patience_never_waits() -> None:
    pacer = LeakyBucketPacer()
    assert await pacer.take(1.0, 0.0)
    assert not await pacer.take(1.0, 0.0)  # the next is a second away: refused, no wait


async def test_an_even_pacer_on_a_fake_clock_hands_back_after_sleeping() -> None:
    """It sleeps at most `patience`, then lets the caller look again before taking."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    pacer = EvenPacer(lambda: now[0], sleep)
    assert await pacer.take(1.0, 0.25)
    assert not await pacer.take(1.0, 0.25)
    assert now[0] == pytest.approx(0.25)
    now[0] = 1.0
    assert await pacer.take(1.0, 0.25)


def test_pacers_by_name() -> None:
    assert isinstance(make_pacer("aiolimiter", lambda: 0.0, asyncio.sleep), LeakyBucketPacer)
    assert isinstance(make_pacer("even", lambda: 0.0, asyncio.sleep), EvenPacer)


async def test_a_budget_on_the_aiolimiter_pacer_never_bursts() -> None:
    budget = AdaptiveBudget(parse_rate(f"{RATE:g}/s"), pacer="aiolimiter")
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def caller() -> None:
        for _ in range(5):
            await budget.acquire()
            times.append(loop.time())
            budget.on_response(200, None)

    await asyncio.gather(*(caller() for _ in range(4)))
    times.sort()
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) == 20
    assert min(gaps) >= 1 / RATE - SLACK
