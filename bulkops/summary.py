"""The account a run leaves behind: a few lines on stdout, and the same as JSON for scripts.

`summary_json` is a documented, stable shape (README, "Nightly runs"): keys are only ever added.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bulkops.deadline import format_span
from bulkops.model import Action, JobOverview, OpState, RunRecord
from bulkops.settings import plain_number

SUMMARY_VERSION = 1
_STATE_ORDER = (
    OpState.SUCCEEDED, OpState.FAILED, OpState.BLOCKED, OpState.CANCELLED, OpState.PENDING,
    OpState.UNKNOWN, OpState.RUNNING,
)


def iso_utc(at: float | None) -> str | None:
    """Unix seconds as ISO 8601 in UTC to the second (`2026-11-29T01:41:19+00:00`)."""
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def _counts(counts: Mapping[OpState, int]) -> str:
    return ", ".join(f"{counts[s]} {s.value}" for s in _STATE_ORDER if counts.get(s))


def summary_lines(
    overview: JobOverview, run: RunRecord | None, *, outcome: str, exit_code: int
) -> list[str]:
    """What a person reads over coffee: outcome and time, rows per state and per action, what
    the run cost (requests, 429s, retries, look-ups), the commonest errors with their hints."""
    job = overview.job
    lines = []
    duration = run.duration if run is not None else None
    took = f" in {format_span(duration)}" if duration is not None else ""
    # Dated, so that a log of many nights tells them apart.
    ended = iso_utc(run.finished_at if run else None) or "-"
    lines.append(f"summary {ended}: {outcome}{took}, exit {exit_code} — {job.path}")
    before = overview.counts.get(OpState.SUCCEEDED, 0) - (run.succeeded if run else 0)
    rows = f"  rows: {_counts(overview.counts)}"
    if before > 0:
        rows += f" ({before} done in earlier runs)"
    lines.append(rows)
    for action, counts in sorted(overview.by_action.items(), key=lambda item: item[0].value):
        lines.append(f"    {action.value:<15} {_counts(counts)}")
    if run is not None:
        lines.append(
            f"  requests: {run.requests} (budget {plain_number(run.budget_per_second * 60)}/min), "
            f"429s {run.throttled}, retries {run.retries}, reconciled {run.reconciled}"
        )
    for error in overview.top_errors:
        hint = f" — {error.hint}" if error.hint else ""
        lines.append(f"  {error.count} × {error.code or 'error'} (first at line "
                     f"{error.first_line}): {error.message}{hint}")
    return lines


def summary_json(
    overview: JobOverview, run: RunRecord | None, *, outcome: str, reason: str | None,
    exit_code: int, database: str,
) -> dict[str, Any]:
    """The summary as one JSON object (shape documented in the README)."""
    job = overview.job
    before = overview.counts.get(OpState.SUCCEEDED, 0) - (run.succeeded if run else 0)
    return {
        "version": SUMMARY_VERSION,
        "job": job.job_id,
        "file": job.path,
        "database": database,
        "account_id": job.account_id,
        "outcome": outcome,
        "reason": reason,
        "exit_code": exit_code,
        "started_at": iso_utc(run.started_at if run else None),
        "finished_at": iso_utc(run.finished_at if run else None),
        "duration_seconds": round(run.duration, 3) if run and run.duration is not None else None,
        "total": job.total,
        "counts": {state.value: overview.counts.get(state, 0) for state in OpState},
        "by_action": {
            action.value: {state.value: counts.get(state, 0) for state in OpState}
            for action, counts in _in_order(overview.by_action)
        },
        "done_before": max(before, 0),
        "run": None if run is None else {
            "command": run.command,
            "requests": run.requests,
            "throttled": run.throttled,
            "retries": run.retries,
            "reconciled": run.reconciled,
            "succeeded": run.succeeded,
            "failed": run.failed,
            "budget_per_minute": run.budget_per_second * 60,
        },
        "top_errors": [
            {"code": e.code, "count": e.count, "hint": e.hint, "first_line": e.first_line,
             "message": e.message}
            for e in overview.top_errors
        ],
    }


def _in_order(
    by_action: Mapping[Action, Mapping[OpState, int]],
) -> list[tuple[Action, Mapping[OpState, int]]]:
    return [(action, by_action[action]) for action in Action if action in by_action]
