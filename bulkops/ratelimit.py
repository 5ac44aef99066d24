"""The request budget: one token per HTTP request, adapted to what the server allows."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from bulkops.errors import SendStopped
from bulkops.pacing import TIMER_RESOLUTION, Clock, Sleep, make_pacer
from bulkops.settings import PacerName, Rate


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


class BudgetLayer:
    """A `RequestBudget` over another (`inner`) that passes everything on: a layer (a
    timeline, a worker's turn) overrides only what it adds."""

    def __init__(self, inner: RequestBudget) -> None:
        self._inner = inner

    async def acquire(self) -> None:
        await self._inner.acquire()

    def close(self) -> None:
        self._inner.close()

    def on_response(self, status: int | None, retry_after: float | None) -> None:
        self._inner.on_response(status, retry_after)

    def snapshot(self) -> BudgetSnapshot:
        return self._inner.snapshot()


# ---------------------------------------------------------------------------------------------
# Implementation.
#
# The server's window is not assumed. Wix documents 200 requests a minute, but the budget
# must fill a limit of 10 a rolling second, 100 per 10 s or 600 a minute alike. A sliding
# window of N requests per W seconds judges the average of the last W seconds, and behaves
# in two ways:
# - paced evenly at a steady rate, it is a limit on the rate: once the rate passes N / W for
#   long enough to lift the window's average, 429s come, whatever W is;
# - after a burst (the start of a run far above the limit), it is full, and if it counts
#   refused requests too (as the sandbox does), it stays full for as long as requests keep
#   coming: everything is refused until the burst slides out, one window after it began.
# So a 429 starts a hold: nothing leaves but single probes, further and further apart (a
# share of the time held so far, larger when the server admitted few: probes count against
# such a window too), until one is admitted. One hold is one signal, whatever 429s it sees.
#
# The cut. When a hold begins, CUBIC's ceiling is the rate in force, and the rate drops to
# `CUT_TO` of it. When it ends, the hold tells more if it was a run of 429s (a full window,
# not a request that came a moment early):
# - the admissions over the whole cycle, from the end of the last hold (or the first
#   request) to the admitted probe, fill and recovery, are the server's limit as a rate,
#   whatever its window (a little under it: the probe came after the window reopened); if
#   that is clearly below the ceiling, the rate restarts at it;
# - the first such cycle lasted about one server window: the budget keeps that length, and
#   from then on a 429 cuts to what the server admitted over it if that is lower than the
#   rate in force (the rate can pass the limit well before the window's average does);
# - with too little admitted to measure (a resume finding a previous run's requests in the
#   server's window), the ceiling is halved instead.
# The rate then climbs back along CUBIC's curve over the window so learnt (or the hold's
# length), never shorter than `MIN_EPISODE_REQUESTS` at the ceiling, so that the few 429s of
# each probe past the ceiling stay a small share.
#
# Wix's 60 s remains only where it harms nothing: the progress line's achieved rate is a
# one-minute average, and a probe leaves at least once a minute during a hold.
# ---------------------------------------------------------------------------------------------

TOO_MANY_REQUESTS = 429

# After a 429 the rate drops to this share of the ceiling estimate: enough headroom that the
# arrival jitter of requests in flight does not tip the server's window over again.
CUT_TO = 0.9
# A hold that saw this many 429s was a full window. With fewer than `MIN_EVIDENCE` admitted
# since the last hold, the ceiling is halved instead of measured (the classic multiplicative
# decrease).
FULL_WINDOW_RUN = 4
MIN_EVIDENCE = 8
BLIND_CUT = 0.5
# The CUBIC period is at least this many requests at the ceiling: each probe past the ceiling
# costs a 429 or two, which must stay a small share of the requests between probes (at
# Wix's 200/min, 30 s).
MIN_EPISODE_REQUESTS = 100
# During a hold, the next probe leaves this share of the time held so far after the last one
# (at least one interval at the cut rate, at most `MAX_PROBE_GAP` seconds): about
# log(recovery / interval) / log(1.25) probes, and sending resumes at most a quarter late.
PROBE_GROWTH = 0.25
# The share is at least this many over the requests admitted since the last hold (at most
# 1, doubling): a window that counts refused requests and holds as many probes as its limit
# cannot reopen, so probes stay few beside what the server admits.
FEW_PROBES = 50
MAX_PROBE_GAP = 60.0
# A Retry-After beyond this is taken as a fault and capped, so one bad header cannot park the run.
MAX_PAUSE = 300.0
# Longest single sleep inside `acquire`: how late a waiting request can notice a stop.
CLOSE_CHECK_INTERVAL = 0.25
# The progress line's achieved rate is averaged over this many seconds.
ACHIEVED_SPAN = 60.0

_log = logging.getLogger(__name__)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class _RecentEvents:
    """Times of events in the trailing `span` seconds, oldest first."""

    def __init__(self, span: float) -> None:
        self.span = span  # seconds; may grow (events already forgotten stay so)
        self._times: deque[float] = deque()

    def _forget_before(self, now: float) -> None:
        horizon = now - self.span
        while self._times and self._times[0] <= horizon:
            self._times.popleft()

    def add(self, now: float) -> None:
        self._forget_before(now)
        self._times.append(now)

    def count(self, now: float) -> int:
        self._forget_before(now)
        return len(self._times)


class _RateCurve:
    """The rate in force (requests per second): the configured rate until the first cut, then
    a curve around the ceiling that the cut estimated.

    The curve is TCP CUBIC's (RFC 9438) on a rate, with `period` seconds for K:

        rate(t) = ceiling * (1 + (1 - CUT_TO) * ((t - period) / period) ** 3),  t since the cut

    It starts at `CUT_TO` of the ceiling, climbs back fast at first, flattens as it nears the
    ceiling (probing slowly where 429s started) and is back at it one period after the cut;
    if no 429 comes then, it accelerates past the ceiling towards the configured rate, so a
    ceiling estimated too low (a key shared for a while, a stray 429) is not kept. It moves
    with time rather than per answer, so it reads the same at any concurrency.
    """

    def __init__(self, limit: float, floor: float) -> None:
        self.limit = limit
        self.floor = floor
        self.ceiling: float | None = None
        self.cut_at = -math.inf
        self.period = 1.0

    def rate(self, now: float) -> float:
        if self.ceiling is None:
            return self.limit
        progress = (now - self.cut_at - self.period) / self.period
        probe = self.ceiling * (1 + (1 - CUT_TO) * progress**3)
        return min(self.limit, max(self.floor, probe))

    def cut(self, now: float, ceiling: float, period: float) -> None:
        self.ceiling = min(self.limit, max(self.floor, ceiling))
        self.cut_at = now
        self.period = max(period, 1e-3)


@dataclass
class _Hold:
    """A run of 429s being waited out: only probes leave until one is admitted."""

    started: float
    probe_due: float
    interval: float  # seconds: the shortest gap between probes, one at the cut rate
    growth: float  # each probe after the first waits this share of the time held so far
    throttled: int = 1  # 429s seen during the hold, the first included
    probes: int = 0  # requests let out since it began
    last_probe: float | None = None  # when the latest probe left


class AdaptiveBudget:
    """The request budget for one API key: `RequestBudget` on an injected clock.

    Three things hold a request back, and `acquire` waits for all of them:
    - a Retry-After pause, which holds every caller until it ends;
    - a hold after a 429: single probes, further and further apart, until one is admitted;
    - pacing at the rate in force (requests per second) by the pacer, one request at a time,
      never a burst (`bulkops.pacing`).
    One hold is one signal however many 429s it sees (requests in flight answer 429 too): a
    cut when it begins, deepened when it ends if the admitted rate measured over the last
    cycle says the rate in force was well above the server's limit.
    """

    def __init__(
        self,
        rate: Rate,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        min_fraction: float = 0.05,
        pacer: PacerName | None = None,
    ) -> None:
        """`rate`: the configured --rate, never exceeded. `min_fraction`: the lowest the rate
        in force may go, as a share of `rate`. `pacer`: "aiolimiter" (on the event loop's
        clock; the default without an injected `clock`) or "even" (hand-written, on `clock`;
        the default with one, since aiolimiter cannot run on it)."""
        if not 0 < min_fraction <= 1:
            raise ValueError(f"min_fraction must be in (0, 1], not {min_fraction}")
        limit = rate.per_second
        if not limit > 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self._clock = clock or _loop_time
        self._sleep = sleep or asyncio.sleep
        if pacer is None:
            pacer = "aiolimiter" if clock is None else "even"
        self._pacer = make_pacer(pacer, self._clock, self._sleep)
        self._curve = _RateCurve(limit, limit * min_fraction)
        self._sent = _RecentEvents(ACHIEVED_SPAN)
        # asyncio.Lock binds to the running loop only when first waited on, not here. It is
        # FIFO, so callers leave in the order they asked.
        self._turn = asyncio.Lock()
        self._first_sent: float | None = None
        self._paused_until = -math.inf
        self._hold: _Hold | None = None
        # The server's window (seconds) as the first full window showed it; None until then.
        self._window: float | None = None
        self._admitted: _RecentEvents | None = None  # admissions over that window
        # The span the admitted rate is measured over: from the first request, then from the
        # end of each hold.
        self._span_start: float | None = None
        self._span_admitted = 0
        self._requests = 0
        self._throttled = 0
        self._closed = False

    async def acquire(self) -> None:
        if not self._turn.locked():
            # Nobody waits: a request that need not wait leaves without queueing for the turn
            # (the pacer does not suspend with no patience, so none can slip between).
            if self._closed:
                raise SendStopped("stopping: no new request leaves")
            now = self._clock()
            if self._gate_wait(now) < TIMER_RESOLUTION and \
                    await self._pacer.take(self._curve.rate(now), 0.0):
                self._count_sent()
                return
        async with self._turn:
            # Each pass waits in slices short enough to notice `close` promptly, and looks
            # again at the pause, the hold and the rate, which answers may have changed.
            while True:
                if self._closed:
                    raise SendStopped("stopping: no new request leaves")
                now = self._clock()
                gate = self._gate_wait(now)
                if gate >= TIMER_RESOLUTION:
                    await self._sleep(min(gate, CLOSE_CHECK_INTERVAL))
                elif await self._pacer.take(self._curve.rate(now), CLOSE_CHECK_INTERVAL):
                    break
            if self._closed:
                raise SendStopped("stopping: no new request leaves")
            self._count_sent()

    def _gate_wait(self, now: float) -> float:
        """Seconds until a pause and a hold let the next request out."""
        wait = self._paused_until - now
        if self._hold is not None:
            wait = max(wait, self._hold.probe_due - now)
        return wait

    def _count_sent(self) -> None:
        now = self._clock()
        if self._first_sent is None:
            self._first_sent = now
        if self._span_start is None:
            self._span_start = now
        self._sent.add(now)
        self._requests += 1
        hold = self._hold
        if hold is not None:
            hold.probes += 1
            hold.last_probe = now
            gap = max(hold.interval, hold.growth * (now - hold.started))
            hold.probe_due = now + min(gap, MAX_PROBE_GAP)

    def close(self) -> None:
        self._closed = True

    def on_response(self, status: int | None, retry_after: float | None) -> None:
        now = self._clock()
        if retry_after is not None:
            self._pause(now, retry_after)
        if status == TOO_MANY_REQUESTS:
            self._throttled += 1
            if self._hold is None:
                self._start_hold(now)
            else:
                self._hold.throttled += 1
        elif status is not None:
            # Any other answer got past the server's limiter. No answer says nothing either way.
            self._span_admitted += 1
            if self._admitted is not None:
                self._admitted.add(now)
            if self._hold is not None and self._hold.probes:
                self._end_hold(now, self._hold)

    def _start_hold(self, now: float) -> None:
        # CUBIC's ceiling: the rate in force, or what the server admitted over its window
        # (as a full window showed it) if lower: the server judges the average over its
        # window, so the rate in force can pass its limit well before the first 429. The cut
        # applies at once, for the probes; the hold's end may deepen it.
        ceiling = self._curve.rate(now)
        if self._admitted is not None and self._window is not None and \
                self._first_sent is not None and now - self._first_sent >= self._window:
            admitted = self._admitted.count(now)
            if admitted >= MIN_EVIDENCE:
                ceiling = min(ceiling, admitted / self._window)
        self._curve.cut(now, ceiling, self._curve.period)
        # Probes count against a server window that counts refused requests: a window that
        # holds as many probes as its limit cannot reopen, so they thin out faster when the
        # server admitted few before refusing.
        growth = min(max(PROBE_GROWTH, FEW_PROBES / max(self._span_admitted, 1)), 1.0)
        interval = 1 / self._curve.rate(now)
        self._hold = _Hold(started=now, probe_due=now + interval, interval=interval,
                           growth=growth)
        self._log_cut("budget_lowered", now)

    def _end_hold(self, now: float, hold: _Hold) -> None:
        self._hold = None
        ceiling = self._curve.ceiling or self._curve.limit
        # The server let requests in again by the time the admitted probe left (somewhere
        # after the last refused one): taking the later bound errs towards a lower rate.
        resumed = hold.last_probe if hold.last_probe is not None else now
        start = self._span_start if self._span_start is not None else hold.started
        admitted, span = self._span_admitted, max(resumed - start, 1e-9)
        recovery = max(resumed - hold.started, 0.0)
        # A run of 429s says the server's window was full, not that a request came a moment
        # early; only then is the span's evidence about the limit.
        full = hold.throttled >= FULL_WINDOW_RUN
        if full and self._window is None:
            # The first full window of a run: filled, then waited out until its oldest
            # requests slid out, which took about one server window. From now on the
            # admissions over that window are counted.
            self._window = span
            self._admitted = _RecentEvents(span)
        if full and admitted >= MIN_EVIDENCE and span >= 0.99 * (self._window or 0.0) \
                and admitted / span < CUT_TO * ceiling:
            # Admissions over a whole cycle (fill and recovery) are the server's limit, as a
            # rate, whatever its window. Trusted only over a window or more and when clearly
            # below the rate in force: a cycle that climbed from below the ceiling averages
            # under it. Being an average over the cycle, it is no more than the limit: the
            # rate restarts there.
            ceiling = admitted / span / CUT_TO
        elif full and admitted < MIN_EVIDENCE:
            ceiling *= BLIND_CUT
        if full and self._admitted is not None and recovery > self._admitted.span:
            # A recovery longer than the window learnt: the window was longer than it showed.
            self._window = self._admitted.span = recovery
        # The rate climbs back over a server window at least: the server judges the average
        # over its window, so a climb faster than that would overshoot before the first 429.
        period = max(self._window or recovery, MIN_EPISODE_REQUESTS / ceiling)
        self._curve.cut(now, ceiling, period)
        self._span_start, self._span_admitted = now, 0
        _log.info("budget_resumed", extra={
            "held_seconds": round(recovery, 3), "throttled": hold.throttled,
            "ceiling_per_min": round((self._curve.ceiling or 0.0) * 60, 1),
            "period_seconds": round(self._curve.period, 1),
        })

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
        """Requests sent over the last minute (or since the first, if more recent)."""
        if self._first_sent is None:
            return 0.0
        span = min(ACHIEVED_SPAN, max(now - self._first_sent, 1.0))
        return self._sent.count(now) / span
