"""The progress line as tables: every wait explained, the deadline weighed, the rate clamped."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bulkops.engine import Progress
from bulkops.model import OpState
from bulkops.progress import describe
from bulkops.ratelimit import BudgetSnapshot

NOW = datetime(2026, 11, 29, 2, 17, 20, tzinfo=UTC).timestamp()

BUDGET = BudgetSnapshot(
    limit_per_second=2.0,  # 120/min
    current_per_second=2.0,
    achieved_per_second=1.5,  # 90/min
    requests=100,
    throttled=0,
    paused_until=None,
)
# 42 of 100 final after ten minutes: 0.07 rows/s, so the 58 left take 828 s.
BASE = Progress(
    counts={OpState.SUCCEEDED: 40, OpState.FAILED: 2, OpState.RUNNING: 4, OpState.PENDING: 54},
    total=100,
    budget=BUDGET,
    started_at=NOW - 600,
    finished_this_run=42,
)
# Rows and calls: 100 calls so far (invites share calls, so the two differ).
COUNTS = "42/100 done · 40 succeeded · 2 failed · 4 running · 54 pending · 100 calls"
RATE = "rate 90/min of 120/min"
# The line as it was before waits, pauses and deadlines were shown.
PLAIN = f"{COUNTS} · {RATE} · ETA 0:13:48"


def progress(budget: dict[str, Any] | None = None, **changes: Any) -> Progress:
    return replace(BASE, budget=replace(BUDGET, **(budget or {})), **changes)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (progress(), PLAIN),
        (progress(waiting={}), PLAIN),
        (progress(waiting={"settle": 0, "retry": 0, "elsewhere": 0}), PLAIN),
        # Every reason rows wait, known reasons in a fixed order.
        (
            progress(waiting={"elsewhere": 5, "retry": 3, "settle": 8}),
            f"{COUNTS} · {RATE} · 8 rows waiting to be looked up at Wix again · "
            "3 rows waiting to retry · 5 rows run by another process · ETA 0:13:48",
        ),
        (
            progress(waiting={"retry": 1}),
            f"{COUNTS} · {RATE} · 1 row waiting to retry · ETA 0:13:48",
        ),
        (
            progress(waiting={"lease": 2, "settle": 1}),
            f"{COUNTS} · {RATE} · 1 row waiting to be looked up at Wix again · "
            "2 rows waiting (lease) · ETA 0:13:48",
        ),
        (
            progress(budget={"paused_until": 123.0}),
            f"{COUNTS} · {RATE} · sending held back by Wix's Retry-After · ETA 0:13:48",
        ),
        # Wix unreachable: since when (local HH:MM) and for how long.
        (
            progress(paused_since=NOW - 190),
            f"{COUNTS} · {RATE} · paused: Wix unreachable since 02:14 (3m10s), probing"
            " · ETA 0:13:48",
        ),
        # A deadline the ETA meets.
        (
            progress(deadline=NOW + 3900),
            f"{COUNTS} · {RATE} · ETA 0:13:48, deadline 03:22 (in 1h05m)",
        ),
        # A deadline the ETA misses: 0.07 rows/s for 300 s finishes 21 of the 58.
        (
            progress(deadline=NOW + 300),
            f"{COUNTS} · {RATE} · cannot finish by 02:22 at this rate: "
            "about 37 rows will be left for the next run",
        ),
        # A deadline with no finishing rate yet: no ETA to weigh.
        (
            progress(deadline=NOW + 3900, finished_this_run=0),
            f"{COUNTS} · {RATE} · deadline 03:22 (in 1h05m)",
        ),
        # A deadline passed: nothing new starts, the 4 in flight still finish.
        (
            progress(deadline=NOW - 300),
            f"{COUNTS} · {RATE} · deadline 02:12 passed: no new operation starts, "
            "54 rows left for the next run",
        ),
        # Everything final: no ETA, whatever the deadline.
        (
            progress(
                counts={OpState.SUCCEEDED: 100}, finished_this_run=100, deadline=NOW + 60
            ),
            f"100/100 done · 100 succeeded · 100 calls · {RATE}",
        ),
        (progress(total=0, counts={}), "starting…"),
    ],
)
def test_describe(case: Progress, expected: str) -> None:
    assert describe(case, NOW, tz=UTC) == expected


@pytest.mark.parametrize(
    ("budget", "rate"),
    [
        # A window artifact above the budget is shown as the budget.
        ({"achieved_per_second": 2.4}, "rate 120/min of 120/min"),
        ({"achieved_per_second": 2.0}, "rate 120/min of 120/min"),
        ({"achieved_per_second": 0.0}, "rate 0/min of 120/min"),
        # The rest of the rate part as before: slowed after 429s, throttled answers.
        (
            {"achieved_per_second": 1.9, "current_per_second": 1.0, "throttled": 3},
            "rate 114/min of 120/min (slowed to 60/min after 429s), 3 throttled",
        ),
    ],
)
def test_rate(budget: dict[str, Any], rate: str) -> None:
    assert describe(progress(budget=budget), NOW, tz=UTC) == f"{COUNTS} · {rate} · ETA 0:13:48"


def test_calls_are_shown_once_any_was_made() -> None:
    """The budget counts calls, not rows: the line says how many calls carried the rows."""
    assert "· 1 call ·" in describe(progress(budget={"requests": 1}), NOW, tz=UTC)
    assert "call" not in describe(progress(budget={"requests": 0}), NOW, tz=UTC)


def test_everything_at_once() -> None:
    line = describe(
        progress(
            waiting={"settle": 8, "retry": 3},
            paused_since=NOW - 190,
            deadline=NOW + 300,
            budget={"achieved_per_second": 3.0, "throttled": 1},
        ),
        NOW,
        tz=UTC,
    )
    assert line == (
        f"{COUNTS} · rate 120/min of 120/min, 1 throttled · "
        "8 rows waiting to be looked up at Wix again · 3 rows waiting to retry · "
        "paused: Wix unreachable since 02:14 (3m10s), probing · "
        "cannot finish by 02:22 at this rate: about 37 rows will be left for the next run"
    )


def test_clock_times_are_local_to_the_given_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    line = describe(progress(paused_since=NOW - 190, deadline=NOW + 3900), NOW, tz=berlin)
    assert "since 03:14 (3m10s)" in line
    assert "deadline 04:22 (in 1h05m)" in line
