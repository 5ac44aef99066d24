"""Wires one command's run together: store, Wix client, budget, engine and progress display."""

from __future__ import annotations

import hashlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import anyio

from bulkops.breaker import BreakerSettings, FailureBreaker
from bulkops.credentials import require_credentials
from bulkops.deadline import describe_deadline, format_span
from bulkops.engine import Engine, EngineConfig, RunOutcome, RunResult, StopKind
from bulkops.errors import ConfigError, JobBusy, JobFileError, StoreError
from bulkops.identity import TakeOver, scope_of
from bulkops.jobfile import CheckedJob
from bulkops.jobviews import lease_owner, opened_store, outside_problems
from bulkops.locations import SANDBOX_TARGET, sandbox_state_file
from bulkops.loop import freeze_heap
from bulkops.model import (
    FINAL_STATES,
    JobInfo,
    JobOverview,
    JobSource,
    JobState,
    OpState,
    RunRecord,
)
from bulkops.outage import OutageGate
from bulkops.prerun import Ready, check_before_sending
from bulkops.progress import show_progress
from bulkops.ratelimit import AdaptiveBudget, RequestBudget
from bulkops.settings import DEFAULT_BASE_URL, Settings
from bulkops.sharedbudget import SharedBudget
from bulkops.store.base import Store
from bulkops.timeline import BUCKET_SECONDS, RequestTimeline
from bulkops.turn import TurnGate, WorkerTurn
from bulkops.wix import WixClient

log = logging.getLogger(__name__)

LEASE_POLL = 1.0  # seconds between looks at a held job's lease while waiting (--wait)


@dataclass(frozen=True)
class RunSummary:
    job: JobInfo
    counts: Mapping[OpState, int]
    outcome: str  # RunOutcome value
    reason: str | None
    succeeded_now: int = 0  # rows that succeeded in this run; the other succeeded were done before
    overview: JobOverview | None = None  # the job as a whole, after this run
    run: RunRecord | None = None  # what this run did (None: it never started)
    stop_kind: str | None = None  # StopKind value, when outcome is "stopped"


async def run_job(
    *,
    stop: anyio.Event,
    checked: CheckedJob | None,
    settings: Settings,
    sandbox: bool,
    progress: tuple[TextIO, float, bool],
    resume_job: str = "",
    wait: float | None = None,
) -> RunSummary:
    """`run` (`checked` given: a validated file) or `resume` (resume_job, "" = latest
    unfinished). The job is held under a lease for the whole run: another process holding it
    raises JobBusy at once, or after `wait` seconds (None: no waiting).

    Before the first write, the rows still to do are checked against Wix with reads only
    (`prerun`, `precheck`): roles, sites named by id, display names of new sites.

    Raises JobFileError (nothing sent) for outside `@key` references that name no done
    operation, for rows that reuse a done key with other content, and for rows the checks
    against Wix refuse; ConfigError for a resume against another account or API, missing
    credentials, or credentials Wix refuses.
    """
    owner = lease_owner()
    async with opened_store(settings.db_url) as store:
        if checked is not None:
            if sandbox:
                settings = sandbox_target(settings)
            await _check_outside_refs(store, checked, settings)
            scoped = replace(
                checked.source,
                job_id=scoped_job_id(checked.source, settings),
                account_id=settings.account_id,
                base_url=settings.base_url,
            )
            job, created = await store.add_job(
                scoped, checked.specs(), owner=owner, lease_seconds=settings.lease_seconds
            )
        else:
            job = await _job_to_resume(store, resume_job)
            settings = _stored_target(job, settings)
            created = False
        if not created and not await _acquire(store, job, owner, settings, wait, stop, progress):
            return RunSummary(job, await store.counts(job.job_id), "interrupted", "interrupted")
        try:
            result, run = await _take_over_and_run(
                store, job, settings, owner, stop, progress, rerun=checked is not None,
                stored_now=created,
            )
        finally:
            with anyio.CancelScope(shield=True):
                await store.release_job(job.job_id, owner)
        final = await store.get_job(job.job_id)
        assert final is not None
        return RunSummary(final, result.counts, result.outcome.value, result.reason,
                          result.succeeded_now, await store.overview(final), run,
                          result.stop_kind.value if result.stop_kind else None)


@dataclass(frozen=True)
class Submitted:
    """What `submit` stored: the job, whether it is new, and its rows' states now."""

    job: JobInfo
    created: bool
    counts: Mapping[OpState, int]


async def submit_job(*, checked: CheckedJob, settings: Settings, sandbox: bool) -> Submitted:
    """Store a validated file as a job for workers, sending nothing. The same file again (same
    content, account and API) is the same job: its failed, blocked and cancelled rows are armed
    again, as `run` of it would, and it is open for workers again.

    Raises JobFileError for outside `@key`s naming no done operation and for rows reusing a
    done key with other content; JobBusy when a live process runs the job right now.
    """
    owner = lease_owner()
    async with opened_store(settings.db_url) as store:
        if sandbox:
            settings = sandbox_target(settings)
        await _check_outside_refs(store, checked, settings)
        scoped = replace(checked.source, job_id=scoped_job_id(checked.source, settings),
                         account_id=settings.account_id, base_url=settings.base_url)
        job, created = await store.add_job(scoped, checked.specs(), owner=owner,
                                           lease_seconds=settings.lease_seconds)
        if not created:
            holder = await store.acquire_job(job.job_id, owner, now=time.time(),
                                             lease_seconds=settings.lease_seconds)
            if holder is not None:
                raise JobBusy(f"job {job.job_id} is being run by {holder.describe()}: submit "
                              "its file again once that run ends")
        try:
            if not created:
                await _take_over(store, job, rerun=True, stored_now=False)
            counts = await store.counts(job.job_id)
            if any(n for state, n in counts.items() if state not in FINAL_STATES):
                await store.set_job_state(job.job_id, JobState.PENDING)
        finally:
            with anyio.CancelScope(shield=True):
                await store.release_job(job.job_id, owner)
        stored = await store.get_job(job.job_id)
        assert stored is not None
        return Submitted(stored, created, counts)


async def run_shared(
    store: Store, job: JobInfo, settings: Settings, owner: str, stop: anyio.Event,
    budget: RequestBudget, progress: tuple[TextIO, float, bool],
    started: Callable[[], None] = lambda: None,
) -> RunSummary:
    """A worker's turn on `job`, which other workers may share: joins it (under `owner`),
    runs it against the job's own account and API drawing on the account's shared `budget`,
    and leaves it, its unsent rows free at once for the others. The last worker to leave a job
    with rows not done records how it was left (interrupted, or stopped by the deadline). A
    job of the in-process sandbox is held by one worker at a time instead. `started` is called
    once the job is joined (or held).

    Raises JobBusy when a `run` or `resume` holds the job for itself; otherwise as `run_job`
    does: JobFileError when the checks before the first write refuse rows, ConfigError when
    Wix refuses the key."""
    settings = _stored_target(job, settings)
    # A job of the in-process sandbox (`submit --sandbox`) runs in one process at a time, as
    # `resume` runs it: each process would start a sandbox of its own on the same saved world.
    shared = job.base_url != SANDBOX_TARGET
    now = time.time()
    holder = (await store.join_job(job.job_id, owner, now=now,
                                   lease_seconds=settings.lease_seconds) if shared else
              await store.acquire_job(job.job_id, owner, now=now,
                                      lease_seconds=settings.lease_seconds))
    if holder is not None:
        raise JobBusy(f"job {job.job_id} is being run by {holder.describe()}")
    started()
    result: RunResult | None = None
    turn = _worker_turn(store, job.job_id, owner, settings.lease_seconds) if shared else None
    try:
        async with anyio.create_task_group() as keeper:
            if turn is not None:
                # From the join on, the checks before the first write included (they can
                # outlast a turn): a lapsed turn gives this worker's rows to the others.
                keeper.start_soon(_keep_turn, turn, settings.lease_seconds)
            result, run = await _take_over_and_run(
                store, job, settings, owner, stop, progress, rerun=False, stored_now=False,
                budget=budget, turn=turn)
            keeper.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if not shared:
                await store.release_job(job.job_id, owner)
            elif await store.leave_job(job.job_id, owner, now=time.time()) and result:
                await _left_as(store, job.job_id, result)
    assert result is not None  # the task group above raised otherwise
    final = await store.get_job(job.job_id)
    assert final is not None
    return RunSummary(final, result.counts, result.outcome.value, result.reason,
                      result.succeeded_now, await store.overview(final), run,
                      result.stop_kind.value if result.stop_kind else None)


def _worker_turn(store: Store, job_id: str, owner: str, lease_seconds: float) -> WorkerTurn:
    async def renew() -> float | None:
        now = time.time()
        if await store.renew_worker(job_id, owner, now=now, lease_seconds=lease_seconds):
            return now + lease_seconds
        return None

    return WorkerTurn(renew)


async def _keep_turn(turn: WorkerTurn, lease_seconds: float) -> None:
    """Renew a worker's turn every third of its length until it is lost or the run ends (a
    busy database: the next beat tries again)."""
    while True:
        try:
            if not await turn.renew():
                return
        except StoreError as exc:
            log.warning("turn_renew_failed", extra={"error": str(exc)})
        await anyio.sleep(lease_seconds / 3)


async def _left_as(store: Store, job_id: str, result: RunResult) -> None:
    """The state of a shared job its last worker leaves with rows not done: what a single
    run's end would have made it (the engine leaves it alone while others may go on)."""
    counts = await store.counts(job_id)
    if not any(n for state, n in counts.items() if state not in FINAL_STATES):
        return
    if result.outcome is RunOutcome.INTERRUPTED:
        await store.set_job_state(job_id, JobState.INTERRUPTED)
    elif result.stop_kind is StopKind.DEADLINE:
        await store.set_job_state(job_id, JobState.STOPPED, stop_reason=result.reason)


def sandbox_target(settings: Settings) -> Settings:
    """Jobs run against the in-process sandbox are stored with a fixed target, not its port."""
    from bulkops.sandbox import SandboxConfig

    config = SandboxConfig()
    return replace(settings, base_url=SANDBOX_TARGET, account_id=config.account_id,
                   api_key=config.api_key)


def _stored_target(job: JobInfo, settings: Settings) -> Settings:
    """`resume` runs against the account and API the job was stored with; a different one
    given on purpose is refused, since it would repeat the job's rows elsewhere."""
    _check_same_target(job, settings)
    if job.base_url == SANDBOX_TARGET:
        return sandbox_target(settings)
    settings = replace(
        settings,
        base_url=job.base_url or settings.base_url or DEFAULT_BASE_URL,
        account_id=job.account_id or settings.account_id,
    )
    require_credentials(settings)
    return settings


async def _check_outside_refs(store: Store, checked: CheckedJob, settings: Settings) -> None:
    """Every problem of the file at once: its own, and `@key`s naming no done operation."""
    scope = scope_of(settings.account_id, settings.base_url)
    errors = [*checked.errors, *await outside_problems(store, checked, scope)]
    if errors:
        raise JobFileError(checked.source.path, sorted(errors, key=lambda e: e.line))


async def _acquire(
    store: Store, job: JobInfo, owner: str, settings: Settings, wait: float | None,
    stop: anyio.Event, progress: tuple[TextIO, float, bool],
) -> bool:
    """Take the job's lease. Raises JobBusy if another live process holds it (after `wait`
    seconds, when given); False if a stop was asked for while waiting."""
    started = time.monotonic()
    told = False
    while True:
        holder = await store.acquire_job(
            job.job_id, owner, now=time.time(), lease_seconds=settings.lease_seconds
        )
        if holder is None:
            return True
        ends_in = max(0.0, (holder.expires_at or 0.0) - time.time())
        busy = (f"job {job.job_id} is being run by {holder.describe()} (if that process died, "
                f"its lease ends in {ends_in:.0f} s)")
        left = None if wait is None else wait - (time.monotonic() - started)
        if left is None or left <= 0:
            raise JobBusy(busy + ("" if wait else "; wait for it with --wait"))
        if not told:
            progress[0].write(f"waiting: {busy}\n")
            told = True
        with anyio.move_on_after(min(LEASE_POLL, left, ends_in + 0.05)):
            await stop.wait()
        if stop.is_set():
            return False


async def _take_over(store: Store, job: JobInfo, *, rerun: bool, stored_now: bool) -> TakeOver:
    if rerun and not stored_now:
        # The file is run again: rows that reuse a done key with other content are refused
        # before anything changes (a job stored just now was checked when it was added).
        errors = await store.conflicts(job)
        if errors:
            raise JobFileError(job.path, errors)
    taken = await store.take_over(job.job_id, now=time.time(), rerun=rerun)
    log.info("job_taken", extra={"job": job.job_id, "adopted": taken.adopted,
                                 "rearmed": taken.rearmed, "elsewhere": taken.held_elsewhere})
    return taken


async def _take_over_and_run(
    store: Store, job: JobInfo, settings: Settings, owner: str, stop: anyio.Event,
    progress: tuple[TextIO, float, bool], *, rerun: bool, stored_now: bool,
    budget: RequestBudget | None = None, turn: WorkerTurn | None = None,
) -> tuple[RunResult, RunRecord]:
    """The run of a job whose lease `owner` holds (with a `turn`, as one of the workers
    sharing it). `budget`: the account's budget this run shares with others (a worker's
    jobs); by default one of its own at `settings.rate`."""
    await _take_over(store, job, rerun=rerun, stored_now=stored_now)
    if settings.deadline is not None:
        _warn_if_late(await store.counts(job.job_id), settings, progress[0])
    async with _wix(settings, job) as base_url:
        # Every request passes the outage gate, is counted on the run's timeline, and then
        # waits for its turn in the adaptive budget: the checks' reads as much as the sends.
        if budget is None:
            # The account's budget is shared with every other process on the database.
            budget = SharedBudget(AdaptiveBudget(settings.rate, pacer=settings.pacer), store,
                                  scope_of(settings.account_id, settings.base_url))
        if turn is not None:
            budget = TurnGate(budget, turn)  # no request leaves once the turn is lost
        timeline = RequestTimeline(budget, bucket_seconds=BUCKET_SECONDS)
        gate = OutageGate(timeline)
        async with WixClient(
            base_url=base_url,
            api_key=settings.api_key,
            account_id=settings.account_id,
            budget=gate,
            timeout=settings.timeout,
        ) as client:
            ready = await _checked(store, job, client, settings, stop)
            # Recorded once the checks passed: a run refused by them did nothing to account for.
            run = await store.start_run(
                RunRecord(run_id=0, job_id=job.job_id, command="run" if rerun else "resume",
                          started_at=timeline.started_at,
                          budget_per_second=settings.rate.per_second,
                          bucket_seconds=BUCKET_SECONDS),
                owner,
            )
            return await _run_engine(store, job, settings, _Wire(client, gate, timeline),
                                     ready, owner, run, stop, progress, turn=turn)


async def _checked(
    store: Store, job: JobInfo, client: WixClient, settings: Settings, stop: anyio.Event
) -> Ready:
    """The checks before the first write (`prerun`). The job shows as running while they wait
    for Wix; when they refuse the job (or fail), it is left as it was: nothing was done."""
    before = await store.get_job(job.job_id)
    await store.set_job_state(job.job_id, JobState.RUNNING)
    try:
        return await check_before_sending(store, job, client, settings, stop)
    except Exception:
        if before is not None:
            with anyio.CancelScope(shield=True):
                await store.set_job_state(job.job_id, before.state,
                                          stop_reason=before.stop_reason)
        raise


@dataclass(frozen=True)
class _Wire:
    """The run's connection to Wix: the client, and the budget its requests pass."""

    client: WixClient
    gate: OutageGate
    timeline: RequestTimeline


@asynccontextmanager
async def _wix(settings: Settings, job: JobInfo) -> AsyncIterator[str]:
    """The base URL to send to: the job's API, or an in-process sandbox that keeps its world
    beside the database (so `resume` after Ctrl-C on the demo finds what was created)."""
    if job.base_url != SANDBOX_TARGET:
        yield settings.base_url
        return
    from bulkops.sandbox import SandboxConfig, running_sandbox
    from bulkops.sandbox.statefile import held

    path = sandbox_state_file(settings.db_url)
    # One sandbox at a time on a saved world: this process's jobs on it take turns (a worker
    # runs several at once); another process's is JobBusy (a worker looks again later).
    turn = _WORLDS.get(path) or _WORLDS.setdefault(path, anyio.Lock())
    async with turn:
        with held(path, "--db"):
            config = SandboxConfig(state_file=path, demo_sites=True)
            async with running_sandbox(config, port=0) as fake:
                yield fake.base_url


# The turn on each saved world, while any job of this process waits for it or holds it.
_WORLDS: weakref.WeakValueDictionary[Path, anyio.Lock] = weakref.WeakValueDictionary()


async def _job_to_resume(store: Store, job_id: str) -> JobInfo:
    job = await store.get_job(job_id) if job_id else await store.latest_job(unfinished_only=True)
    if job is None:
        raise ConfigError(f"no job {job_id!r} in this database" if job_id
                          else "no unfinished job in this database")
    if job.state is JobState.CANCELLED:
        raise ConfigError(f"job {job.job_id} was cancelled: run its file again to run its "
                          "unfinished rows")
    return job


def scoped_job_id(source: JobSource, settings: Settings) -> str:
    """A job is the file's content run against one account at one API: the same file sent to
    another account is another job, never a continuation."""
    scope = f"{source.job_id}|{settings.account_id}|{settings.base_url}"
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


def _check_same_target(job: JobInfo, settings: Settings) -> None:
    """Refuse to resume a job against another account or API than the one it ran against
    (an empty setting means "the job's own")."""
    for what, stored, given in (
        ("account", job.account_id, settings.account_id),
        ("base URL", job.base_url, settings.base_url),
    ):
        if stored and given and stored != given:
            raise ConfigError(
                f"job {job.job_id} ran against {what} {stored}, not {given}: "
                f"resume it with the same {what}"
            )


async def _run_engine(
    store: Store, job: JobInfo, settings: Settings, wire: _Wire, ready: Ready, owner: str,
    run: RunRecord, stop: anyio.Event, progress: tuple[TextIO, float, bool], *,
    turn: WorkerTurn | None = None,
) -> tuple[RunResult, RunRecord]:
    engine = Engine(
        store=store,
        client=wire.client,
        budget=wire.gate,
        config=EngineConfig(
            account_id=settings.account_id,
            concurrency=settings.concurrency,
            max_attempts=settings.max_attempts,
            settle=settings.settle,
            backoff_base=settings.backoff_base,
            owner=owner,
            deadline=settings.deadline,
            outage_limit=settings.outage_limit,
            unreachable_since=ready.unreachable_since,
            shared_lease=settings.lease_seconds if turn is not None else None,
        ),
        breaker=FailureBreaker(
            BreakerSettings(window=settings.breaker_window, ratio=settings.breaker_ratio)
        ),
        outage=wire.gate,
        roles=ready.roles,
        turn=turn,
    )
    stream, interval, live = progress
    record = _RunRecorder(run, engine, wire.timeline, adopted=ready.adopted)
    freeze_heap()  # what lasts the whole run is built: imports, the job, its checks

    async def display() -> None:
        await show_progress(engine.progress, stream, interval=interval, live=live)

    async with anyio.create_task_group() as tg:
        tg.start_soon(display)
        tg.start_soon(_heartbeat, store, job.job_id, owner, settings.lease_seconds, engine,
                      record, turn)
        try:
            result = await engine.run(job.job_id, stop)
        finally:
            tg.cancel_scope.cancel()
    if ready.adopted:
        # Adopted rows succeeded in this run, without a request: not "done before".
        result = replace(result, succeeded_now=result.succeeded_now + ready.adopted)
    if ready.unreachable_since is not None and result.stop_kind is StopKind.OUTAGE:
        result = replace(result, reason=never_answered(result.reason, settings.base_url))
    final = record.now(finished=True, outcome=result.outcome.value, reason=result.reason)
    with anyio.CancelScope(shield=True):
        await store.save_run(final)
    return result, final


def never_answered(reason: str | None, base_url: str) -> str:
    """The stop reason of a run whose first read Wix never answered: most often a wrong
    address or no network, not an outage at Wix, so the line says what was tried."""
    return (f"{reason or 'Wix unreachable'}; Wix at {base_url} never answered this run: check "
            "--base-url (BULKOPS_BASE_URL) and this machine's network")


class _RunRecorder:
    """The run's record as it stands: the engine's counts, the budget's, the timeline."""

    def __init__(self, run: RunRecord, engine: Engine, timeline: RequestTimeline, *,
                 adopted: int = 0) -> None:
        self._run = run
        self._engine = engine
        self._timeline = timeline
        self._adopted = adopted  # rows the checks recorded as succeeded (--if-exists adopt)

    def now(self, *, finished: bool = False, outcome: str | None = None,
            reason: str | None = None) -> RunRecord:
        stats = self._engine.stats()
        budget = self._engine.progress().budget
        return replace(
            self._run,
            finished_at=time.time() if finished else None,
            outcome=outcome,
            reason=reason,
            requests=budget.requests,
            throttled=budget.throttled,
            retries=stats.retries,
            reconciled=stats.reconciled,
            succeeded=stats.succeeded + self._adopted,
            failed=stats.failed,
            timeline=self._timeline.counts,
        )


async def _heartbeat(
    store: Store, job_id: str, owner: str, lease_seconds: float, engine: Engine,
    record: _RunRecorder, turn: WorkerTurn | None,
) -> None:
    """Renew the job's lease every third of its length (a worker sharing the job: its `turn`
    is renewed by the worker's own keeper), and save the run's record so far (a run killed
    later still leaves its account). A lease found taken by another process (this one stalled
    past its end), a worker's turn lost, or a shared job another worker stopped (its breaker)
    stops the run: both could otherwise send the same rows."""
    while True:
        await anyio.sleep(lease_seconds / 3)
        stopped_by = None
        try:
            if turn is not None:
                held = not turn.lost
                job = await store.get_job(job_id)
                if job is not None and job.state is JobState.STOPPED:
                    stopped_by = job.stop_reason or "stopped"
            else:
                held = await store.renew_job(job_id, owner, now=time.time(),
                                             lease_seconds=lease_seconds)
            await store.save_run(record.now())
        except StoreError as exc:  # a busy database: the next beat tries again
            log.warning("lease_renew_failed", extra={"job": job_id, "error": str(exc)})
            continue
        if not held:
            engine.halt(f"another process took over job {job_id} after this one stalled "
                        "past its lease; stopped to avoid sending rows twice")
            return
        if stopped_by is not None:
            engine.halt(f"another worker stopped job {job_id}: {stopped_by}")
            return


def _warn_if_late(counts: Mapping[OpState, int], settings: Settings, stream: TextIO) -> None:
    """Say at once when the rows left cannot all be sent before --finish-by: each takes at least
    one request, and the budget allows `rate` of them."""
    assert settings.deadline is not None
    left = sum(n for state, n in counts.items() if state not in FINAL_STATES)
    now = time.time()
    needed = left / settings.rate.per_second
    if left and now + needed > settings.deadline:
        stream.write(
            f"warning: {left} row(s) need at least {format_span(needed)} at {settings.rate}, "
            f"more than the time left until {describe_deadline(settings.deadline, now)}: what "
            "is not done by then stays pending for the next run\n"
        )
