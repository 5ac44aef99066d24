"""`--finish-by TIME`: the instant after which no new operation starts (for nightly cron runs).

Date-times are read by python-dateutil's ISO 8601 parser and durations by pytimeparse; this
module only decides which of the two a text is, and what a bare clock time means.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from dateutil.parser import isoparse
from pytimeparse.timeparse import timeparse as parse_duration

from bulkops.errors import ConfigError

OPTION = "--finish-by"
FORMS = "a clock time (06:00), a date-time (2026-11-30T06:00) or a duration (2h30m)"

# `6:00`, `06:00`, `06:00:30`: a time of day on the local clock.
_CLOCK = re.compile(r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?")
# An ISO 8601 date and time: extended (`2026-11-30T06:00`, `T` or a space between) or basic
# (`20261130T0600`); the time part, with any offset, is checked by dateutil.
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\S+|\d{8}[Tt]\S+")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}|\d{8}")
# Durations need a unit letter (`90m`, not `90`); `1:30:00` is a clock time, never a duration.
_DURATION = re.compile(r"[^:]*[A-Za-z][^:]*")


def parse_finish_by(text: str, now: datetime) -> datetime:
    """The deadline `text` names, as a timezone-aware datetime in `now`'s timezone.

    Accepted forms:

    - a clock time, ``06:00``, ``6:00`` or ``06:00:30``: its next occurrence after `now` on the
      wall clock of `now`'s timezone (tomorrow if that time has passed today). Days are
      calendar days, so a DST change overnight does not shift it; a time skipped by a
      spring-forward change means the instant it would have been (02:30 → 03:30), and a time
      that happens twice in an autumn night is its next occurrence;
    - an ISO 8601 date-time, ``2026-11-30T06:00``, ``2026-11-30 06:00``, ``20261130T0600``,
      optionally with seconds and an offset (``Z``, ``+01:00``); without an offset it is local
      time in `now`'s timezone;
    - a duration from `now` with unit letters: ``2h30m``, ``90m``, ``45s``, ``1h``, ``1.5h``,
      ``2d``, ``2 hours 30 minutes``. Forms with colons (``1:30``) are clock times.

    Raises ConfigError, with one line naming the option, for anything else, for a date-time
    that is not after `now`, and for a duration that is not more than zero.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("parse_finish_by needs a timezone-aware `now`")
    spec = " ".join(text.split())  # one line in any message
    clock = _CLOCK.fullmatch(spec)
    if clock:
        return _next_occurrence(_time_of_day(spec, clock), now)
    if _DATE_TIME.fullmatch(spec):
        return _date_time(spec, now)
    if _DATE_ONLY.fullmatch(spec):
        raise ConfigError(f"{OPTION} {spec}: give a time of day too, e.g. {spec}T06:00")
    if _DURATION.fullmatch(spec):
        return _after_duration(spec, now)
    raise ConfigError(f"{OPTION} {text!r}: expected {FORMS}")


def describe_deadline(deadline: float, now: float, *, tz: tzinfo | None = None) -> str:
    """The deadline for messages: ``06:00 (in 2h14m)``; one already reached reads
    ``06:00 (passed 3m ago)``. Times are unix seconds, shown in `tz` (default: this machine's
    local timezone)."""
    shown = format_deadline(deadline, now, tz=tz)
    if deadline > now:
        return f"{shown} (in {format_span(deadline - now)})"
    return f"{shown} (passed {format_span(now - deadline)} ago)"


def format_deadline(deadline: float, now: float, *, tz: tzinfo | None = None) -> str:
    """``06:00`` within a day of `now`, else ``2026-11-30 06:00``; in `tz` (default: local)."""
    pattern = "%H:%M" if abs(deadline - now) < 24 * 3600 else "%Y-%m-%d %H:%M"
    return local_time(deadline, tz).strftime(pattern)


def format_span(seconds: float) -> str:
    """A span for people: ``45s``, ``3m10s``, ``1h05m``, ``2d03h`` (rounded down)."""
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def local_time(timestamp: float, tz: tzinfo | None = None) -> datetime:
    """Unix seconds as an aware datetime in `tz`, or in this machine's local timezone."""
    if tz is None:
        return datetime.fromtimestamp(timestamp).astimezone()
    return datetime.fromtimestamp(timestamp, tz)


# -- the forms ---------------------------------------------------------------------------------


def _time_of_day(spec: str, clock: re.Match[str]) -> time:
    hour, minute = int(clock["hour"]), int(clock["minute"])
    second = int(clock["second"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ConfigError(f"{OPTION} {spec}: not a time of day (00:00 to 23:59:59)")
    return time(hour, minute, second)


def _next_occurrence(wall: time, now: datetime) -> datetime:
    """The first instant after `now` whose wall-clock time in `now`'s timezone is `wall`.

    Compared as instants (timestamps): datetimes sharing a tzinfo compare by wall time alone,
    which is wrong across a DST change."""
    tz = now.tzinfo
    assert tz is not None
    today = now.astimezone(tz).date()
    for day in (today, today + timedelta(days=1), today + timedelta(days=2)):
        for instant in _instants(day, wall, tz):
            if instant.timestamp() > now.timestamp():
                return instant
    raise AssertionError("a time of day recurs within two days")  # pragma: no cover


def _instants(day: date, wall: time, tz: tzinfo) -> list[datetime]:
    """The instants, earliest first, at which the wall clock in `tz` shows `wall` on `day`: one,
    two in an autumn DST overlap, and for a time skipped in spring the instant it would have
    been (the offset before the change, which lands after the gap)."""
    found: dict[float, datetime] = {}
    for fold in (0, 1):
        candidate = datetime.combine(day, wall, tz).replace(fold=fold)
        instant = candidate.astimezone(UTC).astimezone(tz)
        if (instant.date(), instant.time()) == (day, wall):
            found[instant.timestamp()] = instant
    if not found:  # skipped by a spring-forward change
        instant = datetime.combine(day, wall, tz).astimezone(UTC).astimezone(tz)
        found[instant.timestamp()] = instant
    return [found[key] for key in sorted(found)]


def _date_time(spec: str, now: datetime) -> datetime:
    try:
        parsed = isoparse(spec)
    except (ValueError, OverflowError) as exc:
        raise ConfigError(f"{OPTION} {spec}: not an ISO 8601 date-time ({exc})") from None
    tz = now.tzinfo
    assert tz is not None
    if parsed.tzinfo is None:
        # Local time in `now`'s zone; through UTC so that a skipped time becomes a real one.
        parsed = parsed.replace(tzinfo=tz).astimezone(UTC)
    deadline = parsed.astimezone(tz)
    if deadline.timestamp() <= now.timestamp():
        shown_now = now.strftime("%Y-%m-%d %H:%M %Z").strip()
        raise ConfigError(f"{OPTION} {spec} is in the past (now {shown_now})")
    return deadline


def _after_duration(spec: str, now: datetime) -> datetime:
    seconds = parse_duration(spec)
    if seconds is None:
        raise ConfigError(f"{OPTION} {spec!r}: expected {FORMS}")
    if seconds <= 0:
        raise ConfigError(f"{OPTION} {spec}: the duration must be more than zero")
    tz = now.tzinfo
    assert tz is not None
    try:
        # Elapsed time, so added in UTC: aware arithmetic in one zone is wall-clock arithmetic.
        return (now.astimezone(UTC) + timedelta(seconds=seconds)).astimezone(tz)
    except OverflowError:
        raise ConfigError(f"{OPTION} {spec}: too far ahead") from None
