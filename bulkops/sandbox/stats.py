"""Request statistics of the Wix API paths (the /_sandbox/ paths are not counted)."""

from __future__ import annotations

from collections import Counter, deque

from bulkops.sandbox.wire import JsonObject

DROPPED = "dropped"
MAX_REQUEST_TIMES = 100_000  # the most recent arrival times kept, to bound memory


class RequestStats:
    """Counts by status and endpoint, and arrival times on the sandbox clock."""

    def __init__(self) -> None:
        self.total = 0
        self.by_status: Counter[str] = Counter()
        self.by_endpoint: Counter[str] = Counter()
        self.request_times: deque[float] = deque(maxlen=MAX_REQUEST_TIMES)
        self.first_at: float | None = None
        self.last_at: float | None = None

    def arrived(self, endpoint: str, now: float) -> None:
        self.total += 1
        self.by_endpoint[endpoint] += 1
        self.request_times.append(now)
        self.first_at = now if self.first_at is None else self.first_at
        self.last_at = now

    def answered(self, status: int | str) -> None:
        """Record how a request ended: its HTTP status, or DROPPED for a closed connection."""
        self.by_status[str(status)] += 1

    def requests_per_second(self) -> float | None:
        """Arrivals per second between the first and the last one (None before two)."""
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return None
        return (self.total - 1) / (self.last_at - self.first_at)

    def snapshot(self, *, times: bool = True) -> JsonObject:
        """The counts, and with `times` the most recent arrival times (sandbox clock)."""
        snapshot: JsonObject = {
            "total": self.total,
            "by_status": dict(self.by_status),
            "by_endpoint": dict(self.by_endpoint),
            "first_request_at": self.first_at,
            "last_request_at": self.last_at,
            "requests_per_second": self.requests_per_second(),
        }
        if times:
            snapshot["request_times"] = list(self.request_times)
        return snapshot
