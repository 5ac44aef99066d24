"""`--finish-by` as tables: clock times, ISO date-times, durations, DST, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bulkops.deadline import describe_deadline, format_span, parse_finish_by
from bulkops.errors import ConfigError

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 29, 10, 2, tzinfo=UTC)
NOW_BERLIN = datetime(2026, 11, 29, 10, 2, tzinfo=BERLIN)  # CET, +01:00


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        # Clock times: the next occurrence after now, on now's wall clock.
        ("06:00", NOW, "2026-11-30T06:00:00+00:00"),  # passed today: tomorrow
        ("6:00", NOW, "2026-11-30T06:00:00+00:00"),
        ("11:00", NOW, "2026-11-29T11:00:00+00:00"),  # still ahead today
        ("10:02:30", NOW, "2026-11-29T10:02:30+00:00"),
        ("10:02", NOW, "2026-11-30T10:02:00+00:00"),  # exactly now is not after now
        ("00:00", NOW, "2026-11-30T00:00:00+00:00"),
        ("23:59:59", NOW, "2026-11-29T23:59:59+00:00"),
        ("1:30", NOW, "2026-11-30T01:30:00+00:00"),  # H:MM is a clock time, not a duration
        ("  06:00 ", NOW, "2026-11-30T06:00:00+00:00"),
        ("06:00", NOW_BERLIN, "2026-11-30T06:00:00+01:00"),  # local time of now's zone
        ("11:00", NOW_BERLIN, "2026-11-29T11:00:00+01:00"),
        # ISO 8601 date-times: without an offset, local time in now's zone.
        ("2026-11-30T06:00", NOW, "2026-11-30T06:00:00+00:00"),
        ("2026-11-30 06:00", NOW, "2026-11-30T06:00:00+00:00"),
        ("2026-11-30T06:00:30", NOW, "2026-11-30T06:00:30+00:00"),
        ("20261130T0600", NOW, "2026-11-30T06:00:00+00:00"),
        ("2026-11-30T06:00", NOW_BERLIN, "2026-11-30T06:00:00+01:00"),
        ("2026-11-30T06:00Z", NOW_BERLIN, "2026-11-30T07:00:00+01:00"),
        ("2026-11-30T06:00+01:00", NOW, "2026-11-30T05:00:00+00:00"),  # explicit offset
        ("2026-11-30T06:00-05:00", NOW_BERLIN, "2026-11-30T12:00:00+01:00"),
        # Durations from now, with unit letters.
        ("2h30m", NOW, "2026-11-29T12:32:00+00:00"),
        ("90m", NOW, "2026-11-29T11:32:00+00:00"),
        ("45s", NOW, "2026-11-29T10:02:45+00:00"),
        ("1h", NOW, "2026-11-29T11:02:00+00:00"),
        ("1.5h", NOW, "2026-11-29T11:32:00+00:00"),
        ("2 hours 30 minutes", NOW, "2026-11-29T12:32:00+00:00"),
        ("2d", NOW_BERLIN, "2026-12-01T10:02:00+01:00"),
    ],
)
def test_accepted_forms(text: str, now: datetime, expected: str) -> None:
    deadline = parse_finish_by(text, now)
    assert deadline.isoformat() == expected
    assert deadline.tzinfo is now.tzinfo


# Europe/Berlin: summer time starts 2026-03-29 02:00 CET (clocks to 03:00 CEST) and ends
# 2026-10-25 03:00 CEST (clocks back to 02:00 CET).
@pytest.mark.parametrize(
    ("text", "now", "expected", "hours_from_now"),
    [
        # Overnight into summer time: 06:00 tomorrow on the wall clock, six hours away (not 7).
        ("06:00", datetime(2026, 3, 28, 23, 0, tzinfo=BERLIN), "2026-03-29T06:00:00+02:00", 6),
        # Overnight out of summer time: eight hours away (not 7).
        ("06:00", datetime(2026, 10, 24, 23, 0, tzinfo=BERLIN), "2026-10-25T06:00:00+01:00", 8),
        # A time skipped in spring is the instant it would have been.
        ("02:30", datetime(2026, 3, 28, 23, 0, tzinfo=BERLIN), "2026-03-29T03:30:00+02:00", 3.5),
        (
            "2026-03-29T02:30",
            datetime(2026, 3, 28, 23, 0, tzinfo=BERLIN),
            "2026-03-29T03:30:00+02:00",
            3.5,
        ),
        # A time that happens twice: the second one, when the first has just passed.
        (
            "02:30",
            datetime(2026, 10, 25, 2, 40, tzinfo=BERLIN),  # 02:40 CEST, the first pass
            "2026-10-25T02:30:00+01:00",
            50 / 60,
        ),
        # A duration is elapsed time, not wall-clock time: 4h from 23:00 CET is 04:00 CEST.
        ("4h", datetime(2026, 3, 28, 23, 0, tzinfo=BERLIN), "2026-03-29T04:00:00+02:00", 4),
        ("4h", datetime(2026, 10, 24, 23, 0, tzinfo=BERLIN), "2026-10-25T02:00:00+01:00", 4),
    ],
)
def test_dst_crossing(text: str, now: datetime, expected: str, hours_from_now: float) -> None:
    deadline = parse_finish_by(text, now)
    assert deadline.isoformat() == expected
    assert deadline.timestamp() - now.timestamp() == pytest.approx(hours_from_now * 3600)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "2026-01-01T00:00",
            "--finish-by 2026-01-01T00:00 is in the past (now 2026-11-29 10:02 UTC)",
        ),
        ("2026-11-29T10:02", "2026-11-29T10:02 is in the past"),  # now itself is past
        ("2026-11-29T11:00+02:00", "is in the past"),  # 09:00 UTC
        ("0m", "--finish-by 0m: the duration must be more than zero"),
        ("0h0m0s", "the duration must be more than zero"),
        ("-1h", "the duration must be more than zero"),
        ("99999999w", "too far ahead"),
        ("25:00", "--finish-by 25:00: not a time of day (00:00 to 23:59:59)"),
        ("06:60", "not a time of day"),
        ("2026-11-30", "--finish-by 2026-11-30: give a time of day too, e.g. 2026-11-30T06:00"),
        ("2026-13-01T06:00", "--finish-by 2026-13-01T06:00: not an ISO 8601 date-time"),
        ("soon", "--finish-by 'soon': expected a clock time (06:00), a date-time"),
        ("", "expected a clock time"),
        ("6", "expected a clock time"),  # no unit: not a duration
        ("90", "expected a clock time"),
        ("2h30", "expected a clock time"),
        ("1:30:00:00", "expected a clock time"),
        ("tomorrow 6am", "expected a clock time"),
        ("2026-11-30x06:00", "expected a clock time"),
        ("1 fortnight", "expected a clock time"),
        ("0h\n0m", "--finish-by 0h 0m: the duration must be more than zero"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_finish_by(text, NOW)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_past_is_shown_in_nows_zone() -> None:
    with pytest.raises(ConfigError, match=r"\(now 2026-11-29 10:02 CET\)"):
        parse_finish_by("2026-11-29T09:00", NOW_BERLIN)


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_finish_by("06:00", datetime(2026, 11, 29, 10, 2))


T = NOW.timestamp()


@pytest.mark.parametrize(
    ("deadline", "expected"),
    [
        (T + 2 * 3600 + 14 * 60, "12:16 (in 2h14m)"),
        (T + 3600 + 5 * 60 + 59, "11:07 (in 1h05m)"),  # spans round down
        (T + 190, "10:05 (in 3m10s)"),
        (T + 45, "10:02 (in 45s)"),
        (T + 20 * 3600, "06:02 (in 20h00m)"),  # tomorrow, still within a day
        (T + 2 * 86400 + 3 * 3600, "2026-12-01 13:02 (in 2d03h)"),
        (T - 180, "09:59 (passed 3m00s ago)"),
    ],
)
def test_describe_deadline(deadline: float, expected: str) -> None:
    assert describe_deadline(deadline, T, tz=UTC) == expected


def test_describe_deadline_uses_the_given_zone() -> None:
    assert describe_deadline(T + 3600, T, tz=BERLIN) == "12:02 (in 1h00m)"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0s"), (59.9, "59s"), (60, "1m00s"), (3599, "59m59s"), (3600, "1h00m"),
     (86399, "23h59m"), (86400, "1d00h"), (-5, "0s")],
)
def test_format_span(seconds: float, expected: str) -> None:
    assert format_span(seconds) == expected


def test_a_duration_and_its_deadline_agree() -> None:
    deadline = parse_finish_by("1h05m", NOW)
    assert deadline - NOW == timedelta(hours=1, minutes=5)
    assert describe_deadline(deadline.timestamp(), T, tz=UTC) == "11:07 (in 1h05m)"
