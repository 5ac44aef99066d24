"""The run loop: claim ready operations, send each under the budget with a write-ahead record,
classify the answer, record the outcome, and reconcile every outcome that is not known.

Every start is a resume: operations found `running` were in flight when a process died, so they
become `unknown` and are looked up at Wix before anything is sent again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeVar

import anyio
import anyio.abc

from bulkops.actions import (
    FAMILIES,
    ActionContext,
    ActionFamily,
    CallFailed,
    Done,
    Missing,
    Rejected,
    RowOutcome,
    family_of,
)
from bulkops.breaker import FailureBreaker
from bulkops.callqueue import Call, CallQueue
from bulkops.checkpoint import GroupCommitter
from bulkops.deadline import format_deadline
from bulkops.errors import ConfigError, SendStopped, WixApiError, WixError
from bulkops.model import FINAL_STATES, Action, JobState, OpError, OpRecord, OpState
from bulkops.outage import OutageGate
from bulkops.ratelimit import BudgetSnapshot, RequestBudget
from bulkops.retry import (
    Verdict,
    backoff_delay,
    classify,
    hint_for,
    retry_delay,
    retry_reads,
)
from bulkops.roles import RoleBook
from bulkops.settle import next_check_at
from bulkops.stopping import Cut, bounded
from bulkops.store.base import Store
from bulkops.turn import WorkerTurn
from bulkops.wix import WixClient
from bulkops.wixdomains import JOB_FAULT_CODES

log = logging.getLogger(__name__)
T = TypeVar("T")

# A single process owns its job for the whole run (the job's own lease keeps others out); op
# leases matter once several workers share one.
SINGLE_PROCESS_LEASE = 24 * 3600.0
# Seconds between looks at rows another live process runs for another job (shared rows).
SHARED_ROWS_POLL = 1.0
LOOKUP_ATTEMPTS = 5
NOT_FOUND_RESENT_NOTE = "an earlier attempt was not found at Wix after settling; sent again"
MOVED_OR_MISSING_HINT = (
    "the site is not in from_account and not listed in to_account; an earlier attempt's "
    "outcome was unknown, so it may have moved already: check to_account before sending it "
    "again (raise --settle if Wix's listing is slow)"
)
PAUSED_NOTE = "paused by the failure breaker; retried on resume"
INVITE_RESENT_NOTE = (
    "outcome of an earlier attempt unknown; sent again (the invitee may get the email more "
    "than once)"
)
# Rows claimed and waiting for their call, per unit of concurrency: enough to fill full batches.
QUEUED_ROWS_PER_SLOT = 50
# The same when workers share the job: a worker that claimed far ahead would hold rows the
# others could be sending (a job's creates paced at the account's rate: minutes of them). Still
# at least the largest call, so that invites leave in full batches.
SHARED_ROWS_PER_SLOT = 10
LARGEST_CALL = max(family.batch_size for family in FAMILIES)
# Seconds between two claims while the queue still holds work. A claim is a write transaction:
# claiming after every finished call would cost one per row, where a claim of half the queue
# costs about the same as a claim of one row.
CLAIM_INTERVAL = 0.05


class StopKind(StrEnum):
    """Why a run stopped early: what the user is told to do next depends on it."""

    BREAKER = "breaker"  # the key was refused, or one error on most rows: a person must look
    DEADLINE = "deadline"  # --finish-by came: the next run continues
    OUTAGE = "outage"  # Wix stayed unreachable: the next run continues
    LEASE = "lease"  # another process took the job over


class RunOutcome(StrEnum):
    FINISHED = "finished"  # every operation is final
    INTERRUPTED = "interrupted"  # stop requested (SIGINT/SIGTERM)
    STOPPED = "stopped"  # a failure breaker tripped, the deadline came, or Wix stayed down


@dataclass(frozen=True)
class EngineConfig:
    account_id: str
    concurrency: int = 8
    max_attempts: int = 8
    settle: float = 15.0
    backoff_base: float = 1.0  # first retry waits up to this; doubles per attempt (full jitter)
    owner: str = field(default_factory=lambda: f"run-{uuid.uuid4().hex[:12]}")
    deadline: float | None = None  # unix seconds (--finish-by): no operation starts after it
    outage_limit: float = 900.0  # seconds Wix may stay unreachable before the run stops
    # Wix unreachable since then (unix seconds), as the caller's own wait for its first answer
    # found before giving up (precheck): the outage counts from there, not from this run's start.
    unreachable_since: float | None = None
    # Worker processes share the job (`bulkops worker`): how long a worker's turn lasts
    # without a heartbeat (seconds). The run then never takes back what a live worker holds,
    # looks every third of that for workers that died, and waits while others hold rows of
    # the job. None: this run holds the job alone.
    shared_lease: float | None = None


@dataclass(frozen=True)
class RunStats:
    """What this run did, beyond the rows' states (the summary's and the run record's)."""

    retries: int = 0
    reconciled: int = 0
    succeeded: int = 0
    failed: int = 0
    calls: int = 0  # requests this run sent to Wix, reads included


@dataclass(frozen=True)
class RunResult:
    outcome: RunOutcome
    counts: Mapping[OpState, int]
    reason: str | None = None
    succeeded_now: int = 0  # rows that succeeded in this run (the rest were done before)
    stop_kind: StopKind | None = None  # set when outcome is STOPPED


@dataclass(frozen=True)
class Progress:
    """What the progress display shows. Times are unix seconds."""

    counts: Mapping[OpState, int]
    total: int
    budget: BudgetSnapshot
    started_at: float
    finished_this_run: int
    # Why rows are not moving, as {reason: rows}: "settle" (unknown outcomes waiting for Wix's
    # site listing to catch up before the next look-up), "retry" (waiting out a back-off after
    # a retryable error), "elsewhere" (rows another live process runs for another job).
    waiting: Mapping[str, int] = field(default_factory=dict)
    paused_since: float | None = None  # Wix unreachable: sending paused since then
    deadline: float | None = None  # --finish-by: no operation starts after it


class Engine:
    def __init__(
        self,
        *,
        store: Store,
        client: WixClient,
        budget: RequestBudget,
        config: EngineConfig,
        breaker: FailureBreaker | None = None,
        outage: OutageGate | None = None,
        roles: RoleBook | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        turn: WorkerTurn | None = None,
    ) -> None:
        """`roles`: the account's roles when the caller read them already (the checks before
        a run do); otherwise they are read once, before the first call. `turn`: this worker's
        turn on a job other workers share (with `config.shared_lease`): no row is sent once
        it is lost."""
        self._store = store
        self._outage = outage
        self._client = client
        self._budget = budget
        self._config = config
        self._breaker = breaker or FailureBreaker()
        self._clock = clock
        self._rand = rand
        self._roles = roles
        self._ctx: ActionContext | None = None
        self._calls = CallQueue(clock)  # claimed rows waiting for the call that carries them
        self._calls_at_start = 0
        self._counts: Counter[OpState] = Counter()
        self._in_flight = 0
        self._completions = 0
        # Set when the dispatcher has something to look at: a worker found no call due, a
        # claim is due, a stop was asked for. Workers that find a call due take it themselves.
        self._changed = asyncio.Event()
        self._stop: anyio.Event | None = None
        self._capacity = (config.concurrency * QUEUED_ROWS_PER_SLOT
                          if config.shared_lease is None else
                          max(config.concurrency * SHARED_ROWS_PER_SLOT, LARGEST_CALL))
        self._need_blocking = True
        # The last claim: when (clock seconds), whether it found fewer ready rows than it had
        # room for (then only a finished call or a row's wait ending can make more ready), the
        # finished calls counted then, and the job's next wait end as read after it.
        self._claimed_at = -math.inf
        self._claim_was_short = False
        self._completions_at_claim = 0
        self._next_wakeup: float | None = None
        self._started_at = clock()
        self._finished_this_run = 0
        self._succeeded_this_run = 0
        self._failed_this_run = 0
        self._retries = 0
        self._reconciled = 0
        self._waiting_retry: set[int] = set()
        self._waiting_settle: set[int] = set()
        self._elsewhere = 0
        self._deadline_passed = False
        self._next_take_back = math.inf  # when to look for dead workers' rows (shared jobs)
        self._turn = turn
        self.stop_kind = StopKind.BREAKER  # why a STOPPED run stopped, when it did
        self._committer = GroupCommitter(store)
        # The latest failures, so that a storm's victims can be put back when the breaker trips.
        self._recent_failures: deque[OpRecord] = deque(maxlen=self._breaker.window)

    # -- public -------------------------------------------------------------------------------

    def progress(self) -> Progress:
        waiting = {
            "settle": len(self._waiting_settle),
            "retry": len(self._waiting_retry),
            "elsewhere": self._elsewhere,
        }
        return Progress(
            counts=dict(self._counts),
            total=sum(self._counts.values()),
            budget=self._budget.snapshot(),
            started_at=self._started_at,
            finished_this_run=self._finished_this_run,
            waiting={reason: rows for reason, rows in waiting.items() if rows},
            paused_since=self._outage.since if self._outage else None,
            deadline=self._config.deadline,
        )

    def stats(self) -> RunStats:
        return RunStats(
            calls=self._budget.snapshot().requests - self._calls_at_start,
            retries=self._retries,
            reconciled=self._reconciled,
            succeeded=self._succeeded_this_run,
            failed=self._failed_this_run,
        )

    async def run(self, job_id: str, stop: anyio.Event) -> RunResult:
        """Run the job until every operation is final, `stop` is set, or a breaker trips."""
        self._started_at = self._clock()
        self._calls_at_start = self._budget.snapshot().requests
        if self._config.shared_lease is None:
            recovered = await self._store.recover_in_flight(job_id)
        else:
            recovered = await self._store.take_back_from_dead_workers(job_id, now=self._clock())
            self._next_take_back = self._clock() + self._config.shared_lease / 3
        if recovered:
            log.info("ops_recovered", extra={"job": job_id, "count": recovered})
        # Blocked is derived from failures: recompute it, since a paused storm's rows are back.
        await self._store.reopen_blocked(job_id)
        await self._store.block_dependents(job_id)
        await self._refresh_counts(job_id)
        # Running from here on: `status` must not show an earlier run's state while this one
        # waits for Wix to answer its first read.
        previous = await self._store.get_job(job_id)
        await self._store.set_job_state(job_id, JobState.RUNNING)
        if self._open_ops() and self._roles is None:
            # The caller has not heard from Wix yet (it would have read the roles): one cheap
            # read first, so a refused key or an outage shows before anything is sent.
            try:
                await self._preflight(stop)
            except ConfigError:
                if previous is not None:  # nothing was done: the job is as it was
                    await self._store.set_job_state(job_id, previous.state,
                                                    stop_reason=previous.stop_reason)
                raise
        # Not after the preflight gave up (a tripped breaker: the outage limit came before the
        # outage gate had seen enough failures to say so itself).
        going = not stop.is_set() and not self._breaker.tripped and not self._time_is_up()
        if self._open_ops() and going:
            await self._read_roles()
        log.info("job_started", extra={"job": job_id, "open": self._open_ops()})
        async with anyio.create_task_group() as writer:
            writer.start_soon(self._committer.run)
            try:
                async with anyio.create_task_group() as workers:
                    # A fixed pool of workers, one per unit of concurrency, takes the calls:
                    # starting a task per call cost more than the rest of the call's own work.
                    slots: asyncio.Queue[Call | None] = asyncio.Queue()
                    for _ in range(self._config.concurrency):
                        workers.start_soon(self._worker, slots)
                    try:
                        await self._dispatch(job_id, slots, stop)
                    finally:
                        for _ in range(self._config.concurrency):
                            slots.put_nowait(None)  # each worker ends after its call
                    # Stopping (signal or breaker): rows in flight finish, but a request that
                    # is still waiting for its turn in the budget does not leave.
                    self._budget.close()
                    await self._release_queued()
            finally:
                self._committer.close()
        await self._store.block_dependents(job_id)
        await self._refresh_counts(job_id)
        result = await self._finish(job_id, stop)
        log.info("job_stopped", extra={"job": job_id, "outcome": result.outcome.value,
                                       "reason": result.reason,
                                       "commits": self._committer.commits,
                                       "records_saved": self._committer.records})
        return result

    def halt(self, reason: str) -> None:
        """Stop the run as a tripped breaker does (exit 3, rows left as they are): used when
        the job's lease is lost to another process, which may now be running the same rows."""
        self._breaker.trip(reason)
        self.stop_kind = StopKind.LEASE
        self._changed.set()

    # -- the loop -----------------------------------------------------------------------------

    async def _dispatch(self, job_id: str, slots: asyncio.Queue[Call | None],
                        stop: anyio.Event) -> None:
        self._stop = stop
        async with anyio.create_task_group() as watch:

            async def tell_dispatcher() -> None:
                await stop.wait()
                self._changed.set()

            watch.start_soon(tell_dispatcher)
            await self._dispatch_until_done(job_id, slots)
            watch.cancel_scope.cancel()

    async def _dispatch_until_done(self, job_id: str,
                                   slots: asyncio.Queue[Call | None]) -> None:
        capacity = self._capacity
        while self._may_send():
            # Workers finishing between the claim and the checks below may have made ops
            # claimable: the job is over only if none finished in between. Cleared before the
            # claim, so that a finish during it wakes the wait below at once.
            seen = self._completions
            self._changed.clear()
            if self._config.shared_lease is not None and self._clock() >= self._next_take_back:
                await self._look_at_other_workers(job_id)
            if self._need_blocking:
                self._need_blocking = False
                await self._committer.drained()  # the failures, as the store will read them
                if await self._store.block_dependents(job_id):
                    await self._refresh_counts(job_id)
                    self._claim_was_short = False  # rows blocked or not: look again
            # Claim first: rows a finished call made ready may join a call about to start.
            claimed = await self._claim(job_id, capacity) if self._claim_due(capacity) else 0
            # A call that is not full goes for want of others in flight only once no call has
            # ended since the claim read the rows: an outcome recorded after it may have made
            # rows ready that would join that call (the next claim finds them).
            started = self._start_due(slots,
                                      settled=self._completions == self._completions_at_claim)
            if claimed or started:
                continue
            wakeup = self._next_claim() if self._in_flight < self._config.concurrency else None
            lingering = self._calls.next_due(in_flight=self._in_flight,
                                             slots=self._config.concurrency)
            if lingering is not None:
                wakeup = lingering if wakeup is None else min(wakeup, lingering)
            idle = self._in_flight == 0 and seen == self._completions and not self._calls
            if idle and self._next_wakeup is None and not self._need_blocking:
                shared = await self._rows_run_elsewhere(job_id)
                if shared is None:
                    return
                wakeup = shared
            await self._wait_for_change(wakeup)

    def _may_send(self) -> bool:
        """Whether calls may still start: no stop asked for, no breaker tripped, time left."""
        stop = self._stop
        return (stop is not None and not stop.is_set() and not self._breaker.tripped
                and not self._time_is_up())

    def _next_call(self) -> Call | None:
        """For a worker whose call just ended: the next call due, taken at once (the slot stays
        busy), or None. The dispatcher is woken when no call was due (it may claim, or the
        job may be over), when a claim is due, or when a failure's dependents are to be
        blocked."""
        call = None
        if self._may_send():
            # Not settled: a call that is not full goes for want of others in flight only
            # after the dispatcher has claimed the rows this call's end may have made ready.
            due = self._calls.due(in_flight=self._in_flight, slots=self._config.concurrency,
                                  most=1, settled=False)
            if due:
                call = due[0]
                self._in_flight += 1
        if call is None or self._need_blocking or self._claim_due(self._capacity):
            self._changed.set()
        return call

    def _start_due(self, slots: asyncio.Queue[Call | None], *, settled: bool) -> int:
        """Start the queue's calls that are due, as slots allow (`CallQueue.due`); how many
        started."""
        started = self._calls.due(in_flight=self._in_flight, slots=self._config.concurrency,
                                  settled=settled)
        for call in started:
            self._in_flight += 1
            slots.put_nowait(call)
        return len(started)

    def _next_claim(self) -> float | None:
        """When a claim may find rows that were not ready at the last one (clock seconds; None:
        only a finished call can tell): a row's wait ends, or a call finished since; never
        sooner than CLAIM_INTERVAL after the last claim."""
        if not self._claim_was_short:
            return self._claimed_at + CLAIM_INTERVAL  # ready rows were left behind
        ends = [self._next_wakeup] if self._next_wakeup is not None else []
        if self._completions != self._completions_at_claim:
            ends.append(self._clock())
        return max(min(ends), self._claimed_at + CLAIM_INTERVAL) if ends else None

    def _claim_due(self, capacity: int) -> bool:
        """Whether to claim now: when the queue has room for half its capacity and ready rows
        are known to be left; otherwise at most every CLAIM_INTERVAL, and after a claim that
        found every ready row, only once a call finished or a row's wait ended. An idle run
        (nothing queued or in flight) always looks."""
        room = capacity - self._calls.rows
        if room <= 0 or self._ctx is None:
            return False
        if self._in_flight == 0 and not self._calls:
            return True
        now = self._clock()
        waited = now - self._claimed_at >= CLAIM_INTERVAL
        if not self._claim_was_short:
            return room >= capacity // 2 or waited
        wait_over = self._next_wakeup is not None and now >= self._next_wakeup
        news = self._completions != self._completions_at_claim or wait_over
        slots_idle = self._in_flight < self._config.concurrency and not self._calls.has_full
        return news and (waited or slots_idle)

    async def _claim(self, job_id: str, capacity: int) -> int:
        """Claim ready rows into the queue, up to its room; how many. After a claim that found
        fewer than it had room for, reads when the next waiting row is due."""
        assert self._ctx is not None  # claims wait for it
        # The outcomes recorded so far, written: they make rows ready (dependents).
        await self._committer.drained()
        room = capacity - self._calls.rows
        self._completions_at_claim = self._completions
        claimed = await self._store.claim_ready(
            job_id,
            now=self._clock(),
            limit=room,
            owner=self._config.owner,
            lease_seconds=SINGLE_PROCESS_LEASE,
        )
        self._claimed_at = self._clock()
        for op in claimed:
            self._calls.add(op, self._ctx.roles)
        # A claim cut short by the queue's room leaves ready rows behind: calls that are
        # not full wait for them rather than leave half empty.
        self._calls.backlog = len(claimed) == room
        self._claim_was_short = len(claimed) < room
        if self._claim_was_short:
            self._next_wakeup = await self._store.next_wakeup(job_id)
        return len(claimed)

    async def _release_queued(self) -> None:
        """Stopping: rows claimed but never sent go back as they were, unclaimed; unless this
        worker lost its turn, when another worker may hold them now: they are left alone."""
        queued = [op.evolve(lease_owner=None) for op in self._calls.drain()]
        if queued and not (self._turn is not None and self._turn.lost):
            await self._committer.save(*queued)

    async def _rows_run_elsewhere(self, job_id: str) -> float | None:
        """Nothing of its own left to do: rows of the job whose operation another job holds
        are taken on once no live process runs that job; rows other workers sharing the job
        hold are waited for, and taken back if their worker died. Returns when to look again
        (now, if some were taken on), or None when the job has nothing left anywhere."""
        taken = await self._store.take_over(job_id, now=self._clock(), rerun=False)
        self._elsewhere = taken.held_elsewhere
        if not taken.adopted and not taken.held_elsewhere:
            return await self._rows_other_workers_hold(job_id)
        await self._refresh_counts(job_id)
        if taken.adopted:
            log.info("ops_taken_over", extra={"job": job_id, "count": taken.adopted})
            self._claim_was_short = False  # the rows taken over are ready
            self._need_blocking = True
            return self._clock()
        log.info("ops_held_elsewhere", extra={"job": job_id, "count": taken.held_elsewhere})
        return self._clock() + SHARED_ROWS_POLL

    async def _rows_other_workers_hold(self, job_id: str) -> float | None:
        """When to look again at rows other workers sharing the job hold (None: none do)."""
        if self._config.shared_lease is None:
            return None
        if await self._take_back_from_dead_workers(job_id):
            return self._clock()
        if await self._store.held_by_others(job_id, self._config.owner):
            return self._clock() + SHARED_ROWS_POLL
        return None

    async def _look_at_other_workers(self, job_id: str) -> None:
        """Every third of a worker's turn: the rows of workers that died come back, and the
        job's counts are read again (the others' outcomes too: the progress shows the job)."""
        if not await self._take_back_from_dead_workers(job_id):
            await self._refresh_counts(job_id)

    async def _take_back_from_dead_workers(self, job_id: str) -> int:
        """Rows workers that died held come back to be claimed (those they had sent, to be
        reconciled first); how many. None for one turn after this worker's own turn came
        back from a lapse (`WorkerTurn.judges_others`)."""
        lease = self._config.shared_lease
        assert lease is not None
        now = self._clock()
        self._next_take_back = now + lease / 3
        if self._turn is not None and not self._turn.judges_others(lease):
            return 0
        taken = await self._store.take_back_from_dead_workers(job_id, now=now)
        if taken:
            log.info("ops_taken_back", extra={"job": job_id, "count": taken})
            await self._refresh_counts(job_id)
            self._claim_was_short = False
            self._need_blocking = True
        return taken

    def _time_is_up(self, *, outage_since: float | None = None) -> bool:
        """The deadline came, or Wix has been unreachable for longer than allowed (since the
        gate closed, or `outage_since`): no more operations start (the breaker carries the
        reason to the run's result)."""
        now = self._clock()
        deadline = self._config.deadline
        if deadline is not None and now >= deadline:
            self._deadline_passed = True
            self.stop_kind = StopKind.DEADLINE
            return True
        since = self._outage.since if self._outage and self._outage.since else outage_since
        if since is not None and now - since >= self._config.outage_limit:
            self._breaker.trip(
                f"Wix unreachable since {format_deadline(since, now)} ({now - since:.0f} s, over "
                f"--outage-limit {self._config.outage_limit:.0f} s): rows not done stay "
                "pending for the next run"
            )
            self.stop_kind = StopKind.OUTAGE
            return True
        return False

    async def _wait_for_change(self, wakeup: float | None) -> None:
        """Sleep until a worker needs the dispatcher, the next retry is due, or a stop is asked
        for (`_changed`)."""
        delay = 1.0 if wakeup is None else max(0.0, min(1.0, wakeup - self._clock()))
        if self._config.deadline is not None:
            delay = max(0.0, min(delay, self._config.deadline - self._clock()))
        with anyio.move_on_after(delay):
            await self._changed.wait()

    async def _worker(self, slots: asyncio.Queue[Call | None]) -> None:
        """Take calls from `slots` until a None says the run is over; after each, the next
        call due straight from the queue, without a turn through the dispatcher."""
        next_call = await slots.get()
        while next_call is not None:
            await self._call(next_call)
            next_call = self._next_call() or await slots.get()

    async def _call(self, call: Call) -> None:
        try:
            if self._turn is not None and not await self._turn_holds():
                pass  # another worker holds these rows now: nothing is sent or written
            elif call.look_up:
                await self._reconcile(call.family, call.ops)
            else:
                await self._send(call.family, call.ops)
        finally:
            self._calls.finished(call)
            self._in_flight -= 1
            self._completions += 1

    # -- sending ------------------------------------------------------------------------------

    async def _send(self, family: ActionFamily, ops: Sequence[OpRecord]) -> None:
        """One call for `ops`: the family's reads first (rows they settle go no further), then
        one write-ahead record for the rest, durable before the call leaves, then each row's
        outcome from the answer."""
        assert self._ctx is not None
        if family.prepares:
            ops = await self._prepare(family, ops)
            if not ops:
                return
        now = self._clock()
        running = [
            op.evolve(
                state=OpState.RUNNING,
                # A pause by the breaker is over once the row is sent again.
                note=None if op.note == PAUSED_NOTE else op.note,
                attempts=op.attempts + 1,
                first_sent_at=op.first_sent_at or now,
                last_sent_at=now,
                not_before=None,
                checks=0,
            )
            for op in ops
        ]
        await self._save_all(ops, running)  # write-ahead: durable before the request leaves
        if log.isEnabledFor(logging.INFO):  # per row sent: the fields cost more than the check
            for op in running:
                log.info("op_sent", extra={**_fields(op), "attempt": op.attempts,
                                           "batch": len(running)})
        try:
            outcomes = await family.send(running, self._ctx)
        except SendStopped:
            # Stopping, and the request never left: the rows are as they were before the claim.
            await self._save_all(running, [replace(op, lease_owner=None) for op in ops])
        except WixError as exc:
            if len(running) > 1 and isinstance(exc, WixApiError) and family.row_fault(exc):
                # One row's value may have sunk the whole call: each row goes alone, so that
                # only the rows at fault fail.
                log.info("batch_split", extra={"rows": len(running), "error": str(exc)})
                for op in running:
                    await self._send(family, [replace(op, attempts=op.attempts - 1)])
                return
            for op in running:
                await self._on_error(op, exc)
        else:
            for op, outcome in zip(running, outcomes, strict=True):
                await self._settle(op, outcome)

    async def _prepare(self, family: ActionFamily, ops: Sequence[OpRecord]) -> list[OpRecord]:
        """The family's reads before a call (a DNS zone): rows they settle are recorded, with
        their attempts untouched (nothing was sent for them); the others are returned with the
        details to keep while in flight. Rows whose reads failed wait, or fail when the answer
        is final (a zone Wix does not host)."""
        assert self._ctx is not None
        ctx = self._ctx
        try:
            prepared = await self._read(lambda: family.prepare(ops, ctx))
        except SendStopped:
            await self._save_all(ops, [replace(op, lease_owner=None) for op in ops])
            return []
        except WixError as exc:
            for op in ops:
                await self._prepare_failed(op, exc)
            return []
        to_send: list[OpRecord] = []
        for op, ready in zip(ops, prepared, strict=True):
            if isinstance(ready, Done):
                await self._succeed(op, ready, note=ready.note)
            elif isinstance(ready, Rejected):
                await self._fail(op, OpError(code=ready.code, message=ready.message,
                                             hint=family.hint(ready.code)))
            else:
                to_send.append(op if ready is None else replace(op, details=ready))
        return to_send

    async def _prepare_failed(self, op: OpRecord, exc: WixError) -> None:
        if self._key_refused(exc):
            await self._save(op, replace(op, lease_owner=None))
        elif classify(exc) is Verdict.FINAL:
            await self._fail(op, _op_error(op, exc))
        else:
            log.warning("op_prepare_failed", extra={**_fields(op), "error": str(exc)})
            await self._send_again_later(op, self._backoff(LOOKUP_ATTEMPTS), error=op.error,
                                         note=op.note)

    async def _settle(self, op: OpRecord, outcome: RowOutcome) -> None:
        """Record one row's part of a call's answer."""
        if isinstance(outcome, Done):
            await self._succeed(op, outcome, note=outcome.note or op.note)
        elif isinstance(outcome, Rejected):
            if not outcome.sent:
                op = replace(op, attempts=op.attempts - 1)  # nothing left for this row
            hint = family_of(op.spec.action).hint(outcome.code)
            await self._fail(op, OpError(code=outcome.code, message=outcome.message, hint=hint,
                                         request_id=outcome.request_id))
        elif isinstance(outcome, Missing):
            await self._unknown(op)
        else:
            assert isinstance(outcome, CallFailed)
            await self._on_error(op, outcome.error)

    async def _on_error(self, op: OpRecord, exc: WixError) -> None:
        if self._key_refused(exc):
            # Nothing happened, so the row goes back untouched.
            await self._save(op, replace(op, state=OpState.PENDING, lease_owner=None))
            return
        verdict = classify(exc)
        if verdict is Verdict.UNCERTAIN:
            await self._unknown(op, error=_op_error(op, exc))
        elif verdict is Verdict.RETRY:
            await self._retry_later(op, exc)
        elif _is_repeated_transfer(op, exc):
            # A re-sent transfer that already happened answers SITE_NOT_FOUND: look at the target.
            await self._unknown(op, error=_op_error(op, exc))
        else:
            await self._fail(op, _op_error(op, exc))

    async def _retry_later(self, op: OpRecord, exc: WixError) -> None:
        self._retries += 1
        if self._outage_suspected():
            # Every request is failing: Wix is down, not this row. The attempt is not held
            # against it; the gate holds the next send back until a probe gets an answer.
            log.info("op_retry", extra={**_fields(op),
                                        "outage": True, "error": str(exc)})
            await self._send_again_later(
                replace(op, attempts=op.attempts - 1), self._backoff(1),
                error=_op_error(op, exc), note=op.note,
            )
            return
        if op.attempts >= self._config.max_attempts:
            await self._fail(op, _op_error(op, exc, gave_up_after=op.attempts))
            return
        delay = retry_delay(exc, op.attempts, base=self._config.backoff_base, rand=self._rand)
        log.info("op_retry", extra={**_fields(op), "delay": round(delay, 2), "error": str(exc)})
        await self._send_again_later(op, delay, error=_op_error(op, exc), note=op.note)

    async def _send_again_later(
        self, op: OpRecord, delay: float, *, error: OpError | None, note: str | None
    ) -> None:
        later = replace(
            op,
            state=OpState.PENDING,
            not_before=self._clock() + delay,
            error=error,
            note=note,
            lease_owner=None,
        )
        await self._save(op, later)

    async def _unknown(self, op: OpRecord, error: OpError | None = None) -> None:
        """The request may or may not have taken effect. Rows of checkable actions are looked
        up at once, together with the other unknown rows of their action (one listing pass);
        invites cannot be looked up (no listing exists), so the documented policy applies."""
        if not family_of(op.spec.action).checkable:
            await self._resend_invite(op, error)
            return
        now = self._clock()
        unknown = replace(
            op,
            state=OpState.UNKNOWN,
            last_sent_at=now,  # the request left before now: settle counts from here, safely
            checks=0,
            not_before=now,
            error=error,
            lease_owner=None,
        )
        await self._save(op, unknown)
        log.info("op_unknown", extra={**_fields(op), "attempt": op.attempts})

    async def _resend_invite(self, op: OpRecord, error: OpError | None) -> None:
        """Policy for invites: one duplicate email is better than a missing invite."""
        if self._outage_suspected():
            op = replace(op, attempts=op.attempts - 1)  # Wix is down, not this row
        if op.attempts >= self._config.max_attempts:
            await self._give_up_unknown(
                op,
                f"no answer known after {op.attempts} attempts",
                "the invite may have been sent; check with the invitee before re-running",
            )
            return
        log.info("op_resend_unknown_invite", extra={**_fields(op), "attempt": op.attempts})
        await self._send_again_later(
            op, self._backoff(max(op.attempts, 1)), error=error, note=INVITE_RESENT_NOTE
        )

    # -- reconciling --------------------------------------------------------------------------

    async def _reconcile(self, family: ActionFamily, ops: Sequence[OpRecord]) -> None:
        """Settle rows whose outcome is unknown: one look-up for all of them where the family
        can look up, the resend policy where it cannot."""
        assert self._ctx is not None
        ctx = self._ctx
        if not family.checkable:
            for op in ops:
                await self._resend_invite(op, op.error)
            return
        # A row found `running` at start-up may have left just before the process died:
        # its settle time counts from this run's start at the earliest.
        sent = [op.last_sent_at or self._started_at for op in ops]
        sent = [max(at, self._started_at) if op.checks == 0 else at
                for op, at in zip(ops, sent, strict=True)]
        try:
            found = await self._read(lambda: family.look_up(ops, ctx, now=self._clock()))
        except SendStopped:
            await self._save_all(ops, [replace(op, last_sent_at=at, lease_owner=None)
                                       for op, at in zip(ops, sent, strict=True)])
            return
        except WixError as exc:
            for op, at in zip(ops, sent, strict=True):
                await self._look_up_failed(op, at, exc)
            return
        for op, at, done in zip(ops, sent, found, strict=True):
            if done is None:
                await self._not_found(op, at)
                continue
            if isinstance(done, Rejected):
                # Wix holds something else in the row's place: final, and never undone.
                log.info("op_conflict", extra={**_fields(op), "code": done.code})
                await self._fail(op, OpError(code=done.code, message=done.message,
                                             hint=family.hint(done.code)))
                continue
            # Attempt 0: re-armed by a new run of the file, the attempt was an earlier run's.
            which = f"attempt {op.attempts}" if op.attempts else "sent by an earlier run"
            note = f"reconciled: found at Wix after an unknown outcome ({which})"
            if op.note == NOT_FOUND_RESENT_NOTE:
                # An earlier attempt may still show up later: the report must keep saying so.
                note = f"{note}; {NOT_FOUND_RESENT_NOTE}"
            log.info("op_reconciled", extra={**_fields(op), "attempt": op.attempts})
            self._reconciled += 1
            await self._succeed(op, done, note=note)

    async def _look_up_failed(self, op: OpRecord, sent_at: float, exc: WixError) -> None:
        if classify(exc) is Verdict.FINAL:
            await self._lookup_refused(op, sent_at, exc)
            return
        log.warning("op_check_failed", extra={**_fields(op), "error": str(exc)})
        await self._save(
            op,
            replace(
                op,
                last_sent_at=sent_at,
                not_before=self._clock() + self._backoff(LOOKUP_ATTEMPTS),
                lease_owner=None,
            ),
        )

    async def _lookup_refused(self, op: OpRecord, sent_at: float, exc: WixError) -> None:
        """Wix refuses the look-up itself (a 4xx: e.g. 403 for a target account the key may not
        list): asking again can never answer, and sending again blindly could do it twice."""
        if self._key_refused(exc):
            await self._save(op, replace(op, last_sent_at=sent_at, lease_owner=None))
            return
        refused = _op_error(op, exc)
        await self._fail(
            replace(op, maybe_applied=True),
            replace(
                refused,
                message=f"the outcome of attempt {op.attempts} could not be looked up: "
                f"{refused.message}",
                hint="it may have taken effect: check at Wix before running this row again"
                + (f"; {refused.hint}" if refused.hint else ""),
            ),
        )

    async def _not_found(self, op: OpRecord, sent_at: float) -> None:
        checks = op.checks + 1
        next_at = next_check_at(sent_at, checks, self._config.settle)
        if next_at is not None:
            await self._save(
                op,
                replace(
                    op,
                    state=OpState.UNKNOWN,
                    last_sent_at=sent_at,
                    checks=checks,
                    not_before=next_at,
                    lease_owner=None,
                ),
            )
            return
        if op.error is not None and op.error.code == "SITE_NOT_FOUND":
            # Not in the source, not listed in the target: either it never was in the source,
            # or an earlier attempt moved it and the target's listing lags beyond the checks.
            await self._fail(
                replace(op, maybe_applied=True), replace(op.error, hint=MOVED_OR_MISSING_HINT)
            )
        elif op.attempts >= self._config.max_attempts:
            await self._give_up_unknown(
                op,
                f"not found at Wix after {op.attempts} attempts",
                "raise --settle if Wix's listing is slow, then resume",
            )
        else:
            log.info("op_not_found_resend", extra={**_fields(op), "checks": checks})
            note = NOT_FOUND_RESENT_NOTE
            await self._save(
                op,
                replace(
                    op,
                    state=OpState.PENDING,
                    checks=checks,
                    not_before=None,
                    note=note,
                    lease_owner=None,
                ),
            )

    # -- outcomes -----------------------------------------------------------------------------

    async def _succeed(self, op: OpRecord, done: Done, *, note: str | None) -> None:
        self._breaker.record_success(op.spec.action)
        if log.isEnabledFor(logging.INFO):  # as for op_sent
            log.info("op_succeeded", extra={**_fields(op), "attempt": op.attempts})
        await self._save(
            op,
            op.evolve(
                state=OpState.SUCCEEDED,
                site_id=done.site_id or op.site_id,
                invite_id=done.invite_id or op.invite_id,
                details=done.details if done.details is not None else op.details,
                error=None,
                note=note,
                not_before=None,
                lease_owner=None,
            ),
        )

    async def _fail(self, op: OpRecord, error: OpError) -> None:
        if self._breaker.is_storm_error(op.spec.action, error):
            await self._pause(op)  # in flight when the breaker tripped: one more of its rows
            return
        log.info("op_failed", extra={**_fields(op), "code": error.code, "status": error.status})
        failed = replace(op, state=OpState.FAILED, error=error, not_before=None, lease_owner=None)
        await self._save(op, failed)
        self._need_blocking = True
        self._recent_failures.append(failed)
        self._breaker.record_failure(op.spec.action, error)
        if self._breaker.is_storm_error(op.spec.action, error):
            # A storm says the cause is not the rows but something the user must fix (a
            # permission, an account setting): its rows wait for `resume` instead of failing.
            log.warning("breaker_tripped", extra={"job": op.job_id, "reason": self._breaker.reason})
            victims = [
                f for f in self._recent_failures
                if self._breaker.is_storm_error(f.spec.action, f.error)
            ]
            self._recent_failures.clear()
            for victim in victims:
                await self._pause(victim)

    async def _give_up_unknown(self, op: OpRecord, message: str, hint: str) -> None:
        error = OpError(code="OUTCOME_UNKNOWN", message=message, hint=hint)
        await self._fail(replace(op, maybe_applied=True), error)

    async def _pause(self, op: OpRecord) -> None:
        note = PAUSED_NOTE
        await self._save(
            op, replace(op, state=OpState.PENDING, note=note, not_before=None, lease_owner=None)
        )

    async def _save(self, old: OpRecord, new: OpRecord) -> None:
        """Record a row's outcome. Queued for the next commit, not waited for: the worker goes
        on to its next call meanwhile (the row's write-ahead record covers a kill before that
        commit). Whatever reads the rows back waits for it (`_dispatch_until_done`). Nothing,
        once this worker lost its turn (`_turn_holds`)."""
        if self._turn is not None and not await self._turn_holds():
            return
        self._committer.record(new)
        self._count(old, new)

    async def _turn_holds(self) -> bool:
        """Whether this run may still write its rows: always, unless it is a worker sharing
        the job whose turn was lost (it stalled, and another worker took its rows back and
        may have settled them since: this one's copies are stale). Then the run stops."""
        if self._turn is None or await self._turn.holds():
            return True
        self.halt("this worker's turn on the job lapsed and another worker took its rows "
                  "back; stopped to avoid sending rows twice")
        return False

    def _count(self, old: OpRecord, new: OpRecord) -> None:
        self._note_wait(new)
        self._calls.row_changed(old, new)
        if old.state is not new.state:
            self._counts[old.state] -= 1
            self._counts[new.state] += 1
            if new.state in FINAL_STATES:
                self._finished_this_run += 1
            if new.state is OpState.SUCCEEDED:
                self._succeeded_this_run += 1
            elif new.state is OpState.FAILED:
                self._failed_this_run += 1

    async def _save_all(self, old: Sequence[OpRecord], new: Sequence[OpRecord]) -> None:
        """Several rows' changes in one commit (a call's write-ahead record). Nothing, once
        this worker lost its turn (`_turn_holds`)."""
        if self._turn is not None and not await self._turn_holds():
            return
        await self._committer.save(*new)
        for before, after in zip(old, new, strict=True):
            self._count(before, after)

    def _note_wait(self, op: OpRecord) -> None:
        """Keep track of rows that wait for a time, so that progress can say why."""
        self._waiting_retry.discard(op.op_id)
        self._waiting_settle.discard(op.op_id)
        if op.not_before is None or op.lease_owner is not None:
            return
        if op.state is OpState.PENDING:
            self._waiting_retry.add(op.op_id)
        elif op.state is OpState.UNKNOWN:
            self._waiting_settle.add(op.op_id)

    def _outage_suspected(self) -> bool:
        return self._outage is not None and self._outage.suspect

    # -- helpers ------------------------------------------------------------------------------

    async def _read_roles(self) -> None:
        """The account's roles, read once per run unless the caller gave them: every invite
        row's roles are resolved from this one read."""
        if self._roles is None:
            self._roles = RoleBook(await self._read(self._client.list_roles))
        self._ctx = ActionContext(
            client=self._client, account_id=self._config.account_id, roles=self._roles,
            read=self._read,
        )

    async def _preflight(self, stop: anyio.Event) -> None:
        """One cheap read before any write: a refused key or account fails here, nothing sent.

        Wix unreachable at the start is an outage like any other: the read is tried again with
        back-off until it answers, or a stop is asked for, or the deadline comes, or Wix has
        been unreachable for --outage-limit (the run then stops with every row as it was).
        Each try is bounded by all three, so none of them waits for a slow probe.
        """

        async def first_page() -> None:
            async for _ in self._client.iter_sites(page_size=1):
                break

        down_since = self._config.unreachable_since or self._clock()
        attempt = 0
        while True:
            give_up_at = down_since + self._config.outage_limit
            if self._config.deadline is not None:
                give_up_at = min(give_up_at, self._config.deadline)
            failure = await _bounded(first_page, stop, give_up_at - self._clock())
            if failure is None or stop.is_set() or self._time_is_up(outage_since=down_since):
                return
            if isinstance(failure, WixApiError):
                if failure.status in (401, 403):
                    raise ConfigError(
                        f"Wix refused the credentials (HTTP {failure.status} "
                        f"{failure.code or ''}): check WIX_API_KEY and WIX_ACCOUNT_ID"
                        .replace("  ", " ")
                    ) from failure
                if classify(failure) is Verdict.FINAL:
                    raise failure
            attempt += 1
            log.warning("preflight_failed", extra={"error": str(failure), "attempt": attempt})
            pause = min(self._backoff(attempt), 30.0, max(0.0, give_up_at - self._clock()))
            with anyio.move_on_after(pause):
                await stop.wait()

    def _key_refused(self, exc: WixError) -> bool:
        """A refused key (401), or a key or account Wix's domain calls refuse as such, stops
        the whole job at once: no row can succeed without a fix."""
        status = exc.status if isinstance(exc, WixApiError) else None
        if isinstance(exc, WixApiError) and (fault := JOB_FAULT_CODES.get(exc.code or "")):
            self._breaker.trip(
                f"Wix refused the key's domain calls (HTTP {exc.status} {exc.code}): {fault}")
            return True
        if not self._breaker.is_fatal(status):
            return False
        self._breaker.trip(f"Wix refused the API key (HTTP {status}); check WIX_API_KEY")
        return True

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, base=self._config.backoff_base, rand=self._rand)

    async def _read(self, fn: Callable[[], Awaitable[T]]) -> T:
        """An idempotent look-up, retried on any failure a repeat can fix."""
        return await retry_reads(
            fn, max_attempts=LOOKUP_ATTEMPTS, base=self._config.backoff_base, rand=self._rand
        )

    async def _refresh_counts(self, job_id: str) -> None:
        """The job's rows per state, and per action those not final (one read)."""
        per_action = await self._store.counts_by_action(job_id)
        self._counts = Counter({state: sum(counts.get(state, 0) for counts in per_action.values())
                                for state in OpState})
        self._calls.count_open(Counter({
            action: sum(n for state, n in counts.items() if state not in FINAL_STATES)
            for action, counts in per_action.items()
        }))

    def _open_ops(self) -> int:
        return sum(n for state, n in self._counts.items() if state not in FINAL_STATES)

    async def _finish(self, job_id: str, stop: anyio.Event) -> RunResult:
        counts = dict(self._counts)
        # Shared by workers, the job goes on while others run it: the last one to leave says
        # how it was left (`runner.run_shared`). A worker that lost its turn (it stalled) or
        # was told another worker stopped the job leaves the job's state alone: the others
        # would take a stop it wrote as the job's.
        alone = self._config.shared_lease is None
        if self._breaker.tripped:
            reason = self._breaker.reason
            if alone or self.stop_kind is not StopKind.LEASE:
                await self._store.set_job_state(job_id, JobState.STOPPED, stop_reason=reason)
            return self._result(RunOutcome.STOPPED, counts, reason)
        if stop.is_set() and self._open_ops():
            if alone:
                await self._store.set_job_state(job_id, JobState.INTERRUPTED)
            return self._result(RunOutcome.INTERRUPTED, counts, "interrupted")
        if self._deadline_passed and self._open_ops():
            deadline = self._config.deadline or 0.0
            reason = (f"deadline {format_deadline(deadline, self._clock())} reached: "
                      f"{self._open_ops()} row(s) not done, left for the next run")
            if alone:
                await self._store.set_job_state(job_id, JobState.STOPPED, stop_reason=reason)
            return self._result(RunOutcome.STOPPED, counts, reason)
        if self._open_ops():
            reason = "operations are left that no worker can run now"
            await self._store.set_job_state(job_id, JobState.STOPPED, stop_reason=reason)
            return self._result(RunOutcome.STOPPED, counts, reason)
        await self._store.set_job_state(job_id, JobState.FINISHED)
        return self._result(RunOutcome.FINISHED, counts, None)

    def _result(
        self, outcome: RunOutcome, counts: Mapping[OpState, int], reason: str | None
    ) -> RunResult:
        kind = self.stop_kind if outcome is RunOutcome.STOPPED else None
        return RunResult(outcome, counts, reason, succeeded_now=self._succeeded_this_run,
                         stop_kind=kind)


def _op_error(op: OpRecord, exc: WixError, *, gave_up_after: int | None = None) -> OpError:
    """The row's error as the report shows it; the hint is the action family's for the code,
    else the general one for the status."""
    if isinstance(exc, WixApiError):
        hint = family_of(op.spec.action).hint(exc.code) or hint_for(exc)
        if gave_up_after is not None:
            hint = f"gave up after {gave_up_after} attempts" + (f"; {hint}" if hint else "")
        return OpError(
            code=exc.code or f"HTTP_{exc.status}",
            message=exc.message,
            hint=hint,
            status=exc.status,
            request_id=exc.request_id,
        )
    hint = f"gave up after {gave_up_after} attempts" if gave_up_after is not None else None
    return OpError(code="CONNECTION_ERROR", message=str(exc), hint=hint)


async def _bounded(
    fn: Callable[[], Awaitable[None]], stop: anyio.Event, seconds: float
) -> BaseException | None:
    """Run `fn` for at most `seconds`, or until `stop` is set. Returns None when it finished,
    the WixError it raised, or TimeoutError when it was cut short."""
    try:
        outcome = await bounded(fn, stop, seconds)
    except WixError as exc:
        return exc
    return TimeoutError() if isinstance(outcome, Cut) else None


def _fields(op: OpRecord) -> dict[str, object]:
    """The fields every op event carries: its job, its line in the file, its key."""
    return {"job": op.job_id, "line": op.spec.line, "op": op.spec.key}


def _is_repeated_transfer(op: OpRecord, exc: WixError) -> bool:
    return (
        op.spec.action is Action.TRANSFER_SITE
        and op.attempts > 1
        and isinstance(exc, WixApiError)
        and exc.code == "SITE_NOT_FOUND"
    )
