"""The `Store` port: the checkpoint database in domain verbs. Implementations live beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Protocol

from bulkops.model import JobInfo, JobSource, JobState, OpRecord, OpSpec, OpState


class Store(Protocol):
    async def add_job(self, job: JobSource, ops: Iterable[OpSpec]) -> tuple[JobInfo, bool]:
        """Store a job and its operations (input order = iteration order) in one transaction.

        `ops` is consumed lazily and inserted in batches, so a million rows stay in bounded
        memory. Dependencies (`OpSpec.dependency_keys`) are stored as op-to-op links. If a job
        with this `job_id` exists already, nothing is written and `ops` is not consumed.
        Returns the job and whether it was created now.
        """
        ...

    async def get_job(self, job_id: str) -> JobInfo | None: ...

    async def latest_job(self, *, unfinished_only: bool = False) -> JobInfo | None:
        """The most recently created job (optionally only one not FINISHED)."""
        ...

    async def set_job_state(
        self, job_id: str, state: JobState, *, stop_reason: str | None = None
    ) -> None: ...

    async def recover_in_flight(self, job_id: str) -> int:
        """Start-up of a single-process run: every RUNNING op becomes UNKNOWN (its request may
        have left), and every lease is released. Returns how many ops became UNKNOWN."""
        ...

    async def claim_ready(
        self, job_id: str, *, now: float, limit: int, owner: str, lease_seconds: float
    ) -> list[OpRecord]:
        """Lease up to `limit` ops that can be worked on now, in input order:
        PENDING ops whose dependencies all SUCCEEDED, and UNKNOWN ops (to reconcile);
        in both cases `not_before` is NULL or <= now and no live lease is held by anyone (the
        claimer included: a worker claiming again before its own write-ahead record is committed
        must not get the same op twice).
        The returned records carry `lease_owner=owner` and `refs` (dependency key -> its site_id).
        On PostgreSQL the claim uses FOR UPDATE SKIP LOCKED so many workers can share a job.
        """
        ...

    async def save(self, ops: Sequence[OpRecord]) -> None:
        """Write the mutable fields of each record (state, attempts, results, error, times,
        checks, note, lease_owner) in ONE transaction. A record with `lease_owner=None` is
        released. Idempotent."""
        ...

    async def block_dependents(self, job_id: str) -> int:
        """Mark BLOCKED every PENDING op that (transitively) depends on a FAILED, BLOCKED or
        CANCELLED op, with an error naming the dependency. Returns how many were blocked."""
        ...

    async def reopen_blocked(self, job_id: str) -> int:
        """Every BLOCKED op goes back to PENDING (error cleared); `block_dependents` then blocks
        again those whose dependencies still failed. Returns how many were reopened."""
        ...

    async def next_wakeup(self, job_id: str) -> float | None:
        """Earliest `not_before` among unleased PENDING/UNKNOWN ops, or None if there is none."""
        ...

    async def counts(self, job_id: str) -> Mapping[OpState, int]:
        """Number of ops in each state (every state present, zeros included)."""
        ...

    def iter_ops(self, job_id: str, *, only: OpState | None = None) -> AsyncIterator[OpRecord]:
        """Every op of the job in input order (streamed in pages), optionally of one state."""
        ...

    async def close(self) -> None: ...
