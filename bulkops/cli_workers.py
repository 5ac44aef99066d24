"""The `bulkops` commands that split storing a job from running it: submit, worker.

`submit` stores a validated job and sends nothing; any number of `worker` processes, on any
number of machines sharing the database (PostgreSQL, or one SQLite file on one machine), run the
open jobs. The group, the shared options and the error handling are `cli`'s.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio
import click

from bulkops.cli import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_STOPPED,
    _configure_logging,
    _run_async,
    _settings,
    account_id_option,
    base_url_option,
    check_job,
    cli,
    database_choice,
    db_option,
    worker_run_options,
)
from bulkops.errors import JobFileError
from bulkops.locations import prepare_default, sandbox_state_file
from bulkops.model import FINAL_STATES, OpState
from bulkops.settings import DEFAULT_BASE_URL, Settings

if TYPE_CHECKING:
    from bulkops.worker import JobEnd


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--sandbox", is_flag=True,
              help="The job is for the in-process sandbox of `run --sandbox` (its world is kept "
                   "beside the database).")
@base_url_option
@account_id_option
@db_option
def submit(file: str, sandbox: bool, base_url: str, account_id: str, db: str | None) -> None:
    """Validate FILE and store it as a job for `bulkops worker`, sending nothing.

    Prints the job's id alone on standard output (JOB=$(bulkops submit FILE)). The job
    remembers its account and API; workers bring the key. The same file again is the same job:
    its failed, blocked and cancelled rows run again, as with `run`. Exit 4 while a process runs
    the job.
    """
    from bulkops.credentials import require_account_id
    from bulkops.wixwire import checked_base_url

    choice = database_choice(db)
    settings = Settings(db_url=choice.url,
                        base_url=checked_base_url(base_url or DEFAULT_BASE_URL),
                        account_id=account_id.strip())
    if not sandbox:
        # Before the file is read: a missing account is one line at once, not after a minute
        # of checking a million rows.
        require_account_id(settings.account_id, why="the job remembers the account it is for")
    else:
        sandbox_state_file(choice.url)  # a world that could not be kept: one line, now
    checked = check_job(file)
    if checked.errors and not checked.outside:
        raise JobFileError(checked.source.path, checked.errors)
    # After the first pass: the engine's modules would add to its peak memory.
    from bulkops.runner import submit_job

    prepare_default(choice)
    stored = anyio.run(lambda: submit_job(checked=checked, settings=settings, sandbox=sandbox))
    job = stored.job
    open_rows = sum(n for state, n in stored.counts.items() if state not in FINAL_STATES)
    where = "" if choice.default else f" --db {shlex.quote(choice.shown)}"
    if stored.created:
        told = f"stored, {job.total} operation(s)"
    elif open_rows:
        told = f"already stored: {open_rows} row(s) to run"
    else:
        told = "already stored, and every row is done: nothing to run"
    click.echo(f"job {job.job_id} ({file}): {told}; account {job.account_id}", err=True)
    if open_rows:
        click.echo(f"run it with: bulkops worker{where} (or bulkops resume {job.job_id}{where})",
                   err=True)
    click.echo(job.job_id)


@cli.command()
@click.option("--until-idle", is_flag=True,
              help="Exit once the database holds no open job (those other workers run "
                   "included). Without it, watch for new jobs until stopped.")
@click.option("--jobs", "max_jobs", envvar="BULKOPS_WORKER_JOBS", show_envvar=True, default=4,
              show_default=True, type=click.IntRange(1, 64),
              help="Jobs run side by side in this worker, each with --concurrency requests in "
                   "flight; the jobs of one account share its --rate.")
@click.option("--poll", envvar="BULKOPS_WORKER_POLL", show_envvar=True, default=2.0,
              show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds between looks for new jobs.")
@worker_run_options
def worker(until_idle: bool, max_jobs: int, poll: float, verbose: int,
           progress_interval: float, log_format: str, db: str | None, **opts: Any) -> None:
    """Run the open jobs of the database, several at once, until stopped (SIGINT/SIGTERM:
    requests in flight finish, leases are given up at once) or, with --until-idle, until no
    job is left.

    Start as many as you like, on as many machines: workers share each job, each claiming its
    ready rows under its own name; the rows of a worker that dies go back to the others once
    its turn lapses (--lease-seconds), those it had in flight looked up at Wix before anything
    is sent again. Every process on the database keeps to each account's --rate together.
    Each job runs against the account
    and API it was submitted with, using that account's key from this worker's environment:
    WIX_API_KEY_<ACCOUNT> (the account id in capitals, `_` for `-`), or WIX_API_KEY for the
    account WIX_ACCOUNT_ID names (for every account, when that is not set).

    Exit codes: 0 every job it ran finished with every row done; 1 some rows failed or were
    blocked, or a job was left (no key for its account, rows refused by the checks); 3 a job
    stopped early; 130 interrupted.
    """
    from bulkops.jobviews import require_existing
    from bulkops.worker import AccountKeys, Worker, WorkerOptions

    choice = database_choice(db)
    require_existing(choice.url)  # a mistyped --db has no jobs: never create one
    keys = AccountKeys.from_environment(os.environ)
    settings = _settings(choice, base_url="", account_id="", **opts, api_key="")
    # Every key is a secret for the log filter, not only the one a single run would use.
    _configure_logging(verbose, settings, log_format, secrets=keys.secrets())
    options = WorkerOptions(max_jobs=max_jobs, until_idle=until_idle, poll=poll,
                            progress_interval=progress_interval)

    def say(line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        click.echo(f"{stamp} {line}")

    async def work(stop: anyio.Event) -> tuple[list[JobEnd], bool]:
        from bulkops.jobviews import opened_store

        async with opened_store(settings.db_url) as store:
            runner = Worker(store, settings, keys, options, say)
            say(f"worker {runner.owner}: running the open jobs of {choice.shown}")
            ended = await runner.run(stop)
            if stop.is_set():
                say("stopped: jobs this worker ran are left to the other workers, or the next")
            elif until_idle and runner.left:
                say(f"idle: no open job left that this worker can run ({runner.left} left: "
                    "see above)")
            elif until_idle:
                say("idle: no open job left")
            return ended, stop.is_set()

    ended, interrupted = _run_async(work)
    sys.exit(_worker_exit(ended, interrupted))


def _worker_exit(ended: list[JobEnd], interrupted: bool) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    if any(end.outcome == "stopped" for end in ended):
        return EXIT_STOPPED
    not_done = (OpState.FAILED, OpState.BLOCKED, OpState.CANCELLED)
    if any(end.outcome == "left" or any(end.counts.get(state) for state in not_done)
           for end in ended):
        return EXIT_SOME_FAILED
    return EXIT_OK
