"""Live progress: a refreshing panel on a terminal, plain periodic lines elsewhere (CI, cron)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import tzinfo
from typing import TextIO

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from bulkops.deadline import describe_deadline, format_deadline, format_span, local_time
from bulkops.engine import Progress
from bulkops.model import FINAL_STATES, OpState
from bulkops.ratelimit import BudgetSnapshot

STATE_ORDER = (
    OpState.SUCCEEDED, OpState.FAILED, OpState.BLOCKED, OpState.RUNNING, OpState.UNKNOWN,
    OpState.PENDING, OpState.CANCELLED,
)
# Why rows wait (`Progress.waiting`'s keys), in the order shown.
WAIT_REASONS = {
    "settle": "waiting to be looked up at Wix again",
    "retry": "waiting to retry",
    "elsewhere": "run by another process",
}
WAIT_ORDER = tuple(WAIT_REASONS)


def describe(progress: Progress, now: float, *, tz: tzinfo | None = None) -> str:
    """One line: counts per state, rate against the budget, why rows wait, ETA and deadline.

    Pure: `now` is unix seconds; clock times are shown in `tz` (default: the local timezone).
    """
    if not progress.total:
        return "starting…"
    counts = progress.counts
    done = sum(counts.get(s, 0) for s in FINAL_STATES)
    parts = [f"{done}/{progress.total} done"]
    parts += [f"{counts[s]} {s.value}" for s in STATE_ORDER if counts.get(s)]
    if progress.budget.requests:
        # Rows and calls differ once invites share calls: both are shown.
        parts.append(_calls(progress.budget.requests))
    parts.append(_rate(progress.budget))
    parts += _waits(progress)
    if progress.paused_since is not None:
        parts.append(_paused(progress.paused_since, now, tz))
    finish = _finish(progress, now, progress.total - done, tz)
    if finish:
        parts.append(finish)
    return " · ".join(parts)


def _calls(count: int) -> str:
    return f"{count} call" if count == 1 else f"{count} calls"


def _rate(budget: BudgetSnapshot) -> str:
    # The achieved rate is measured over a sliding window; at its edges it can read above the
    # budget for a moment. Nothing is sent faster than the budget, so never show more.
    achieved = min(budget.achieved_per_second, budget.limit_per_second)
    rate = f"rate {achieved * 60:.0f}/min of {budget.limit_per_second * 60:.0f}/min"
    if budget.current_per_second < budget.limit_per_second * 0.999:
        rate += f" (slowed to {budget.current_per_second * 60:.0f}/min after 429s)"
    if budget.throttled:
        rate += f", {budget.throttled} throttled"
    return rate


def _waits(progress: Progress) -> list[str]:
    """A part per reason rows are waiting, known reasons first, and a Retry-After pause."""
    waits = [
        f"{_rows(rows)} {WAIT_REASONS.get(reason, f'waiting ({reason})')}"
        for reason, rows in sorted(progress.waiting.items(), key=_wait_order)
        if rows
    ]
    if progress.budget.paused_until is not None:
        waits.append("sending held back by Wix's Retry-After")
    return waits


def _wait_order(item: tuple[str, int]) -> tuple[int, str]:
    reason = item[0]
    return (WAIT_ORDER.index(reason) if reason in WAIT_ORDER else len(WAIT_ORDER), reason)


def _paused(since: float, now: float, tz: tzinfo | None) -> str:
    clock = local_time(since, tz).strftime("%H:%M")
    return f"paused: Wix unreachable since {clock} ({format_span(now - since)}), probing"


def _finish(progress: Progress, now: float, remaining: int, tz: tzinfo | None) -> str | None:
    """ETA at the rate rows have finished in this run, weighed against any deadline."""
    if not remaining:
        return None
    elapsed = max(now - progress.started_at, 1e-9)
    per_second = progress.finished_this_run / elapsed
    eta = remaining / per_second if per_second else None
    deadline = progress.deadline
    if deadline is None:
        return f"ETA {_clock(eta)}" if eta is not None else None
    if now >= deadline:
        return _after_deadline(progress, deadline, now, remaining, tz)
    if eta is None:
        return f"deadline {describe_deadline(deadline, now, tz=tz)}"
    if eta <= deadline - now:
        return f"ETA {_clock(eta)}, deadline {describe_deadline(deadline, now, tz=tz)}"
    left = math.ceil(remaining - per_second * (deadline - now))
    return (
        f"cannot finish by {format_deadline(deadline, now, tz=tz)} at this rate: "
        f"about {_rows(left)} will be left for the next run"
    )


def _after_deadline(
    progress: Progress, deadline: float, now: float, remaining: int, tz: tzinfo | None
) -> str:
    text = f"deadline {format_deadline(deadline, now, tz=tz)} passed: no new operation starts"
    left = remaining - progress.counts.get(OpState.RUNNING, 0)  # those in flight still finish
    return f"{text}, {_rows(left)} left for the next run" if left > 0 else text


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


async def show_progress(
    snapshot: Callable[[], Progress], stream: TextIO, *, interval: float, live: bool
) -> None:
    """Runs until cancelled. `live`: redraw in place on a terminal; else a line per interval."""
    if not live:
        while True:
            await anyio.sleep(interval)
            print(describe(snapshot(), time.time()), file=stream, flush=True)
    console = Console(file=stream)
    with Live(console=console, refresh_per_second=4, transient=True) as panel:
        while True:
            panel.update(Text(describe(snapshot(), time.time())))
            await anyio.sleep(0.25)
