"""The failure breaker: a refused key stops at once; one error on most of an action's rows trips."""

from bulkops.breaker import BreakerSettings, FailureBreaker
from bulkops.model import Action, OpError

NOT_ALLOWED = OpError(code="SITE_TRANSFER_NOT_ALLOWED", message="no", status=403)
BAD_TEMPLATE = OpError(code=None, message="bad template", status=400)
NO_TARGET = OpError(code="TARGET_ACCOUNT_ID_NOT_FOUND", message="no such account", status=428)


def breaker(window: int = 10, ratio: float = 0.8) -> FailureBreaker:
    return FailureBreaker(BreakerSettings(window=window, ratio=ratio))


def test_401_is_fatal_and_403_is_not() -> None:
    b = breaker()
    assert b.is_fatal(401)
    assert not b.is_fatal(403)
    assert not b.is_fatal(None)


def test_one_error_on_a_full_window_of_one_action_trips_with_a_reason() -> None:
    b = breaker(window=10)
    for _ in range(9):
        b.record_failure(Action.TRANSFER_SITE, NO_TARGET)
        assert not b.tripped  # the window is not full yet
    b.record_failure(Action.TRANSFER_SITE, NO_TARGET)
    assert b.tripped
    assert b.reason is not None and "TARGET_ACCOUNT_ID_NOT_FOUND" in b.reason
    assert "transfer_site" in b.reason
    assert b.is_storm_error(Action.TRANSFER_SITE, NO_TARGET)
    assert not b.is_storm_error(Action.CREATE_SITE, NO_TARGET)
    assert not b.is_storm_error(Action.TRANSFER_SITE, BAD_TEMPLATE)


def test_successes_of_other_actions_do_not_dilute_an_actions_storm() -> None:
    b = breaker(window=10)
    for _ in range(10):
        b.record_success(Action.CREATE_SITE)
        b.record_failure(Action.TRANSFER_SITE, NOT_ALLOWED)
    assert b.tripped


def test_mixed_failures_below_the_ratio_do_not_trip() -> None:
    b = breaker(window=10, ratio=0.8)
    for i in range(30):
        if i % 3 == 0:
            b.record_success(Action.CREATE_SITE)
        else:
            b.record_failure(Action.CREATE_SITE, NOT_ALLOWED if i % 2 else BAD_TEMPLATE)
    assert not b.tripped


def test_successes_inside_the_window_keep_it_closed() -> None:
    b = breaker(window=10, ratio=0.8)
    for i in range(40):
        if i % 3 == 0:
            b.record_success(Action.SITE_INVITE)
        else:
            b.record_failure(Action.SITE_INVITE, NOT_ALLOWED)
    assert not b.tripped  # any 10 in a row hold at most 7 failures: 70% < 80%


def test_a_short_run_of_403s_on_one_action_trips_without_a_full_window() -> None:
    """A key lacking a permission answers 403 to every row of that action: stop early."""
    b = breaker(window=20)
    forbidden = OpError(code="PERMISSION_DENIED", message="no", status=403)
    for _ in range(4):
        b.record_failure(Action.SITE_INVITE, forbidden)
    assert not b.tripped
    b.record_failure(Action.SITE_INVITE, forbidden)
    assert b.tripped and b.reason is not None and "403" in b.reason


def test_403s_broken_by_a_success_do_not_trip_early() -> None:
    b = breaker(window=20)
    for i in range(12):
        if i % 4 == 3:
            b.record_success(Action.SITE_INVITE)
        else:
            b.record_failure(Action.SITE_INVITE, NOT_ALLOWED)
    assert not b.tripped
