"""Retry is data: which failures may be sent again, after how long, and what to tell the user
about the ones that retrying will never fix. Pure functions, except `retry_reads`, which waits
on an injected sleep."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from bulkops.errors import WixApiError, WixConnectionError, WixError

T = TypeVar("T")


class Verdict(StrEnum):
    RETRY = "retry"  # certainly not applied: send again after a backoff
    UNCERTAIN = "uncertain"  # may have been applied: reconcile before any resend
    FINAL = "final"  # retrying the same request will never fix it


# Statuses with a verdict of their own. Every other status falls back on its class below.
_BY_STATUS: dict[int, Verdict] = {
    # The server gave up waiting for the request; it may have acted on what had arrived.
    408: Verdict.UNCERTAIN,
    # Refused by the rate limiter before any work was done.
    429: Verdict.RETRY,
    # Failed inside the server: the effect may have been applied before the failure.
    500: Verdict.UNCERTAIN,
    # A gateway lost the upstream's answer, not necessarily its effect.
    502: Verdict.UNCERTAIN,
    # Unavailable: turned away at the door, nothing was done.
    503: Verdict.RETRY,
    # A gateway stopped waiting; the upstream may still have finished the work.
    504: Verdict.UNCERTAIN,
}

# By status class (status // 100), for statuses not listed above.
_BY_CLASS: dict[int, Verdict] = {
    # A success we could not read (INVALID_RESPONSE): it may well have happened.
    2: Verdict.UNCERTAIN,
    # The request itself is wrong, or the world is (428): the same request fails the same way.
    4: Verdict.FINAL,
    # Some other server error: assume it may have acted.
    5: Verdict.UNCERTAIN,
}

# Anything else (an unexpected redirect, a status out of range): reconciling costs a look-up,
# guessing wrong costs a duplicate or a lost operation.
_UNLISTED_STATUS = Verdict.UNCERTAIN

# No answer at all, keyed by whether the request may have left (WixTimeout always has).
_BY_SENT: dict[bool, Verdict] = {
    # The connection was never made: the request certainly never reached Wix.
    False: Verdict.RETRY,
    # It left and no answer came back (dropped connection, timeout): it may have been applied.
    True: Verdict.UNCERTAIN,
}


def classify(error: WixError) -> Verdict:
    """What a failed call means for the operation: resend, reconcile first, or give up."""
    if isinstance(error, WixApiError):
        by_status = _BY_STATUS.get(error.status)
        if by_status is not None:
            return by_status
        return _BY_CLASS.get(error.status // 100, _UNLISTED_STATUS)
    if isinstance(error, WixConnectionError):
        return _BY_SENT[error.sent]
    # A WixError of no known kind: the request may have left, so reconcile.
    return Verdict.UNCERTAIN


# Past 2**62 the exponent only grows the number; the cap has long since won.
_MAX_EXPONENT = 62


def backoff_delay(
    attempt: int,
    *,
    base: float = 1.0,
    cap: float = 60.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempt-1))).

    Full jitter spreads the retries of many operations that failed together (one burst of
    429s or 503s) over the whole interval, instead of sending them back in lockstep.
    `attempt` counts from 1: the delay before the second try is drawn for attempt 1.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, not {attempt}")
    exponent = min(attempt - 1, _MAX_EXPONENT)
    return rand() * min(cap, base * 2.0**exponent)


def retry_delay(
    error: WixError,
    attempt: int,
    *,
    base: float = 1.0,
    cap: float = 60.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before sending again: the backoff, or longer if Wix said Retry-After."""
    backoff = backoff_delay(attempt, base=base, cap=cap, rand=rand)
    retry_after = error.retry_after if isinstance(error, WixApiError) else None
    return max(retry_after or 0.0, backoff)


async def _asyncio_sleep(seconds: float) -> None:
    # Imported here: this module is on every command's path (settings), and most commands
    # never wait (asyncio alone is a fifth of `status`'s start-up).
    import asyncio

    await asyncio.sleep(seconds)


async def retry_reads(
    fn: Callable[[], Awaitable[T]],
    *,
    max_attempts: int,
    base: float = 1.0,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    rand: Callable[[], float] = random.random,
) -> T:
    """Call an idempotent look-up (Query Sites, roles) until it answers.

    A read changes nothing, so an UNCERTAIN failure is as safe to repeat as a RETRY one; a
    FINAL failure is raised at once, and the last failure after `max_attempts` calls. Each call
    of `fn` is one request, so it takes its own token from the budget. `sleep`: how to wait
    (seconds; default asyncio.sleep).
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
    attempt = 1
    while True:
        try:
            return await fn()
        except WixError as error:
            if attempt >= max_attempts or classify(error) is Verdict.FINAL:
                raise
            await (sleep or _asyncio_sleep)(retry_delay(error, attempt, base=base, rand=rand))
        attempt += 1


# The fewest tries of one read before the first write (a listing pass, the roles call, a zone):
# a read changes nothing, so even a run that allows one send per row waits out a short burst of
# 429s or 5xx there rather than stopping.
READ_ATTEMPTS = 5


@dataclass(frozen=True)
class ReadRetry:
    """How the reads of the checks before the first write are retried: up to `attempts` calls,
    with full-jitter backoff from `base` seconds (`retry_reads`)."""

    attempts: int = READ_ATTEMPTS
    base: float = 1.0

    @classmethod
    def allowing(cls, max_attempts: int, base: float) -> ReadRetry:
        """A run's reads: as many tries as it allows a send (--max-attempts), at least
        READ_ATTEMPTS."""
        return cls(attempts=max(READ_ATTEMPTS, max_attempts), base=base)

    async def __call__(self, fn: Callable[[], Awaitable[T]]) -> T:
        """`fn()`'s answer; raises what `retry_reads` raises."""
        return await retry_reads(fn, max_attempts=self.attempts, base=self.base)


# The reads of a caller that has no run's settings (tests, tools): READ_ATTEMPTS tries from 1 s.
DEFAULT_READS = ReadRetry()


# Actionable hints for failures that retrying will not fix, by status. Hints for a code of one
# action family's calls are that family's (`ActionFamily.hint`), and come first.
_HINT_BY_STATUS: dict[int, str] = {
    400: "Wix refused the request as invalid: check this row's values",
    401: "check WIX_API_KEY: the key is missing, mistyped or revoked",
    403: "the key lacks permission for this call: grant it in the API key's permissions",
    404: "check the ids in this row: Wix does not know them",
    428: "fix the account state; retrying will not help",
}


def hint_for(error: WixApiError) -> str | None:
    """A short, actionable hint for a final failure's status, or None when there is nothing to
    add."""
    return _HINT_BY_STATUS.get(error.status)
