"""Telling an outage from bad rows: when every request fails, hold them all back and probe.

A night with Wix unreachable for a few minutes must not spend every row's attempts and end with
hundreds of failed rows. `OutageGate` wraps the request budget: it watches every answer, and
after `threshold` requests in a row have failed the way an unreachable service fails (no answer
at all, or 500/502/503/504) it closes. While closed, one request at a time is let through as a
probe, after a back-off that doubles up to `max_probe_wait` seconds; the first answer that is
not such a failure opens the gate again. This is a circuit breaker in the usual sense, with
the half-open state spent on real work: the probe is whichever request comes next.

The engine does not count attempts that fail while the gate suspects an outage, and stops the
run (exit 3, rows pending) once the outage has lasted longer than `--outage-limit`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio

from bulkops.ratelimit import BudgetSnapshot, RequestBudget

log = logging.getLogger(__name__)

# Statuses of a service that is down or unreachable behind its gateway (not of a bad request).
OUTAGE_STATUSES = frozenset({500, 502, 503, 504})
THRESHOLD = 8  # failures in a row, across all rows, that make an outage
SUSPECT_AFTER = 3  # failures in a row from which an attempt is not held against its row
FIRST_PROBE_WAIT = 1.0  # seconds
MAX_PROBE_WAIT = 60.0  # seconds


class OutageGate:
    """A `RequestBudget` that holds every request back while the service is unreachable.

    Times are on `clock` (unix seconds by default, so `since` can be shown as a time of day).
    """

    def __init__(
        self,
        inner: RequestBudget,
        *,
        threshold: int = THRESHOLD,
        first_probe_wait: float = FIRST_PROBE_WAIT,
        max_probe_wait: float = MAX_PROBE_WAIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner
        self._threshold = threshold
        self._first_wait = first_probe_wait
        self._max_wait = max_probe_wait
        self._clock = clock
        self._streak = 0
        self._streak_since: float | None = None
        self.since: float | None = None  # the outage's start (its first failure), when closed
        self._probe_wait = first_probe_wait
        self._next_probe = 0.0
        self._probing = False
        self._changed = anyio.Event()
        self._closed = False

    @property
    def suspect(self) -> bool:
        """Failures are coming in a row: the last ones are not the rows' fault."""
        return self.since is not None or self._streak >= SUSPECT_AFTER

    async def acquire(self) -> None:
        while self.since is not None and not self._closed:
            now = self._clock()
            if not self._probing and now >= self._next_probe:
                self._probing = True  # this request is the probe
                break
            changed = self._changed
            wait = self._next_probe - now if not self._probing else MAX_PROBE_WAIT
            with anyio.move_on_after(max(wait, 0.01)):
                await changed.wait()
        await self._inner.acquire()

    def close(self) -> None:
        self._closed = True
        self._inner.close()
        self._wake()

    def on_response(self, status: int | None, retry_after: float | None) -> None:
        self._inner.on_response(status, retry_after)
        now = self._clock()
        if status is None or status in OUTAGE_STATUSES:
            self._failed(now)
        else:
            self._answered()

    def snapshot(self) -> BudgetSnapshot:
        return self._inner.snapshot()

    def _failed(self, now: float) -> None:
        if self._streak == 0:
            self._streak_since = now
        self._streak += 1
        if self.since is None:
            if self._streak >= self._threshold:
                self.since = self._streak_since
                self._probe_wait = self._first_wait
                self._next_probe = now + self._probe_wait
                log.warning("wix_unreachable", extra={"failures": self._streak})
                self._wake()
        elif self._probing:
            # The probe failed too: wait longer before the next one.
            self._probing = False
            self._probe_wait = min(self._probe_wait * 2, self._max_wait)
            self._next_probe = now + self._probe_wait
            self._wake()

    def _answered(self) -> None:
        self._streak = 0
        self._streak_since = None
        if self.since is not None:
            log.warning("wix_reachable", extra={"down_seconds": round(self._clock() - self.since,
                                                                      1)})
            self.since = None
            self._probing = False
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
