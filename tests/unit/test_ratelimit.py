"""The adaptive request budget on a fake clock: pacing, holds and cuts on 429, recovery,
Retry-After pauses, the snapshot, and simulations against sliding-window servers whose window
(1 s, 10 s, 60 s) the budget is not told."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections import deque

import pytest
from windows import busiest_second

from bulkops.errors import SendStopped
from bulkops.ratelimit import (
    CLOSE_CHECK_INTERVAL,
    CUT_TO,
    FULL_WINDOW_RUN,
    MAX_PAUSE,
    AdaptiveBudget,
    RequestBudget,
)
from bulkops.settings import Rate, parse_rate

OK, THROTTLED = 200, 429


class SteppingTime:
    """A fake clock whose sleep moves time forward at once: for a single caller."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class ManualTime:
    """A fake clock that only moves on `advance`, waking sleepers in time order: for
    concurrent callers."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), self._order, future))
        self._order += 1
        await future

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            when, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            future.set_result(None)
            await settle()
        self.now = target
        await settle()


async def settle() -> None:
    """Let every task that can run do so until it blocks again."""
    for _ in range(20):
        await asyncio.sleep(0)


def budget_on(time: SteppingTime | ManualTime, rate: str, **options: float) -> AdaptiveBudget:
    return AdaptiveBudget(parse_rate(rate), clock=time.clock, sleep=time.sleep, **options)


def per_minute(budget: AdaptiveBudget) -> float:
    return budget.snapshot().current_per_second * 60


async def send(budget: AdaptiveBudget, count: int, status: int | None = OK) -> None:
    for _ in range(count):
        await budget.acquire()
        budget.on_response(status, None)


def test_adaptive_budget_implements_the_protocol() -> None:
    time = SteppingTime()
    budget: RequestBudget = AdaptiveBudget(parse_rate("200/min"), clock=time.clock)
    assert budget.snapshot().limit_per_second == pytest.approx(200 / 60)


def test_building_a_budget_outside_a_loop_and_using_it_inside_one_works() -> None:
    """Nothing binds to an event loop at construction: the default clock is the running
    loop's, read only while running."""
    budget = AdaptiveBudget(parse_rate("1000/s"))

    async def use() -> int:
        await send(budget, 3)
        return budget.snapshot().requests

    assert asyncio.run(use()) == 3


@pytest.mark.parametrize("min_fraction", [0.0, -0.1, 1.5])
def test_min_fraction_must_be_a_share(min_fraction: float) -> None:
    with pytest.raises(ValueError, match="min_fraction"):
        AdaptiveBudget(parse_rate("200/min"), min_fraction=min_fraction)


def test_a_zero_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        AdaptiveBudget(Rate(0, 60))


@pytest.mark.parametrize(("rate", "count"), [("200/min", 200), ("5/s", 50), ("1000/hour", 10)])
async def test_requests_are_evenly_spaced_at_the_configured_rate(rate: str, count: int) -> None:
    """N acquires take (N-1)/rate of fake time, each gap exactly 1/rate: no burst."""
    time = SteppingTime()
    budget = budget_on(time, rate)
    interval = 1 / parse_rate(rate).per_second
    times = []
    for _ in range(count):
        await budget.acquire()
        times.append(time.now)
    assert times[-1] == pytest.approx((count - 1) * interval)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(interval)
    assert max(gaps) == pytest.approx(interval)


async def test_an_idle_budget_saves_up_no_burst() -> None:
    time = SteppingTime()
    budget = budget_on(time, "60/min")
    await budget.acquire()
    time.now += 100.0  # idle
    await budget.acquire()
    first_after_idle = time.now
    await budget.acquire()
    assert first_after_idle == 100.0
    assert time.now == pytest.approx(101.0)


async def test_concurrent_callers_share_one_pace_in_arrival_order() -> None:
    time = ManualTime()
    budget = budget_on(time, "60/min")
    left: list[tuple[int, float]] = []

    async def caller(number: int) -> None:
        await budget.acquire()
        left.append((number, time.now))

    tasks = [asyncio.create_task(caller(number)) for number in range(5)]
    await time.advance(10.0)
    await asyncio.gather(*tasks)
    assert left == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]


async def test_a_429_cuts_the_rate_to_a_share_of_the_rate_in_force() -> None:
    time = SteppingTime()
    budget = budget_on(time, "200/min")
    await send(budget, 10)
    budget.on_response(THROTTLED, None)
    assert per_minute(budget) == pytest.approx(200 * CUT_TO)


async def test_429s_from_requests_in_flight_count_once() -> None:
    """429s of requests that left before the first 429 came back, mixed with good answers,
    are one signal: the hold they start ends only with an admitted probe."""
    time = SteppingTime()
    budget = budget_on(time, "200/min")
    await send(budget, 10)
    for _ in range(5):
        budget.on_response(THROTTLED, None)
        budget.on_response(OK, None)
    assert per_minute(budget) == pytest.approx(200 * CUT_TO, rel=1e-3)
    assert budget.snapshot().throttled == 5


async def hold_until(budget: AdaptiveBudget, time: SteppingTime, reopens_at: float) -> float:
    """Send probes, refused until `reopens_at`; returns when the admitted one left."""
    while True:
        await budget.acquire()
        if time.now >= reopens_at:
            budget.on_response(OK, None)
            return time.now
        budget.on_response(THROTTLED, None)


async def test_a_429_after_the_hold_ended_cuts_again() -> None:
    time = SteppingTime()
    budget = budget_on(time, "200/min")
    await send(budget, 100)
    budget.on_response(THROTTLED, None)
    await hold_until(budget, time, reopens_at=0.0)  # a stray: the first probe is admitted
    after_first = per_minute(budget)
    assert after_first == pytest.approx(200 * CUT_TO, rel=1e-2)
    budget.on_response(THROTTLED, None)
    assert per_minute(budget) == pytest.approx(after_first * CUT_TO, rel=1e-2)


async def test_during_a_hold_only_probes_leave_further_and_further_apart() -> None:
    """After a 429 nothing leaves but single probes: the first one interval later, each
    next one a growing share of the time held so far, so the server's window can empty."""
    time = SteppingTime()
    budget = budget_on(time, "100/s")
    await send(budget, 500)
    held_from = time.now
    budget.on_response(THROTTLED, None)
    probes = []
    for _ in range(12):
        await budget.acquire()
        probes.append(time.now)
        budget.on_response(THROTTLED, None)
    gaps = [later - earlier for earlier, later in itertools.pairwise([held_from, *probes])]
    assert gaps[0] == pytest.approx(1 / (100 * CUT_TO), rel=1e-3)
    assert gaps == sorted(gaps)
    assert gaps[-1] >= 0.2 * (probes[-2] - held_from)
    budget.on_response(OK, None)  # in flight from before: no probe of its own, ignored
    await budget.acquire()
    budget.on_response(OK, None)  # the probe is admitted: the hold ends
    resumed = time.now
    await budget.acquire()
    assert time.now - resumed < gaps[-1]  # paced again, not probing


async def test_a_full_window_cuts_to_what_the_server_admitted_over_the_cycle() -> None:
    """At 400/min against a server admitting 200 a minute, the window fills after 30 s and
    reopens 60 s after the first request: 200 admitted over the cycle is 200/min, whatever
    the window, and the rate restarts there rather than at the 400/min in force."""
    time = SteppingTime()
    budget = budget_on(time, "400/min")
    await send(budget, 200)
    await send(budget, FULL_WINDOW_RUN, THROTTLED)
    resumed = await hold_until(budget, time, reopens_at=60.0)
    assert 60.0 <= resumed <= 60.0 * 1.3  # probes thin out: at most about a quarter late
    # 201 admitted (the probe too) from the first request to the admitted probe.
    assert per_minute(budget) == pytest.approx(201 * 60.0 / resumed, rel=1e-3)


async def test_once_the_window_is_known_a_429_cuts_to_what_it_admitted() -> None:
    """A full window shows how long the server's window is (the cycle from the first request
    until it reopened). A later 429 then cuts to what the server admitted over that window
    rather than to the rate in force: the server judges the average over its window, which
    can lag far behind the rate."""
    time = SteppingTime()
    budget = budget_on(time, "400/min")
    await send(budget, 200)
    await send(budget, FULL_WINDOW_RUN, THROTTLED)
    window = await hold_until(budget, time, reopens_at=60.0)
    time.now += 1000.0  # idle: the rate in force has climbed back to the configured 400/min
    assert per_minute(budget) == pytest.approx(400)
    await send(budget, 100)
    budget.on_response(THROTTLED, None)
    assert per_minute(budget) == pytest.approx(CUT_TO * 100 / window * 60, rel=1e-3)


async def test_a_full_window_with_little_evidence_halves_the_rate() -> None:
    """A run of 429s from the very first request (a previous run's leftovers in the server's
    window) says nothing about the limit: halve instead of trusting the few admitted."""
    time = SteppingTime()
    budget = budget_on(time, "200/min")
    await send(budget, 2)
    await send(budget, FULL_WINDOW_RUN, THROTTLED)
    await hold_until(budget, time, reopens_at=0.0)
    assert per_minute(budget) == pytest.approx(200 * 0.5 * CUT_TO, rel=1e-3)


async def test_a_hold_is_one_signal_however_many_429s_it_sees() -> None:
    time = SteppingTime()
    budget = budget_on(time, "400/min")
    await send(budget, 200)
    await send(budget, FULL_WINDOW_RUN, THROTTLED)
    after_run = per_minute(budget)
    for _ in range(5 * FULL_WINDOW_RUN):
        budget.on_response(THROTTLED, None)
    assert per_minute(budget) == pytest.approx(after_run)


async def test_a_good_answer_breaks_a_run_of_429s() -> None:
    time = SteppingTime()
    budget = budget_on(time, "400/min")
    await send(budget, 200)
    for _ in range(3):
        budget.on_response(THROTTLED, None)
        budget.on_response(THROTTLED, None)
        budget.on_response(OK, None)
    assert per_minute(budget) == pytest.approx(400 * CUT_TO, rel=1e-3)


async def test_no_answer_is_no_signal() -> None:
    time = SteppingTime()
    budget = budget_on(time, "200/min")
    for _ in range(10):
        budget.on_response(None, None)
    assert per_minute(budget) == 200


@pytest.mark.parametrize("rate", ["400/min", "1000/min"])
async def test_the_rate_climbs_back_over_the_recovery_time_and_never_passes_the_limit(
    rate: str,
) -> None:
    """After a full window that took about 60 s to reopen, the rate climbs back to the
    ceiling over about as long, then probes on up to the configured rate, never past it."""
    time = SteppingTime()
    budget = budget_on(time, rate)
    limit = parse_rate(rate).per_second * 60
    await send(budget, 200)
    await send(budget, FULL_WINDOW_RUN, THROTTLED)
    resumed = await hold_until(budget, time, reopens_at=60.0)
    start = per_minute(budget)
    samples = []
    for second in range(0, 900, 5):
        time.now = resumed + second
        samples.append(per_minute(budget))
    ceiling = start / CUT_TO
    assert samples == sorted(samples)  # climbs, never dips without a 429
    back = next(i for i, value in enumerate(samples) if value >= ceiling * 0.999) * 5
    assert 0.8 * resumed <= back <= 1.2 * resumed + 5  # one recovery time, about a minute
    assert max(samples) == pytest.approx(limit)  # probes on up to the configured rate...
    assert max(samples) <= limit  # ...and never past it


async def test_the_rate_never_falls_below_its_floor() -> None:
    time = SteppingTime()
    budget = budget_on(time, "200/min", min_fraction=0.1)
    for _ in range(30):
        await send(budget, FULL_WINDOW_RUN, THROTTLED)
        await hold_until(budget, time, reopens_at=0.0)
    assert per_minute(budget) == pytest.approx(20.0)


async def test_retry_after_pauses_every_waiting_caller_until_it_ends() -> None:
    time = ManualTime()
    budget = budget_on(time, "60/min")
    await budget.acquire()  # t=0
    left: list[float] = []

    async def caller() -> None:
        await budget.acquire()
        left.append(time.now)
        budget.on_response(OK, None)  # the first after the pause ends the hold the 429 began

    tasks = [asyncio.create_task(caller()) for _ in range(3)]
    await time.advance(0.5)  # the first waiter is asleep until t=1 for pacing
    budget.on_response(THROTTLED, 5.0)  # pause until t=5.5
    await time.advance(4.9)  # t=5.4
    assert left == []
    await time.advance(10.0)
    await asyncio.gather(*tasks)
    assert len(left) == 3
    assert min(left) == pytest.approx(5.5)
    gaps = [later - earlier for earlier, later in itertools.pairwise(left)]
    assert min(gaps) >= 1.0  # after the pause, paced again: no burst


async def test_retry_after_on_any_answer_pauses_and_the_longest_pause_wins() -> None:
    time = SteppingTime()
    budget = budget_on(time, "600/min")
    budget.on_response(503, 8.0)
    budget.on_response(THROTTLED, 3.0)  # shorter: does not shorten the pause
    assert budget.snapshot().paused_until == 8.0
    await budget.acquire()
    assert time.now == pytest.approx(8.0)


@pytest.mark.parametrize("retry_after", [0.0, -5.0, math.nan, math.inf])
async def test_nonsense_retry_after_values_pause_nothing(retry_after: float) -> None:
    time = SteppingTime()
    budget = budget_on(time, "600/min")
    budget.on_response(OK, retry_after)
    assert budget.snapshot().paused_until is None


async def test_a_huge_retry_after_is_capped() -> None:
    time = SteppingTime()
    budget = budget_on(time, "600/min")
    budget.on_response(THROTTLED, 86400.0)
    assert budget.snapshot().paused_until == MAX_PAUSE


async def test_snapshot_reports_configured_current_and_achieved_rates_and_counts() -> None:
    time = SteppingTime()
    budget = budget_on(time, "60/min")
    empty = budget.snapshot()
    assert (empty.requests, empty.throttled, empty.achieved_per_second) == (0, 0, 0.0)
    await send(budget, 61)  # one a second, t=0..60
    budget.on_response(THROTTLED, 2.0)
    snapshot = budget.snapshot()
    assert snapshot.limit_per_second == 1.0
    assert snapshot.current_per_second == pytest.approx(CUT_TO)
    assert snapshot.achieved_per_second == pytest.approx(1.0)  # 60 in the last 60 s
    assert (snapshot.requests, snapshot.throttled) == (61, 1)
    assert snapshot.paused_until == 62.0
    time.now = 200.0
    later = budget.snapshot()
    assert later.paused_until is None
    assert later.achieved_per_second == 0.0


async def test_achieved_rate_early_in_a_run_is_over_the_time_elapsed() -> None:
    time = SteppingTime()
    budget = budget_on(time, "120/min")
    await send(budget, 21)  # t=0..10 at 2/s
    assert budget.snapshot().achieved_per_second == pytest.approx(2.1)


class SlidingWindowServer:
    """Admits at most `limit` requests in any `window` seconds. Like the sandbox, it counts
    every request, refused ones included, unless told otherwise."""

    def __init__(self, limit: int, window: float = 60.0, *, count_refused: bool = True) -> None:
        self.limit = limit
        self.window = window
        self.count_refused = count_refused
        self.counted: deque[float] = deque()
        self.admitted = 0
        self.refused = 0

    def answer(self, now: float) -> int:
        while self.counted and self.counted[0] <= now - self.window:
            self.counted.popleft()
        full = len(self.counted) >= self.limit
        if not full or self.count_refused:
            self.counted.append(now)
        if full:
            self.refused += 1
            return THROTTLED
        self.admitted += 1
        return OK


@pytest.mark.parametrize("count_refused", [True, False], ids=["refused-count", "admitted-only"])
@pytest.mark.parametrize(
    ("configured", "min_share_of_limit", "max_share_429"),
    [("200/min", 0.90, 0.01), ("400/min", 0.70, 0.15)],
    ids=["at-the-limit", "twice-the-limit"],
)
async def test_ten_minutes_against_a_sliding_window_of_200_a_minute(
    configured: str, min_share_of_limit: float, max_share_429: float, count_refused: bool
) -> None:
    """Configured at the true limit: >= 90% of it achieved, < 1% 429s. Configured at twice
    the true limit: it adapts, >= 70% achieved, < 15% 429s."""
    time = SteppingTime()
    budget = budget_on(time, configured)
    server = SlidingWindowServer(200, count_refused=count_refused)
    minutes = 10
    while time.now < minutes * 60:
        await budget.acquire()
        budget.on_response(server.answer(time.now), None)
    total = server.admitted + server.refused
    assert server.admitted / minutes >= min_share_of_limit * 200
    assert server.refused / total < max_share_429
    assert budget.snapshot().throttled == server.refused


@pytest.mark.parametrize("count_refused", [True, False], ids=["refused-count", "admitted-only"])
@pytest.mark.parametrize(
    ("configured", "min_share_of_limit", "max_share_429"),
    [("100/s", 0.80, 0.05), ("10/s", 0.97, 0.01)],
    ids=["unknown-limit", "known-limit"],
)
@pytest.mark.parametrize(
    ("limit", "window", "seconds"),
    [(10, 1.0, 60.0), (100, 10.0, 120.0), (600, 60.0, 300.0)],
    ids=["1s-window", "10s-window", "60s-window"],
)
async def test_a_sliding_window_of_any_length_is_filled_without_bursts(
    limit: int, window: float, seconds: float, configured: str, min_share_of_limit: float,
    max_share_429: float, count_refused: bool,
) -> None:
    """The same limit, 10 requests a second, over a window of 1 s, 10 s or 60 s, for several
    windows. Unknown (--rate ten times the limit): >= 80% of the limit used, < 5% 429s.
    Known (--rate the limit): >= 97%, < 1%. Either way never more than 1.1 times --rate in
    any second, the first one included."""
    time = SteppingTime()
    budget = budget_on(time, configured)
    server = SlidingWindowServer(limit, window, count_refused=count_refused)
    sent: list[float] = []
    while time.now < seconds:
        await budget.acquire()
        sent.append(time.now)
        budget.on_response(server.answer(time.now), None)
    used = server.admitted / (sent[-1] - sent[0]) / (limit / window)
    assert used >= min_share_of_limit
    assert server.refused / len(sent) < max_share_429
    assert busiest_second(sent) <= 1.1 * parse_rate(configured).per_second


async def test_close_refuses_new_acquires_and_wakes_waiters_with_send_stopped() -> None:
    """After a stop no request leaves: a caller waiting for its turn gets SendStopped within a
    check interval, and so does every later caller."""
    time = ManualTime()
    budget = budget_on(time, "1/s")
    await budget.acquire()  # the first leaves at once; the next must wait a second
    outcome: list[str] = []

    async def waiter() -> None:
        try:
            await budget.acquire()
            outcome.append("sent")
        except SendStopped:
            outcome.append("stopped")

    task = asyncio.create_task(waiter())
    await time.advance(0.1)
    budget.close()
    await time.advance(CLOSE_CHECK_INTERVAL)
    await task
    assert outcome == ["stopped"]
    with pytest.raises(SendStopped):
        await budget.acquire()
    assert budget.snapshot().requests == 1


@pytest.mark.parametrize(("given", "shown"), [
    ("1000000/s", "1000000/s"), ("200/min", "200/min"), ("0.5/s", "0.5/s"),
    ("2.25/min", "2.25/min"), ("1000/hour", "1000/hour"),
])
def test_a_rate_is_shown_as_it_is_typed_never_in_exponent_form(given: str, shown: str) -> None:
    assert str(parse_rate(given)) == shown
    assert str(Rate(60_000_000, 90)) == "60000000/90s"
