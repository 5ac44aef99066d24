"""Failure breaker: stop spending the request budget on a lost cause.

Two triggers. A refused key (401) can only be fixed by the user: the job stops at once. A storm of
one final error (same status and Wix code) on most rows of a recent window — every transfer
answering SITE_TRANSFER_NOT_ALLOWED, a 403 on everything — pauses the job so the cause can be
fixed; `resume` continues from there.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

FATAL_STATUSES = frozenset({401})


@dataclass(frozen=True)
class BreakerSettings:
    window: int = 20  # recent final outcomes looked at
    ratio: float = 0.8  # share of that window one error must reach to trip


class FailureBreaker:
    def __init__(self, settings: BreakerSettings | None = None) -> None:
        self._settings = settings or BreakerSettings()
        self._recent: deque[tuple[int, str] | None] = deque(maxlen=self._settings.window)
        self.reason: str | None = None

    @property
    def tripped(self) -> bool:
        return self.reason is not None

    def is_fatal(self, status: int | None) -> bool:
        return status in FATAL_STATUSES

    def trip(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def record_success(self) -> None:
        self._recent.append(None)

    def record_failure(self, status: int | None, code: str | None) -> None:
        """A row failed for good. Trips when one error fills most of a full window."""
        self._recent.append((status or 0, code or ""))
        if len(self._recent) < self._settings.window:
            return
        failures = Counter(e for e in self._recent if e is not None)
        if not failures:
            return
        error, seen = failures.most_common(1)[0]
        if seen >= self._settings.ratio * len(self._recent):
            status_text, code_text = error
            self.trip(
                f"{seen} of the last {len(self._recent)} operations failed with "
                f"HTTP {status_text} {code_text}".rstrip()
                + "; fix the cause, then run `bulkops resume`"
            )
