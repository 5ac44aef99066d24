"""`bulkops worker`: run the open jobs of a database, several at once, until stopped or idle.

Any number of workers, on any number of machines, may watch one database, and share its jobs
(`runner.run_shared`): each claims a job's ready rows under its own name and heartbeats; a
worker that dies stops renewing its turn, and once it has lapsed (`--lease-seconds`) another
takes its rows back, reconciling those it had sent before anything is sent again, as `resume`
does after a crash. A job a `run` or `resume` holds is left to it, and a job of the in-process
sandbox runs in one worker at a time. Each job remembers its Wix account; the key comes from
this worker's environment (`AccountKeys`), never from the database. The jobs of one account
share one request budget in this process (`budgetshare`), and it takes its turns from the
account's budget every process on the database shares (`sharedbudget`).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import anyio

from bulkops.budgetshare import AccountBudgets
from bulkops.errors import BulkOpsError, ConfigError, JobBusy, JobFileError
from bulkops.identity import scope_of
from bulkops.jobviews import lease_owner
from bulkops.locations import SANDBOX_TARGET
from bulkops.model import SHARED_OWNER, JobInfo, JobState, OpState
from bulkops.ratelimit import AdaptiveBudget
from bulkops.runner import RunSummary, run_shared
from bulkops.settings import Settings
from bulkops.sharedbudget import SharedBudget
from bulkops.store.base import Store

log = logging.getLogger(__name__)

KEY_VARIABLE = "WIX_API_KEY"
# The refusals a stopped job keeps as its reason: enough to say what to fix, one line each.
MAX_REASONS_KEPT = 3


def key_variable(account_id: str) -> str:
    """The environment variable holding the key of one account: WIX_API_KEY_ and the account
    id in capitals with `_` for `-` (a variable name cannot hold `-`)."""
    return f"{KEY_VARIABLE}_{account_id.strip().upper().replace('-', '_')}"


@dataclass(frozen=True)
class AccountKeys:
    """API keys by Wix account: `WIX_API_KEY_<ACCOUNT>` for each, and `WIX_API_KEY` for the
    account `WIX_ACCOUNT_ID` names (for any account without a key of its own when that is
    not set). Built by the CLI, the only reader of the environment."""

    by_account: Mapping[str, str] = field(default_factory=dict)  # account id (lower) -> key
    default: str = ""
    default_account: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> AccountKeys:
        prefix = KEY_VARIABLE + "_"
        by_account = {
            name[len(prefix):].replace("_", "-").lower(): value
            for name, value in environ.items()
            if name.startswith(prefix) and value
        }
        return cls(by_account, environ.get(KEY_VARIABLE, ""),
                   environ.get("WIX_ACCOUNT_ID", "").strip().lower())

    def key_for(self, account_id: str) -> str:
        """The key for `account_id`, or "" when this worker has none."""
        account = account_id.strip().lower()
        own = self.by_account.get(account)
        if own:
            return own
        if self.default and self.default_account in ("", account):
            return self.default
        return ""

    def secrets(self) -> list[str]:
        """Every key, for the log filter that blanks them out."""
        return [key for key in (self.default, *self.by_account.values()) if key]


@dataclass(frozen=True)
class WorkerOptions:
    max_jobs: int = 4  # jobs run side by side in this process
    until_idle: bool = False  # exit once no open job is left that this worker could run
    poll: float = 2.0  # seconds between looks for new jobs
    progress_interval: float = 60.0  # seconds between a running job's progress lines


@dataclass(frozen=True)
class JobEnd:
    """How one job's turn in this worker ended."""

    job_id: str
    outcome: str  # RunOutcome value, or "left" (this worker could not run it)
    reason: str | None
    counts: Mapping[OpState, int] = field(default_factory=dict)


Say = Callable[[str], None]


class Worker:
    """Takes open jobs as their leases allow, up to `max_jobs` at once, each run by its own
    engine with `settings` (rate, concurrency, retries...) against the job's own target."""

    def __init__(self, store: Store, settings: Settings, keys: AccountKeys,
                 options: WorkerOptions, say: Say) -> None:
        self._store = store
        self._settings = settings
        self._keys = keys
        self._options = options
        self._say = say
        self._budgets = AccountBudgets(
            lambda scope: SharedBudget(AdaptiveBudget(settings.rate, pacer=settings.pacer),
                                       store, scope))
        self.owner = lease_owner()
        self._running: set[str] = set()
        self._left: set[str] = set()  # jobs this worker cannot run: not taken again
        self._changed = anyio.Event()
        self.ended: list[JobEnd] = []

    async def run(self, stop: anyio.Event) -> list[JobEnd]:
        """Run jobs until `stop` is set (jobs running stop as `run` does on SIGINT, their
        leases given up at once), or with `until_idle` until the database holds no open job
        (those other workers hold included: one of them may die and leave its job)."""
        async with anyio.create_task_group() as jobs:
            while not stop.is_set():
                self._changed = anyio.Event()
                open_jobs = await self._store.open_jobs()
                waiting = [job for job in open_jobs
                           if job.job_id not in self._left and job.job_id not in self._running]
                await self._start(jobs, waiting, stop)
                if self._options.until_idle and not self._running and not waiting:
                    break
                with anyio.move_on_after(self._options.poll):
                    async with anyio.create_task_group() as watch:
                        watch.start_soon(_cancel_when, stop, watch.cancel_scope)
                        await self._changed.wait()
                        watch.cancel_scope.cancel()
        return self.ended

    async def _start(self, jobs: anyio.abc.TaskGroup, waiting: list[JobInfo],
                     stop: anyio.Event) -> None:
        now = time.time()
        for job in waiting:
            if len(self._running) >= self._options.max_jobs:
                return
            sandboxed = job.base_url == SANDBOX_TARGET  # run by one process at a time
            if job.held_at(now) and (sandboxed or job.lease_owner != SHARED_OWNER):
                continue  # a process holds it for itself
            settings = self._target(job)
            if settings is None:
                continue
            self._running.add(job.job_id)
            jobs.start_soon(self._run_job, job, settings, stop)

    def _target(self, job: JobInfo) -> Settings | None:
        """The settings to run `job` with, or None (said once) when this worker has no key
        for its account."""
        if job.base_url == SANDBOX_TARGET:
            return self._settings  # the in-process sandbox brings its own key
        key = self._keys.key_for(job.account_id)
        if key:
            return replace(self._settings, api_key=key, account_id=job.account_id,
                           base_url=job.base_url)
        self._leave(job.job_id, f"no API key for its account {job.account_id} in this "
                                f"worker's environment: set {key_variable(job.account_id)}")
        return None

    async def _run_job(self, job: JobInfo, settings: Settings, stop: anyio.Event) -> None:
        def started() -> None:
            self._say(f"job {job.job_id}: started ({job.path}, {job.total} row(s), account "
                      f"{job.account_id or '-'})")

        try:
            lines = _JobLines(job.job_id, self._say)
            summary = await run_shared(
                self._store, job, settings, self.owner, stop,
                self._budgets.share(scope_of(job.account_id, job.base_url)),
                (lines, self._options.progress_interval, False), started,
            )
        except JobFileError as exc:
            # The checks before the first write refused rows: nothing was sent. The job waits
            # for its file to be fixed and submitted again; no worker should take it again.
            reasons = "; ".join(f"line {error.line}: {error.reason}"
                                for error in exc.errors[:MAX_REASONS_KEPT])
            more = len(exc.errors) - MAX_REASONS_KEPT
            reason = (f"{len(exc.errors)} row(s) refused by the checks against Wix, nothing "
                      f"sent: fix them and submit the file again ({reasons}"
                      + (f"; and {more} more)" if more > 0 else ")"))
            with anyio.CancelScope(shield=True):
                await self._store.set_job_state(job.job_id, JobState.STOPPED,
                                                stop_reason=reason)
            self._leave(job.job_id, reason)
        except JobBusy:
            pass  # a `run` took the job for itself first: look again later
        except (ConfigError, BulkOpsError) as exc:
            self._leave(job.job_id, str(exc))
        else:
            self._ended(summary)
        finally:
            self._running.discard(job.job_id)
            self._changed.set()

    def _ended(self, summary: RunSummary) -> None:
        counts = {state: n for state, n in summary.counts.items() if n}
        shown = ", ".join(f"{n} {state.value}" for state, n in counts.items()) or "no rows"
        if summary.outcome == "interrupted":
            reason = ": the rows not done are left to the other workers, or the next one"
        elif summary.reason and summary.outcome != "finished":
            reason = f": {summary.reason}"
        else:
            reason = ""
        self._say(f"job {summary.job.job_id}: {summary.outcome} ({shown}){reason}")
        self.ended.append(JobEnd(summary.job.job_id, summary.outcome, summary.reason, counts))

    @property
    def left(self) -> int:
        """How many jobs this worker could not run (no key, rows refused)."""
        return len(self._left)

    def _leave(self, job_id: str, reason: str) -> None:
        self._left.add(job_id)
        self._say(f"job {job_id}: left: {reason}")
        self.ended.append(JobEnd(job_id, "left", reason))


async def _cancel_when(stop: anyio.Event, scope: anyio.CancelScope) -> None:
    await stop.wait()
    scope.cancel()


class _JobLines(io.StringIO):
    """A text stream whose lines (a run's progress, its warnings) become the worker's lines,
    each naming its job."""

    def __init__(self, job_id: str, say: Say) -> None:
        super().__init__()
        self._job_id = job_id
        self._say = say
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            if line.strip():
                self._say(f"job {self._job_id}: {line}")
        return len(text)
