"""What the store tells of its jobs as a whole: a listing's lines, a prune's tally, counts per
state summed. Records only, no SQL: the lean read path (`quickread`) builds them too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bulkops.model import JobInfo, OpState


@dataclass(frozen=True)
class JobListing:
    """One line of `bulkops jobs`: the job, its rows' counts and when it ran (unix seconds)."""

    job: JobInfo
    counts: Mapping[OpState, int]
    started_at: float | None  # its first run's start
    finished_at: float | None  # its last run's end, if that run ended
    runs: int
    pruned_at: float | None


@dataclass(frozen=True)
class PruneResult:
    jobs: int  # jobs whose rows were removed
    rows: int  # job rows removed
    ops: int  # operations forgotten (never succeeded, named by no remaining row)


def add_counts(*parts: Mapping[OpState, int]) -> dict[OpState, int]:
    """Counts per state summed over `parts`, every state present (zeros included)."""
    return {state: sum(part.get(state, 0) for part in parts) for state in OpState}
