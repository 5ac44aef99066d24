"""Live progress: a refreshing panel on a terminal, plain periodic lines elsewhere (CI, cron)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from bulkops.engine import Progress
from bulkops.model import FINAL_STATES, OpState

STATE_ORDER = (
    OpState.SUCCEEDED, OpState.FAILED, OpState.BLOCKED, OpState.RUNNING, OpState.UNKNOWN,
    OpState.PENDING, OpState.CANCELLED,
)


def describe(progress: Progress, now: float) -> str:
    """One line: counts per state, rate against the budget, ETA."""
    if not progress.total:
        return "starting…"
    counts = progress.counts
    done = sum(counts.get(s, 0) for s in FINAL_STATES)
    parts = [f"{done}/{progress.total} done"]
    parts += [f"{counts[s]} {s.value}" for s in STATE_ORDER if counts.get(s)]
    budget = progress.budget
    rate = (
        f"rate {budget.achieved_per_second * 60:.0f}/min of {budget.limit_per_second * 60:.0f}/min"
    )
    if budget.current_per_second < budget.limit_per_second * 0.999:
        rate += f" (slowed to {budget.current_per_second * 60:.0f}/min after 429s)"
    if budget.throttled:
        rate += f", {budget.throttled} throttled"
    parts.append(rate)
    elapsed = max(now - progress.started_at, 1e-9)
    remaining = progress.total - done
    if progress.finished_this_run and remaining:
        eta = remaining * elapsed / progress.finished_this_run
        parts.append(f"ETA {_clock(eta)}")
    return " · ".join(parts)


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
