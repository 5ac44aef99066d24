"""The sandbox's GUIDs and instants: the shapes Wix uses (wix-api.md), built cheaply."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

from bulkops.sandbox.wire import format_instant, is_guid, new_guid, parse_instant


def test_new_guids_are_random_version_4_guids_as_uuid_writes_them() -> None:
    made = [new_guid() for _ in range(2000)]
    assert len(set(made)) == len(made)
    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text and is_guid(text)
    # Every hex digit shows up in every free position: no position is stuck.
    for position in (0, 9, 15, 17, 35):
        assert {text[position] for text in made} == set("0123456789abcdef")
    assert {text[19] for text in made} == set("89ab")


def test_instants_are_utc_with_milliseconds_truncated_and_a_z() -> None:
    rng = random.Random(7)
    plus_two = timezone(timedelta(hours=2))
    for _ in range(5000):
        moment = datetime.fromtimestamp(rng.uniform(0, 4e9), UTC)
        utc = moment.astimezone(UTC)
        expected = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
        assert format_instant(moment) == expected
        assert format_instant(moment.astimezone(plus_two)) == expected
    exact = datetime(2024, 5, 1, 12, 0, 0, 999_999, tzinfo=UTC)
    assert format_instant(exact) == "2024-05-01T12:00:00.999Z"  # truncated, never rounded up
    assert format_instant(exact.replace(microsecond=0)) == "2024-05-01T12:00:00.000Z"
    assert parse_instant(format_instant(exact)) == exact.replace(microsecond=999_000)
