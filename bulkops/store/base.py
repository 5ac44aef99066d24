"""The `Store` port: the checkpoint database in domain verbs. Implementations live beside it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Collection, Iterable, Mapping, Sequence
from typing import Protocol

from bulkops.errors import RowError
from bulkops.identity import Holder, KnownOp, TakeOver
from bulkops.model import (
    Action,
    JobInfo,
    JobOverview,
    JobSource,
    JobState,
    OpRecord,
    OpSpec,
    OpState,
    RunRecord,
    Turns,
)
from bulkops.store.history import JobListing, PruneResult


class Store(Protocol):
    async def add_job(
        self, job: JobSource, ops: Iterable[OpSpec], *, owner: str | None = None,
        lease_seconds: float = 0.0,
    ) -> tuple[JobInfo, bool]:
        """Store a job and its rows (input order = iteration order) in one transaction.

        Each row names its operation by key in the job's scope (`identity.scope_of` of its
        account and base URL): an existing op (or, for an invite, one that succeeded for the
        same person, place and roles) or a new pending one the job owns. `ops` is consumed
        lazily and inserted in batches, so a million rows stay in bounded memory. Dependencies
        (`OpSpec.dependency_keys`) link each row to the op of the key it names, in the file or
        done by an earlier run. A new job is stored leased to `owner` for `lease_seconds`.
        If a job with this `job_id` exists already, nothing is written and `ops` is not
        consumed. Returns the job and whether it was created now.

        Raises JobFileError (and stores nothing) when rows reuse a key whose operation was done,
        may have been done, or is being run by a live process, with other content.
        """
        ...

    async def conflicts(self, job: JobInfo) -> list[RowError]:
        """The same check as `add_job`'s, for a stored job about to run again."""
        ...

    async def conflicts_of(self, scope: str, specs: Iterable[OpSpec]) -> list[RowError]:
        """The same check as `add_job`'s for rows not stored (`validate`), streamed."""
        ...

    async def take_over(self, job_id: str, *, now: float, rerun: bool) -> TakeOver:
        """Take on the unfinished ops the job's rows name that another job owns and no live
        process runs; with `rerun` (a new run of the file) also its failed, blocked and
        cancelled ones, armed again: PENDING with a fresh attempt budget, or UNKNOWN (looked up
        first) when an earlier attempt may have taken effect. The caller holds the job's lease."""
        ...

    async def cancel_job(self, job_id: str) -> int:
        """Unfinished ops the job owns become CANCELLED and the job CANCELLED. Returns how many."""
        ...

    async def known_ops(self, scope: str | None, keys: Iterable[str]) -> dict[str, KnownOp]:
        """The ops of `scope` (None: of any scope) among `keys`, by key (absent: no such op)."""
        ...

    async def prior_ops(self, scope: str, specs: Sequence[OpSpec]) -> dict[str, OpRecord]:
        """Read only: the operations of `scope` that rows `specs` would name if they were
        stored now (their key, another name of it, or the same work under another key, as
        `add_job` maps them), by row key. Rows absent from the result are new work. The
        records are the operations' own (spec, state, results, `maybe_applied`)."""
        ...

    async def produced_sites(self, scope: str, site_ids: Iterable[str]) -> set[str]:
        """Those of `site_ids` (compared case-insensitively, returned lower-case) that a
        succeeded operation of `scope` holds as its result: sites bulkops created or moved."""
        ...

    async def acquire_job(
        self, job_id: str, owner: str, *, now: float, lease_seconds: float
    ) -> Holder | None:
        """Take the job's lease (free, expired, or already `owner`'s) until now+lease_seconds.
        Returns None when taken, else who holds it. Raises StoreError for an unknown job."""
        ...

    async def renew_job(self, job_id: str, owner: str, *, now: float,
                        lease_seconds: float) -> bool:
        """Heartbeat: extend `owner`'s lease. False: the lease is no longer `owner`'s."""
        ...

    async def release_job(self, job_id: str, owner: str) -> None:
        """Give `owner`'s lease up at once (nothing if it is not theirs)."""
        ...

    async def join_job(self, job_id: str, owner: str, *, now: float,
                       lease_seconds: float) -> Holder | None:
        """Join the worker processes sharing the job (`bulkops worker`), `owner`'s turn lasting
        until now+lease_seconds unless renewed. The first worker on the job takes back what a
        process that held it alone and died left leased (in flight: UNKNOWN). Returns None
        when joined, else who holds the job for itself (a `run` or `resume`). Raises
        StoreError for an unknown job."""
        ...

    async def renew_worker(self, job_id: str, owner: str, *, now: float,
                           lease_seconds: float) -> bool:
        """Heartbeat of a sharing worker, its turn lapsed or not. False: another worker took
        its operations back (its turn had lapsed): it must not send any of them again."""
        ...

    async def leave_job(self, job_id: str, owner: str, *, now: float) -> bool:
        """`owner` stops sharing the job: the ops it claimed and did not send are free at once.
        Returns True when it was the last live worker (the job's lease is then free too)."""
        ...

    async def take_back_from_dead_workers(self, job_id: str, *, now: float) -> int:
        """The open ops that workers whose turn lapsed before `now` held: unleased, and those
        they had in flight (RUNNING) made UNKNOWN, to be reconciled before any is sent again.
        Returns how many ops were taken back."""
        ...

    async def held_by_others(self, job_id: str, owner: str) -> bool:
        """Whether an owner other than `owner` holds an open op of the job."""
        ...

    async def take_turns(self, scope: str, *, count: int, rate: float, now: float,
                         throttled_at: float = 0.0) -> Turns:
        """Take `count` request turns at `rate` (requests per second) from the budget every
        process running jobs of the account `scope` shares: the next free ones, never before
        `now` (unix seconds). `throttled_at`: when this process last saw a 429 (0: never),
        kept as the account's latest if later. Atomic across processes. Raises ValueError for
        a count below 1 or a rate not above 0."""
        ...

    async def get_job(self, job_id: str) -> JobInfo | None: ...

    async def latest_job(self, *, unfinished_only: bool = False) -> JobInfo | None:
        """The most recently created job (optionally only one not FINISHED)."""
        ...

    async def open_jobs(self) -> list[JobInfo]:
        """Jobs for workers, oldest first: stored and never run, interrupted, or running (a
        live process holds it, or one that died held it: `JobInfo.held_at` tells which). Not
        the ones stopped early (a breaker or a deadline waits for a person), finished,
        cancelled or pruned."""
        ...

    async def set_job_state(
        self, job_id: str, state: JobState, *, stop_reason: str | None = None
    ) -> None: ...

    async def recover_in_flight(self, job_id: str) -> int:
        """Start-up of a run holding the job's lease: every RUNNING op the job owns becomes
        UNKNOWN (its request may have left), and their leases are released. Returns how many
        ops became UNKNOWN."""
        ...

    async def claim_ready(
        self, job_id: str, *, now: float, limit: int, owner: str, lease_seconds: float
    ) -> list[OpRecord]:
        """Lease up to `limit` ops the job owns that can be worked on now, in input order:
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
        """Number of the job's rows whose op is in each state (every state, zeros included).
        Read from an index, not from the rows, unless rows name another job's operations."""
        ...

    async def produced_by_keys(self, job_id: str, keys: Collection[str]) -> dict[str, str]:
        """key -> site id ("" when it produced none) of those of the job's rows named by
        `keys` whose op SUCCEEDED; the others are absent. A report resolves its rows'
        `@key`s with it a page at a time, instead of holding every row's site id."""
        ...

    async def counts_by_action(self, job_id: str) -> Mapping[Action, Mapping[OpState, int]]:
        """As `counts`, per action of the job's rows (actions with no row left out)."""
        ...

    def iter_ops(
        self, job_id: str, *, only: OpState | Collection[OpState] | None = None
    ) -> AsyncIterator[OpRecord]:
        """Every row of the job in input order (streamed in pages), optionally of some states:
        the row's line, key and spec with its op's state and results; `elsewhere` is set
        when another job owns the op."""
        ...

    def open_rows(
        self, job_id: str, *, actions: Collection[Action] | None = None
    ) -> AsyncGenerator[OpRecord, None]:
        """The job's rows still to do, in input order: those whose op the job owns and is not
        in a final state, each as `iter_ops` gives it (`elsewhere` None), read without
        stepping over the others (what the checks before sending read); `actions`: only
        rows of those (None: of any)."""
        ...

    async def has_open_rows(self, job_id: str) -> bool:
        """Whether `open_rows` would give any row: one index look-up."""
        ...

    async def start_run(self, record: RunRecord, owner: str) -> RunRecord:
        """Record the start of a run (`record.run_id` is ignored); returns it with its id."""
        ...

    async def save_run(self, record: RunRecord) -> None:
        """Write what the run did so far (again at its end, with finished_at and outcome)."""
        ...

    async def overview(self, job: JobInfo) -> JobOverview:
        """Counts per state and per action, every run, and the commonest errors of a job."""
        ...

    async def list_jobs(self, *, limit: int | None = None) -> list[JobListing]:
        """Every job, newest first, with its counts and when it ran."""
        ...

    async def prune(self, *, before: float) -> PruneResult:
        """Remove the rows of finished or cancelled jobs last changed before `before` (unix
        seconds), and the operations they alone named that never succeeded. Succeeded
        operations stay, so a later file never repeats them. Jobs held by a process are kept."""
        ...

    async def close(self) -> None: ...
