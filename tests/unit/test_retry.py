"""The retry policy as tables: classification, backoff bounds, Retry-After, read retries."""

from __future__ import annotations

import pytest

from bulkops.actions import family_of
from bulkops.errors import WixApiError, WixConnectionError, WixError, WixTimeout
from bulkops.model import Action
from bulkops.retry import (
    READ_ATTEMPTS,
    ReadRetry,
    Verdict,
    backoff_delay,
    classify,
    hint_for,
    retry_delay,
    retry_reads,
)

RETRY, UNCERTAIN, FINAL = Verdict.RETRY, Verdict.UNCERTAIN, Verdict.FINAL


def api_error(
    status: int, code: str | None = None, retry_after: float | None = None
) -> WixApiError:
    return WixApiError(status, "message", code=code, retry_after=retry_after)


def case_id(value: object) -> str:
    if isinstance(value, WixApiError):
        return f"{value.status}-{value.code}" if value.code else str(value.status)
    if isinstance(value, WixConnectionError):
        return f"{type(value).__name__}-sent={value.sent}"
    return str(value) if isinstance(value, Verdict) else type(value).__name__


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (api_error(429), RETRY),
        (api_error(503), RETRY),
        (api_error(500), UNCERTAIN),
        (api_error(502), UNCERTAIN),
        (api_error(504), UNCERTAIN),
        (api_error(408), UNCERTAIN),
        (api_error(507), UNCERTAIN),  # an unlisted 5xx
        (api_error(400), FINAL),
        (api_error(401), FINAL),
        (api_error(403, "SITE_TRANSFER_NOT_ALLOWED"), FINAL),
        (api_error(404), FINAL),
        (api_error(409), FINAL),
        (api_error(428, "SITE_TRANSFER_NOT_SUPPORTED"), FINAL),
        (api_error(451), FINAL),  # an unlisted 4xx
        (api_error(200, "INVALID_RESPONSE"), UNCERTAIN),
        (api_error(302), UNCERTAIN),  # a redirect that was not followed
        (WixConnectionError("connect failed", sent=False), RETRY),
        (WixConnectionError("connection reset", sent=True), UNCERTAIN),
        (WixTimeout("no answer in 30s"), UNCERTAIN),
        (WixError("unknown trouble"), UNCERTAIN),
    ],
    ids=case_id,
)
def test_classify_tells_resend_from_reconcile_from_give_up(
    error: WixError, verdict: Verdict
) -> None:
    assert classify(error) is verdict


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (1, 0.0, 0.0),  # full jitter reaches down to zero
        (1, 0.999, 0.999),  # ...and up to the whole ceiling: base * 2**0
        (2, 0.999, 1.998),
        (3, 0.5, 2.0),
        (6, 0.999, 31.968),
        (7, 0.999, 59.94),  # 64 > cap: the cap wins
        (50, 0.999, 59.94),
        (5000, 0.999, 59.94),  # no overflow however many attempts
    ],
)
def test_backoff_is_exponential_with_full_jitter_and_a_cap(
    attempt: int, rand: float, expected: float
) -> None:
    assert backoff_delay(attempt, base=1.0, cap=60.0, rand=lambda: rand) == pytest.approx(expected)


def test_backoff_scales_with_base() -> None:
    assert backoff_delay(3, base=0.5, rand=lambda: 1.0) == pytest.approx(2.0)


@pytest.mark.parametrize("attempt", [0, -1])
def test_backoff_rejects_attempts_below_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="counts from 1"):
        backoff_delay(attempt)


@pytest.mark.parametrize(
    ("error", "attempt", "expected"),
    [
        (api_error(429, retry_after=30.0), 1, 30.0),  # Retry-After longer than the backoff wins
        (api_error(429, retry_after=0.5), 4, 4.0),  # a backoff longer than Retry-After wins
        (api_error(503), 2, 1.0),  # no Retry-After: the backoff alone
        (WixConnectionError("connect failed", sent=False), 3, 2.0),
    ],
)
def test_retry_delay_honours_retry_after_but_never_waits_less_than_the_backoff(
    error: WixError, attempt: int, expected: float
) -> None:
    assert retry_delay(error, attempt, rand=lambda: 0.5) == pytest.approx(expected)


class FlakyRead:
    """A read that fails with the given errors, in order, then answers "ok"."""

    def __init__(self, *errors: WixError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.mark.parametrize(
    ("errors", "max_attempts", "outcome", "delays"),
    [
        ((), 3, "ok", []),
        ((api_error(429), api_error(503)), 3, "ok", [0.5, 1.0]),  # RETRY verdicts
        ((api_error(500), WixTimeout("t")), 3, "ok", [0.5, 1.0]),  # UNCERTAIN is safe for reads
        ((api_error(429, retry_after=7.0),), 3, "ok", [7.0]),
        ((api_error(404),), 3, WixApiError, []),  # FINAL: raised at once
        ((api_error(503), api_error(503), api_error(503)), 3, WixApiError, [0.5, 1.0]),
        ((WixConnectionError("refused", sent=False),) * 2, 2, WixConnectionError, [0.5]),
    ],
)
async def test_retry_reads_retries_all_but_final_failures_up_to_max_attempts(
    errors: tuple[WixError, ...],
    max_attempts: int,
    outcome: str | type[Exception],
    delays: list[float],
) -> None:
    read, sleep = FlakyRead(*errors), RecordingSleep()

    async def run() -> str:
        return await retry_reads(read, max_attempts=max_attempts, sleep=sleep, rand=lambda: 0.5)

    if isinstance(outcome, str):
        assert await run() == outcome
    else:
        with pytest.raises(outcome):
            await run()
    assert sleep.delays == pytest.approx(delays)
    assert read.calls == len(delays) + 1


async def test_retry_reads_lets_other_exceptions_through_untouched() -> None:
    async def broken() -> str:
        raise KeyError("a bug, not a Wix failure")

    with pytest.raises(KeyError):
        await retry_reads(broken, max_attempts=5, sleep=RecordingSleep())


@pytest.mark.parametrize(("max_attempts", "tries"),
                         [(1, READ_ATTEMPTS), (READ_ATTEMPTS, READ_ATTEMPTS), (30, 30)])
async def test_a_runs_reads_are_tried_as_often_as_its_sends_and_at_least_read_attempts(
    max_attempts: int, tries: int,
) -> None:
    """A burst of 429s before the first write is waited out as patiently as the run allows a
    send (--max-attempts), and never fewer than READ_ATTEMPTS times."""
    retry = ReadRetry.allowing(max_attempts, base=0.0)
    read = FlakyRead(*[api_error(429)] * (tries - 1))
    assert await retry(read) == "ok"
    assert read.calls == tries
    with pytest.raises(WixApiError):
        await retry(FlakyRead(*[api_error(429)] * tries))


async def test_retry_reads_needs_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await retry_reads(FlakyRead(), max_attempts=0)


@pytest.mark.parametrize(
    ("error", "hint_contains"),
    [
        (api_error(401), "WIX_API_KEY"),
        (api_error(403), "lacks permission"),
        (api_error(428), "retrying will not help"),
        (api_error(400), "this row's values"),  # a plain 400: something in the row
    ],
)
def test_hint_for_known_final_failures(error: WixApiError, hint_contains: str) -> None:
    hint = hint_for(error)
    assert hint is not None
    assert hint_contains in hint


@pytest.mark.parametrize(
    ("code", "hint_contains"),
    [
        ("SITE_TRANSFER_NOT_ALLOWED", "may not transfer"),
        ("SITE_TRANSFER_NOT_SUPPORTED", "cancel the site's paid services first"),
        ("TARGET_ACCOUNT_ID_NOT_FOUND", "to_account"),
        ("SITE_NOT_FOUND", "source account"),
    ],
)
def test_transfer_errors_have_the_transfer_family_hints(code: str, hint_contains: str) -> None:
    """Codes of one action family carry that family's hint, more precise than the status's."""
    hint = family_of(Action.TRANSFER_SITE).hint(code)
    assert hint is not None and hint_contains in hint
    assert family_of(Action.CREATE_SITE).hint(code) is None


@pytest.mark.parametrize("error", [api_error(409, "SOMETHING_ELSE")])
def test_no_hint_when_there_is_nothing_useful_to_say(error: WixApiError) -> None:
    assert hint_for(error) is None


@pytest.mark.parametrize(
    ("code", "hint_contains"),
    [("ROLE_NOT_RESOLVED", "separated by ';'"), ("INVITE_FAILED", "e-mail address")],
)
def test_hint_for_rows_wix_refused_inside_an_answer(code: str, hint_contains: str) -> None:
    hint = family_of(Action.ACCOUNT_INVITE).hint(code)
    assert hint is not None and hint_contains in hint


def test_no_hint_for_an_unknown_rejection() -> None:
    assert family_of(Action.ACCOUNT_INVITE).hint("SOMETHING_ELSE") is None
