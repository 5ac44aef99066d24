"""The request budget: one token per HTTP request, adapted to what the server allows."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bulkops.errors import SendStopped
from bulkops.settings import Rate


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
        """Wait until one more request may leave (rate, and any Retry-After pause).
        Raises SendStopped once `close` was called: the request must not leave."""
        ...

    def close(self) -> None:
        """No request may leave from now on: callers waiting in `acquire` and later ones get
        SendStopped (a stop was asked for; what has not left yet stays unsent)."""
        ...

    def on_response(self, status: int | None, retry_after: float | None) -> None:
        """Feed back an answer: `status` None when no answer came (connection error, timeout).
        A 429 lowers the rate; `retry_after` (seconds) pauses every caller of `acquire`."""
        ...

    def snapshot(self) -> BudgetSnapshot: ...


# ---------------------------------------------------------------------------------------------
# Implementation.
#
# Why not aiolimiter: it reads `loop.time()` and wakes its waiters with `loop.call_at`, so it
# cannot run on an injected clock (tests would need a hand-driven event loop); its rate lives in
# private attributes with no public way to change it while running; and a Retry-After pause that
# holds back every waiter is not a leaky-bucket notion. `AsyncLimiter(rate, period)` also lets a
# full `rate` leave at once, which a sliding-window server answers with 429s. What is needed is
# small: space requests evenly (a bucket of capacity one), keep no more than the server's
# evident allowance inside any window, and wait out pauses; that is written here on the
# injected clock.
#
# How a 429 is read. Wix counts requests per key over a minute. Two causes look alike:
# - the window is full (we sent too many over the last minute): every request is refused until
#   old ones slide out, so 429s come in a run; what the server admitted over its window is then
#   its limit — right even after a burst at twice the limit, where the rate in force (the naive
#   ceiling) would be twice too high;
# - a stray 429 (a blip, another client on the key for a moment): the next answers are fine.
# The first 429 of an episode makes a mild cut (to `CUT_TO` of the rate in force). Only a run of
# `FULL_WINDOW_RUN` 429s in a row deepens it to the measured window, so stray 429s early in a
# run — when the window holds few requests — cannot drag the rate down to a handful a minute.
# When the window already holds about all that the budget allows (`CUT_TO` of it or more, as
# when probing just past a ceiling learnt before), the first 429 is trusted at once: every
# further request would be refused — and counted by the server — until the run was complete.
# ---------------------------------------------------------------------------------------------

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

TOO_MANY_REQUESTS = 429

# Wix states its limit per minute; a 429 is judged against the requests of the last minute.
SERVER_WINDOW = 60.0
# After a 429 the rate drops to this share of the ceiling estimate: enough headroom that the
# arrival jitter of requests in flight does not tip the server's window over again.
CUT_TO = 0.9
# This many 429s in a row, with no other answer between them, mean the server's window is full.
FULL_WINDOW_RUN = 4
# A full window measured at fewer admitted requests than this says more about a previous run's
# leftovers in the server's window (a resume right after a stop) than about the server's limit:
# then the ceiling is halved instead, the classic multiplicative decrease.
MIN_EVIDENCE = 10
BLIND_CUT = 0.5
# A Retry-After beyond this is taken as a fault and capped, so one bad header cannot park the run.
MAX_PAUSE = 300.0
# A wait shorter than this (seconds) is not slept: the loop's timers are no finer, and at a
# raised limit (thousands a second) sleeping microseconds costs a loop turn per request. The
# request is charged to the moment it was due, so the pace over many requests holds.
TIMER_RESOLUTION = 0.001
# Longest single sleep inside `acquire`: how late a waiting request can notice a stop.
CLOSE_CHECK_INTERVAL = 0.25

_log = logging.getLogger(__name__)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class _RecentEvents:
    """Times of events in the trailing `span` seconds, oldest first."""

    def __init__(self, span: float) -> None:
        self._span = span
        self._times: deque[float] = deque()

    def _forget_before(self, now: float) -> None:
        # The server counts (now - span, now]: an event exactly `span` ago has left the window.
        horizon = now - self._span
        while self._times and self._times[0] <= horizon:
            self._times.popleft()

    def add(self, now: float) -> None:
        self._forget_before(now)
        self._times.append(now)

    def count(self, now: float) -> int:
        self._forget_before(now)
        return len(self._times)

    def wait_until_fewer_than(self, cap: int, now: float) -> float:
        """Seconds until fewer than `cap` events remain in the window (0 if already so)."""
        excess = self.count(now) - cap
        if excess < 0:
            return 0.0
        # Once the `excess + 1` oldest events have slid out, `cap - 1` remain.
        return self._times[excess] + self._span - now


class _RateCurve:
    """The rate in force: the configured rate until the first cut, then a curve around the
    ceiling that the cut estimated.

    The curve is TCP CUBIC's (RFC 9438) on a rate:

        rate(t) = ceiling * (1 + (1 - CUT_TO) * ((t - window) / window) ** 3),  t since the cut

    It starts at `CUT_TO` of the ceiling, climbs back fast at first, flattens as it nears the
    ceiling (probing slowly where 429s started) and is back at it one window after the cut,
    when the cool-down ends and the server's window holds only requests sent at the lower
    rate; if no 429 comes then, it accelerates past the ceiling towards the configured rate,
    so a ceiling estimated too low (a key shared for a while, a stray 429) is not kept.
    It moves with time rather than per answer, so it reads the same at any concurrency.
    """

    def __init__(self, limit: float, floor: float, window: float) -> None:
        self.limit = limit
        self.floor = floor
        self.window = window
        self.ceiling: float | None = None
        self.cut_at = -math.inf

    def rate(self, now: float) -> float:
        if self.ceiling is None:
            return self.limit
        progress = (now - self.cut_at - self.window) / self.window
        probe = self.ceiling * (1 + (1 - CUT_TO) * progress**3)
        return min(self.limit, max(self.floor, probe))

    def cut(self, now: float, ceiling: float) -> None:
        self.ceiling = min(self.limit, max(self.floor, ceiling))
        self.cut_at = now

    def window_allowance(self, now: float) -> int:
        """Most requests any server window may hold: the ceiling once known, else the rate."""
        per_second = max(self.rate(now), self.ceiling or 0.0)
        return max(1, math.floor(per_second * self.window))


class AdaptiveBudget:
    """The request budget for one API key: `RequestBudget` paced on an injected clock.

    Three things hold a request back, and `acquire` waits for the latest of them:
    - pacing: evenly spaced at the rate in force, never a burst (one token of capacity);
    - the window allowance: no more requests inside any server window than the ceiling allows —
      so after a full window the budget waits for its own earlier burst to slide out of the
      server's window instead of sending requests certain to be refused (a server that counts
      refused requests too would stay closed for as long as they came);
    - a Retry-After pause, which holds every caller until it ends.
    One episode of 429s is answered once per `cooldown` (one server window by default): a mild
    cut, deepened at most once if the 429s come in a run. A sliding-window server keeps refusing
    until the requests sent before the cut have slid out, and requests in flight answer 429
    too; all of that is one signal, not many.
    """

    def __init__(
        self,
        rate: Rate,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        min_fraction: float = 0.05,
        window: float = SERVER_WINDOW,
        cooldown: float | None = None,
    ) -> None:
        if not 0 < min_fraction <= 1:
            raise ValueError(f"min_fraction must be in (0, 1], not {min_fraction}")
        limit = rate.per_second
        if not limit > 0 or not window > 0:
            raise ValueError(f"rate and window must be positive, not {rate} over {window}s")
        self._clock = clock or _loop_time
        self._sleep = sleep or asyncio.sleep
        self._curve = _RateCurve(limit, limit * min_fraction, window)
        self._window = window
        self._cooldown = window if cooldown is None else cooldown
        self._sent = _RecentEvents(window)
        self._admitted = _RecentEvents(window)
        # asyncio.Lock binds to the running loop only when first waited on, not here. It is
        # FIFO, so callers leave in the order they asked.
        self._turn = asyncio.Lock()
        self._first_sent: float | None = None
        self._last_sent: float | None = None
        self._paused_until = -math.inf
        self._requests = 0
        self._throttled = 0
        self._run_of_429s = 0
        self._deepened = False
        self._closed = False

    async def acquire(self) -> None:
        if not self._turn.locked():
            # Nobody waits: a request that need not wait leaves without queueing for the turn
            # (nothing is awaited between the check and the count, so none can slip between).
            if self._closed:
                raise SendStopped("stopping: no new request leaves")
            delay = self._wait_needed(self._clock())
            if delay < TIMER_RESOLUTION:
                self._count_sent(delay)
                return
        async with self._turn:
            # Each pass sleeps the wait known at that moment, in slices short enough to notice
            # `close` promptly; it passes again if a 429 or a Retry-After made the wait longer.
            while True:
                if self._closed:
                    raise SendStopped("stopping: no new request leaves")
                delay = self._wait_needed(self._clock())
                if delay < TIMER_RESOLUTION:
                    break
                await self._sleep(min(delay, CLOSE_CHECK_INTERVAL))
            self._count_sent(delay)

    def _count_sent(self, delay: float) -> None:
        """Count a request leaving now, `delay` seconds (under TIMER_RESOLUTION) before it was
        due: the pace is kept from when it was due."""
        now = self._clock()
        if self._first_sent is None:
            self._first_sent = now
        self._last_sent = now + delay
        self._sent.add(now)
        self._requests += 1

    def _wait_needed(self, now: float) -> float:
        pacing = 0.0
        if self._last_sent is not None:
            pacing = self._last_sent + 1 / self._curve.rate(now) - now
        allowance = self._curve.window_allowance(now)
        window = self._sent.wait_until_fewer_than(allowance, now)
        return max(pacing, window, self._paused_until - now, 0.0)

    def close(self) -> None:
        self._closed = True

    def on_response(self, status: int | None, retry_after: float | None) -> None:
        now = self._clock()
        if retry_after is not None:
            self._pause(now, retry_after)
        if status == TOO_MANY_REQUESTS:
            self._throttled += 1
            self._run_of_429s += 1
            self._on_throttled(now)
        elif status is not None:
            # Any other answer got past the server's limiter. No answer says nothing either way.
            self._admitted.add(now)
            self._run_of_429s = 0

    def _on_throttled(self, now: float) -> None:
        if now - self._curve.cut_at >= self._cooldown:
            # A new episode: CUBIC's ceiling, the rate in force.
            ceiling = self._curve.rate(now)
            admitted = self._admitted.count(now)
            self._deepened = False
            if admitted >= MIN_EVIDENCE and admitted >= CUT_TO * self._curve.window_allowance(now):
                # The server's window held about all that ours allows: it is full, and what it
                # admitted is its limit. Waiting for a run of 429s would only add refusals.
                ceiling = min(ceiling, admitted / self._window)
                self._deepened = True
            self._curve.cut(now, ceiling)
            self._run_of_429s = 1
            self._log_cut("budget_lowered", now)
        elif self._run_of_429s >= FULL_WINDOW_RUN and not self._deepened:
            self._deepened = True
            admitted = self._admitted.count(now)
            current = self._curve.ceiling or self._curve.limit
            if admitted >= MIN_EVIDENCE:
                ceiling = min(current, admitted / self._window)
            else:
                ceiling = current * BLIND_CUT
            self._curve.cut(now, ceiling)
            self._log_cut("budget_window_full", now)

    def _log_cut(self, event: str, now: float) -> None:
        _log.info(event, extra={
            "ceiling_per_min": round((self._curve.ceiling or 0.0) * 60, 1),
            "rate_per_min": round(self._curve.rate(now) * 60, 1),
        })

    def _pause(self, now: float, retry_after: float) -> None:
        if not math.isfinite(retry_after) or retry_after <= 0:
            return
        until = now + min(retry_after, MAX_PAUSE)
        if until > self._paused_until:
            self._paused_until = until
            _log.info("budget_paused", extra={"seconds": round(until - now, 1)})

    def snapshot(self) -> BudgetSnapshot:
        now = self._clock()
        return BudgetSnapshot(
            limit_per_second=self._curve.limit,
            current_per_second=self._curve.rate(now),
            achieved_per_second=self._achieved_per_second(now),
            requests=self._requests,
            throttled=self._throttled,
            paused_until=self._paused_until if self._paused_until > now else None,
        )

    def _achieved_per_second(self, now: float) -> float:
        """Requests sent over the last server window (or since the first, if more recent)."""
        if self._first_sent is None:
            return 0.0
        span = min(self._window, max(now - self._first_sent, 1.0))
        return self._sent.count(now) / span
