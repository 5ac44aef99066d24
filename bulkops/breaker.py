"""Failure breaker: stop spending the request budget on a lost cause.

Two triggers. A refused key (401) can only be fixed by the user: the job stops at once. A storm of
one final error (same status and Wix code) on most of an action's recent rows — every transfer
answering SITE_TRANSFER_NOT_ALLOWED, a 403 on every invite — pauses the job so the cause can be
fixed; `resume` continues from there. Windows are kept per action, so a job whose creates all
succeed while every one of its transfers is refused still trips.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass

from bulkops.model import Action, OpError

FATAL_STATUSES = frozenset({401})
# A key without permission for a call answers 403 to every row of that action: a short run of
# them, with nothing else in between, is enough to pause instead of waiting for a full window.
FORBIDDEN = 403
FORBIDDEN_RUN = 5

Failure = tuple[int, str]  # (HTTP status or 0, Wix code or "")


@dataclass(frozen=True)
class BreakerSettings:
    window: int = 20  # recent final outcomes of one action looked at
    ratio: float = 0.8  # share of that window one error must reach to trip


class FailureBreaker:
    def __init__(self, settings: BreakerSettings | None = None) -> None:
        self._settings = settings or BreakerSettings()
        self._recent: defaultdict[Action, deque[Failure | None]] = defaultdict(
            lambda: deque(maxlen=self._settings.window)
        )
        self.reason: str | None = None
        self.storm: tuple[Action, Failure] | None = None  # what tripped it, for a storm

    @property
    def tripped(self) -> bool:
        return self.reason is not None

    @property
    def window(self) -> int:
        return self._settings.window

    def is_fatal(self, status: int | None) -> bool:
        return status in FATAL_STATUSES

    def is_storm_error(self, action: Action, error: OpError | None) -> bool:
        return error is not None and self.storm == (action, _failure(error))

    def trip(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def record_success(self, action: Action) -> None:
        self._recent[action].append(None)

    def record_failure(self, action: Action, error: OpError) -> None:
        """An `action` row failed for good. Trips when one error fills most of a full window."""
        recent = self._recent[action]
        recent.append(_failure(error))
        if self.tripped:
            return
        if error.status == FORBIDDEN and self._ends_with_run(recent, _failure(error)):
            self._trip_storm(action, _failure(error), FORBIDDEN_RUN, FORBIDDEN_RUN)
            return
        if len(recent) < self._settings.window:
            return
        failures = Counter(f for f in recent if f is not None)
        if not failures:
            return
        failure, seen = failures.most_common(1)[0]
        if seen >= self._settings.ratio * len(recent):
            self._trip_storm(action, failure, seen, len(recent))

    @staticmethod
    def _ends_with_run(recent: deque[Failure | None], failure: Failure) -> bool:
        tail = list(recent)[-FORBIDDEN_RUN:]
        return len(tail) == FORBIDDEN_RUN and all(f == failure for f in tail)

    def _trip_storm(self, action: Action, failure: Failure, seen: int, out_of: int) -> None:
        self.storm = (action, failure)
        status, code = failure
        self.trip(
            f"{seen} of the last {out_of} {action.value} operations failed with "
            f"HTTP {status} {code}".rstrip()
            + "; fix the cause, then run `bulkops resume`"
        )


def _failure(error: OpError) -> Failure:
    return (error.status or 0, error.code or "")
