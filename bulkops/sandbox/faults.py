"""Fault injection: the rate limit's sliding window and the per-request random fault draw."""

from __future__ import annotations

import math
import random
from collections import deque
from enum import StrEnum

from bulkops.sandbox.config import Endpoint, SandboxConfig


class Fault(StrEnum):
    """What goes wrong with one request (see SandboxConfig for each one's meaning)."""

    SERVER_ERROR = "server_error"
    THROTTLE = "throttle"
    DROP_BEFORE = "drop_before"
    DROP_AFTER = "drop_after"
    SLOW = "slow"


# Order of the faults along the unit interval of one draw: [error | throttle | drop before |
# drop after | slow | no fault]. One draw per request keeps the rates exact shares.
_DRAW_ORDER = (
    (Fault.SERVER_ERROR, "error_rate"),
    (Fault.THROTTLE, "throttle_rate"),
    (Fault.DROP_BEFORE, "drop_before_rate"),
    (Fault.DROP_AFTER, "drop_after_rate"),
    (Fault.SLOW, "slow_rate"),
)
SERVER_ERROR_STATUSES = (500, 502, 503, 504)


class SlidingWindow:
    """At most `limit` requests in any `window` seconds. Every request offered is counted,
    the refused ones too: a client that keeps knocking while limited stays limited."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._arrivals: deque[float] = deque()

    def admit(self, now: float) -> float | None:
        """Count a request at `now`; None if within the limit, else seconds until a slot frees."""
        while self._arrivals and self._arrivals[0] <= now - self.window:
            self._arrivals.popleft()
        self._arrivals.append(now)
        excess = len(self._arrivals) - self.limit
        if excess <= 0:
            return None
        # The next request gets in once at most limit - 1 of those counted remain in its
        # window, i.e. once the first `excess + 1` arrivals (this one included) have aged out.
        return max(self._arrivals[excess] + self.window - now, 0.0)


def retry_after_header(seconds: float) -> dict[str, str]:
    """`Retry-After` in whole seconds, rounded up, at least 1."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class FaultInjector:
    """Draws faults and delays for requests from one seeded random generator."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self.window = SlidingWindow(*config.rate_limit) if config.rate_limit else None

    def reconfigure(self, config: SandboxConfig) -> None:
        """Take new options; a new seed restarts the draws, a new rate limit a fresh window."""
        if config.seed != self.config.seed:
            self._rng = random.Random(config.seed)
        if config.rate_limit != self.config.rate_limit:
            self.window = SlidingWindow(*config.rate_limit) if config.rate_limit else None
        self.config = config

    def over_limit(self, now: float) -> float | None:
        """Seconds until a slot frees if this request breaks the rate limit, else None."""
        return self.window.admit(now) if self.window else None

    def latency(self) -> float:
        jitter = self.config.latency_jitter
        return self.config.latency + (self._rng.uniform(0.0, jitter) if jitter else 0.0)

    def draw(self, endpoint: Endpoint) -> Fault | None:
        """The fault for one well-formed request to `endpoint`, or None."""
        if endpoint not in self.config.fault_methods:
            return None
        point = self._rng.random()
        for fault, rate_field in _DRAW_ORDER:
            rate: float = getattr(self.config, rate_field)
            if point < rate:
                return fault
            point -= rate
        return None

    def server_error_status(self) -> int:
        return self._rng.choice(SERVER_ERROR_STATUSES)
