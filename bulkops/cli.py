"""The `bulkops` command: flags, the environment, exit codes and output.

The only module that reads the environment (through click's `envvar`) or prints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

import anyio
import click

from bulkops import loop as event_loop
from bulkops.console import exit_on_signal
from bulkops.errors import BulkOpsError, ConfigError, JobBusy, JobFileError, StoreError
from bulkops.locations import (
    DbChoice,
    choose_db,
    database_exists,
    prepare_default,
    sandbox_state_file,
)
from bulkops.model import OpState

if TYPE_CHECKING:
    from bulkops.jobfile import CheckedJob
    from bulkops.runner import RunSummary
from bulkops.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_RATE,
    IF_EXISTS_CHOICES,
    PACER_NAMES,
    IfExists,
    PacerName,
    Settings,
    parse_rate,
)

EXIT_OK, EXIT_SOME_FAILED, EXIT_INVALID, EXIT_STOPPED, EXIT_BUSY, EXIT_INTERRUPTED = (
    0, 1, 2, 3, 4, 130
)

log = logging.getLogger(__name__)


class BulkOpsGroup(click.Group):
    """Turns the project's errors into one clear line and the contract's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except BaseExceptionGroup as group:
            # Raised out of a task group: the error inside is what the user must hear about.
            error = unwrapped(group)
            if not isinstance(error, Exception):
                raise error from group  # KeyboardInterrupt, SystemExit: as they are
            _exit_for(error)
        except Exception as exc:
            _exit_for(exc)


def unwrapped(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error a task group's exception group stands for: the first interruption, else the
    first of the project's errors, however deeply nested; else its first error."""
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        else:
            leaves.append(exc)

    collect(group)
    for kinds in ((KeyboardInterrupt, SystemExit), (BulkOpsError,), (BrokenPipeError,)):
        for leaf in leaves:
            if isinstance(leaf, kinds):
                return leaf
    return leaves[0] if leaves else group


def _exit_for(exc: Exception) -> NoReturn:
    """One line on stderr for `exc`, and the contract's exit code."""
    if isinstance(exc, JobFileError):
        for error in exc.errors:
            click.echo(f"{exc.path}: {error}", err=True)
        click.echo(f"error: {len(exc.errors)} problem(s) in {exc.path}; nothing was sent",
                   err=True)
        sys.exit(EXIT_INVALID)
    if isinstance(exc, ConfigError | StoreError):
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    if isinstance(exc, JobBusy):
        click.echo(f"busy: {exc}", err=True)
        sys.exit(EXIT_BUSY)
    if isinstance(exc, BulkOpsError):
        # A failure that ended a run (Wix answering in a way no retry fixed): what was done
        # is in the database, and the next run continues from it.
        click.echo(f"stopped: {exc}; progress is saved", err=True)
        sys.exit(EXIT_STOPPED)
    if isinstance(exc, BrokenPipeError):
        # The reader went away (`bulkops jobs | head`): what it wanted was written.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (flushed at exit, never read)
        sys.exit(EXIT_OK)
    # Never a traceback for a user: one line, the details for -vv and bug reports.
    log.debug("unexpected_error", exc_info=exc)
    text = " ".join(str(exc).split()) or "no details"
    click.echo(f"error: unexpected failure ({type(exc).__name__}: {text}); progress is "
               "saved; run again with -vv for the details", err=True)
    sys.exit(EXIT_STOPPED)


@click.group(cls=BulkOpsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bulkops")
def cli() -> None:
    """Run Wix account-level bulk operations from a job file, exactly once, checkpointed.

    Exit codes: 0 all succeeded; 1 finished with failed or blocked rows; 2 invalid input,
    options or credentials (nothing sent); 3 stopped early (progress saved); 4 another process
    is running this job (nothing done); 130 interrupted.
    """


def db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`--db`, and `--lock-wait` beside it (which only configures the store: it is not a
    parameter of the command's function)."""
    fn = click.option(
        "--lock-wait", envvar="BULKOPS_LOCK_WAIT", show_envvar=True, default=None,
        type=click.FloatRange(0, 86400), expose_value=False, callback=_set_lock_wait,
        help="Seconds to wait for another process's write lock on a SQLite database before "
             "giving up (exit 2, nothing done). Default: 30.",
    )(fn)
    return click.option(
        "--db", envvar="BULKOPS_DB", show_envvar=True, default=None,
        help="Checkpoint database: a SQLAlchemy URL or a file path. Default: one per user in "
             "the platform's data directory (an existing ./bulkops.db is still used).",
    )(fn)


def _set_lock_wait(_ctx: click.Context, _param: click.Parameter, value: float | None) -> None:
    if value is not None:
        from bulkops.store.pragmas import set_lock_wait

        set_lock_wait(value)


def database_choice(db: str | None) -> DbChoice:
    """The database a command uses, telling the user when an old folder database is picked."""
    choice = choose_db(db)
    if choice.note:
        click.echo(choice.note, err=True)
    return choice


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

# Options `plan` shares with `run` and `resume`: where to send, as whom, how fast, what to do
# with a site that exists already.
base_url_option: Decorator = click.option(
    "--base-url", envvar="BULKOPS_BASE_URL", show_envvar=True, default="",
    help="Wix API base URL (plain http:// only for loopback hosts). run: "
         f"default {DEFAULT_BASE_URL}; resume: the job's own.")
account_id_option: Decorator = click.option(
    "--account-id", envvar="WIX_ACCOUNT_ID", show_envvar=True, default="",
    help="Your Wix account id (resume: default the job's own).")
rate_option: Decorator = click.option(
    "--rate", envvar="BULKOPS_RATE", show_envvar=True, default=DEFAULT_RATE,
    show_default=True, help="Request budget, e.g. 200/min or 5/s.")
timeout_option: Decorator = click.option(
    "--timeout", envvar="BULKOPS_TIMEOUT", show_envvar=True, default=30.0,
    show_default=True, type=click.FloatRange(0.1, 600),
    help="Seconds to wait for one answer.")
max_attempts_option: Decorator = click.option(
    "--max-attempts", envvar="BULKOPS_MAX_ATTEMPTS", show_envvar=True, default=8,
    show_default=True, type=click.IntRange(1, 100),
    help="Sends per operation before it fails (reads before the first write: as many, at "
         "least 5).")
backoff_base_option: Decorator = click.option(
    "--backoff-base", envvar="BULKOPS_BACKOFF_BASE", show_envvar=True, default=1.0,
    show_default=True, type=click.FloatRange(0.001, 60),
    help="Longest first retry wait in seconds; doubles per attempt (jittered).")
if_exists_option: Decorator = click.option(
    "--if-exists", envvar="BULKOPS_IF_EXISTS", show_envvar=True,
    type=click.Choice(IF_EXISTS_CHOICES), default="fail", show_default=True,
    help="A create_site row whose site name a site of the account has already: refuse the "
         "file before anything is sent (fail), or take that site as the row's result (adopt).")


wait_option: Decorator = click.option(
    "--wait", envvar="BULKOPS_WAIT", show_envvar=True, default=None,
    is_flag=False, flag_value=float("inf"), type=click.FloatRange(0),
    help="If another process runs this job: wait for it (--wait), or up to "
         "SECONDS (--wait=SECONDS), instead of exiting 4 at once.")
summary_json_option: Decorator = click.option(
    "--summary-json", envvar="BULKOPS_SUMMARY_JSON", show_envvar=True,
    default=None, type=click.Path(dir_okay=False),
    help="Also write the final summary to this file as JSON.")
# What names one job's target, or one run's waiting and summary: a worker's jobs bring their
# own target, and it never waits for a job another process runs.
_ONE_JOB_ONLY: tuple[Decorator, ...] = (
    base_url_option, account_id_option, wait_option, summary_json_option,
)


def worker_run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`run`'s options that make sense for a worker running many jobs."""
    return _run_options(fn, leave_out=_ONE_JOB_ONLY)


def _run_options(fn: Callable[..., Any],
                 leave_out: tuple[Decorator, ...] = ()) -> Callable[..., Any]:
    options: list[Decorator] = [
        base_url_option,
        account_id_option,
        rate_option,
        # Which local pacer spaces requests under the adaptive budget: kept selectable for the
        # budget benchmark (tests/benchmarks/bench_budget.py), not for users.
        click.option("--pacer", type=click.Choice(PACER_NAMES), default="aiolimiter",
                     hidden=True),
        click.option("--concurrency", envvar="BULKOPS_CONCURRENCY", show_envvar=True, default=8,
                     show_default=True, type=click.IntRange(1, 256),
                     help="Requests in flight at once."),
        max_attempts_option,
        timeout_option,
        if_exists_option,
        click.option("--settle", envvar="BULKOPS_SETTLE", show_envvar=True, default=15.0,
                     show_default=True, type=click.FloatRange(0, 3600),
                     help="Seconds allowed for Wix's site listing to catch up before an "
                          "unknown create is taken as not done."),
        backoff_base_option,
        click.option("--breaker-window", envvar="BULKOPS_BREAKER_WINDOW", show_envvar=True,
                     default=20, show_default=True, type=click.IntRange(2, 10000),
                     help="Final outcomes the failure breaker looks back over."),
        click.option("--breaker-ratio", envvar="BULKOPS_BREAKER_RATIO", show_envvar=True,
                     default=0.8, show_default=True, type=click.FloatRange(0.01, 1.0),
                     help="Share of that window one error must reach to pause the job (exit 3)."),
        wait_option,
        click.option("--lease-seconds", envvar="BULKOPS_LEASE_SECONDS", show_envvar=True,
                     default=30.0, show_default=True, type=click.FloatRange(1, 3600),
                     help="How long a run's hold on its job lasts without a heartbeat: after "
                          "a crash, another run may take the job over once it ends."),
        click.option("--progress-interval", envvar="BULKOPS_PROGRESS_INTERVAL", default=10.0,
                     type=click.FloatRange(0.1, 3600), show_default=True,
                     help="Seconds between progress lines when not on a terminal."),
        click.option("--finish-by", envvar="BULKOPS_FINISH_BY", show_envvar=True, default=None,
                     help="No operation starts after this: a clock time (06:00), a date-time "
                          "(2026-11-30T06:00) or a duration (2h30m). Rows left stay pending "
                          "(exit 3)."),
        click.option("--outage-limit", envvar="BULKOPS_OUTAGE_LIMIT", show_envvar=True,
                     default=900.0, show_default=True, type=click.FloatRange(1, 7 * 86400),
                     help="Seconds Wix may stay unreachable (every request failing) while the "
                          "run waits and probes; then it stops (exit 3, rows pending)."),
        summary_json_option,
        click.option("--log-format", envvar="BULKOPS_LOG_FORMAT", show_envvar=True,
                     type=click.Choice(["text", "json"]), default="text", show_default=True,
                     help="Event log lines (-v) as key=value text or one JSON object each."),
        click.option("-v", "--verbose", count=True, help="Log events to stderr (-vv: debug)."),
        db_option,
    ]
    for option in reversed(options):
        if option not in leave_out:
            fn = option(fn)
    return fn


def _settings(db: DbChoice, base_url: str, account_id: str, rate: str, concurrency: int,
              max_attempts: int, timeout: float, settle: float, backoff_base: float,
              breaker_window: int, breaker_ratio: float, lease_seconds: float,
              finish_by: str | None, outage_limit: float, api_key: str,
              if_exists: IfExists = "fail", pacer: PacerName = "aiolimiter") -> Settings:
    from bulkops.wixwire import checked_base_url  # refuses plain http to a non-loopback host

    return Settings(
        db_url=db.url, base_url=checked_base_url(base_url) if base_url else "",
        api_key=api_key, account_id=account_id.strip(),
        rate=parse_rate(rate), concurrency=concurrency, max_attempts=max_attempts,
        timeout=timeout, settle=settle, backoff_base=backoff_base,
        breaker_window=breaker_window, breaker_ratio=breaker_ratio, lease_seconds=lease_seconds,
        deadline=_deadline(finish_by), outage_limit=outage_limit, if_exists=if_exists,
        pacer=pacer,
    )


def _deadline(finish_by: str | None) -> float | None:
    if not finish_by:
        return None
    from datetime import datetime

    from bulkops.deadline import parse_finish_by

    return parse_finish_by(finish_by, datetime.now().astimezone()).timestamp()


def _configure_logging(verbose: int, settings: Settings, log_format: str = "text",
                       secrets: list[str] | None = None) -> None:
    """Log lines to stderr at -v's level; `secrets` (default: the run's key) never show."""
    from bulkops import logs

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logs.configure(level, sys.stderr, [settings.api_key] if secrets is None else secrets,
                   fmt=log_format)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--sandbox", is_flag=True,
              help="Run against a local fake Wix started in-process (demo, smoke test); it "
                   "keeps its world beside the database, so `resume` continues it.")
@_run_options
def run(file: str, sandbox: bool, verbose: int, progress_interval: float, db: str | None,
        wait: float | None, summary_json: str | None, log_format: str, **opts: Any) -> None:
    """Validate FILE, check it against Wix, store it, and run every operation to the end.

    Only what is new or not yet done is sent: a row whose operation (its key, in this database
    and account) already succeeded, in any earlier run of any file, is reported as done before.
    Failed, blocked and cancelled rows run again. The API key is read from WIX_API_KEY only
    (never a flag: flags show in process lists).
    """
    _check_summary_path(summary_json)
    with _summary_on_refusal(summary_json, file):
        _run(file, sandbox, verbose, progress_interval, db, wait, summary_json, log_format,
             **opts)


def _run(file: str, sandbox: bool, verbose: int, progress_interval: float, db: str | None,
         wait: float | None, summary_json: str | None, log_format: str, **opts: Any) -> None:
    """`run`'s work, inside its refused-run summary."""
    from bulkops.credentials import require_credentials

    choice = database_choice(db)
    opts["base_url"] = opts["base_url"] or DEFAULT_BASE_URL
    settings = _settings(choice, **opts, api_key=_api_key())
    if not sandbox:
        # Before the file is read: a missing key is one line at once, not after a minute of
        # checking a million rows.
        require_credentials(settings)
    else:
        sandbox_state_file(choice.url)  # a world that could not be kept: one line, now
    checked = check_job(file)
    if checked.errors and not checked.outside:
        raise JobFileError(checked.source.path, checked.errors)
    # After the first pass: the engine's modules would add to its peak memory.
    from bulkops.runner import run_job
    _configure_logging(verbose, settings, log_format)
    prepare_default(choice)
    summary = _run_async(run_job, checked=checked, settings=settings, sandbox=sandbox,
                         wait=wait, progress=_progress_options(progress_interval))
    sys.exit(_finish(summary, choice, summary_json))


@cli.command()
@click.argument("job", required=False)
@_run_options
def resume(job: str | None, verbose: int, progress_interval: float, db: str | None,
           wait: float | None, summary_json: str | None, log_format: str,
           **opts: Any) -> None:
    """Continue an unfinished job (default: the latest unfinished one) against the account and
    API it was stored with; only the key comes from the environment."""
    _check_summary_path(summary_json)
    with _summary_on_refusal(summary_json, None):
        _resume(job, verbose, progress_interval, db, wait, summary_json, log_format, **opts)


def _resume(job: str | None, verbose: int, progress_interval: float, db: str | None,
            wait: float | None, summary_json: str | None, log_format: str,
            **opts: Any) -> None:
    from bulkops.jobviews import require_existing
    from bulkops.runner import run_job

    choice = database_choice(db)
    require_existing(choice.url)  # a mistyped --db has no job to resume: never create it
    settings = _settings(choice, **opts, api_key=_api_key())
    _configure_logging(verbose, settings, log_format)

    summary = _run_async(run_job, checked=None, settings=settings, sandbox=False,
                         resume_job=job or "", wait=wait,
                         progress=_progress_options(progress_interval))
    sys.exit(_finish(summary, choice, summary_json))


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--account-id", envvar="WIX_ACCOUNT_ID", show_envvar=True, default="",
              help="The account whose earlier runs `@key`s outside the file may name.")
@click.option("--base-url", envvar="BULKOPS_BASE_URL", show_envvar=True,
              default=DEFAULT_BASE_URL, show_default=True, help="The API those runs used.")
@click.option("--sandbox", is_flag=True, help="The file is for `run --sandbox`.")
@db_option
def validate(file: str, account_id: str, base_url: str, sandbox: bool, db: str | None) -> None:
    """Check FILE only; nothing is sent and nothing is stored.

    With a database (--db, or the default one if it exists), the file is also checked against
    what earlier runs did: a `@key` naming no row of the file must name an operation that
    succeeded, and a row whose key was done with other content is refused, as `run` would.
    """
    from bulkops.wixwire import checked_base_url

    choice = database_choice(db)
    exists = database_exists(choice.url)
    if not choice.default and not exists:  # said before the file is read: it may be large
        raise ConfigError(f"no database at {choice.shown}: nothing to check the file against "
                          "(leave --db out to check the file alone)")
    # Without a database, no row is compared with stored work: nothing is kept for that.
    checked = check_job(file, keep_specs=exists)
    errors = list(checked.errors)
    if exists or checked.outside:
        from bulkops.jobviews import validation_errors
        from bulkops.locations import SANDBOX_TARGET

        if sandbox:
            from bulkops.sandbox import SandboxConfig

            account_id, base_url = SandboxConfig().account_id, SANDBOX_TARGET
        else:
            base_url = checked_base_url(base_url)
        errors += anyio.run(validation_errors, choice.url if exists else None, checked,
                            account_id, base_url)
    if errors:
        raise JobFileError(checked.source.path, sorted(errors, key=lambda e: e.line))
    source = checked.source
    click.echo(f"{file}: {source.total} operation(s), valid ({source.format})")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="The plan for people, or one JSON object for scripts.")
@click.option("--sandbox", is_flag=True,
              help="Plan against the in-process sandbox of `run --sandbox` (its saved world).")
@base_url_option
@account_id_option
@rate_option
@timeout_option
@max_attempts_option
@backoff_base_option
@if_exists_option
@db_option
def plan(file: str, fmt: str, sandbox: bool, base_url: str, account_id: str, rate: str,
         timeout: float, max_attempts: int, backoff_base: float, if_exists: IfExists,
         db: str | None) -> None:
    """Show what `run FILE` would do, with read calls only: problems per row (checked against
    the live account as `run` checks them before its first write), what would be created,
    transferred and invited, rows done in earlier runs, the API calls and their time under
    the budget. Nothing is sent or stored. Exit 0 when the plan is clean, 2 when it found
    problems."""
    from bulkops.credentials import require_credentials
    from bulkops.errors import WixConnectionError, WixError
    from bulkops.plan import Plan, make_plan, plan_json, plan_text
    from bulkops.runner import sandbox_target
    from bulkops.wixwire import checked_base_url

    choice = database_choice(db)
    settings = Settings(
        db_url=choice.url, base_url=checked_base_url(base_url or DEFAULT_BASE_URL),
        api_key=_api_key(), account_id=account_id.strip(), rate=parse_rate(rate),
        timeout=timeout, max_attempts=max_attempts, backoff_base=backoff_base,
        if_exists=if_exists,
    )
    if sandbox:
        settings = sandbox_target(settings)
    else:
        # Before the file is read: a missing key is one line at once, not after a minute of
        # checking a million rows.
        require_credentials(settings)
    try:
        checked = check_job(file)
    except JobFileError as exc:
        if fmt != "json":
            raise
        # A file that cannot be read at all is still a plan with problems, for scripts.
        click.echo(plan_json(Plan(path=file, total=0, account_id=settings.account_id,
                                  base_url=settings.base_url, settings=settings,
                                  problems=exc.errors)))
        sys.exit(EXIT_INVALID)
    _configure_logging(0, settings)
    exists = database_exists(choice.url)
    if not exists and not choice.default:
        click.echo(f"note: no database at {choice.shown} yet: no earlier runs to compare with",
                   err=True)
    try:
        result = anyio.run(make_plan, checked, settings, choice.url if exists else None)
    except WixError as exc:
        check = ("check --base-url (BULKOPS_BASE_URL) and this machine's network"
                 if isinstance(exc, WixConnectionError) else "try again later")
        click.echo(f"error: Wix at {settings.base_url} did not answer a read of the plan "
                   f"({exc}): {check}; nothing was planned, nothing was sent", err=True)
        sys.exit(EXIT_STOPPED)
    if fmt == "json":
        click.echo(plan_json(result))
    else:
        for line in plan_text(result):
            click.echo(line)
    sys.exit(EXIT_OK if result.clean else EXIT_INVALID)


@cli.command()
@click.argument("job")
@db_option
def cancel(job: str, db: str | None) -> None:
    """Close JOB: its unfinished rows become `cancelled` and are not run by `resume`.

    Running its file again arms them again (rows whose outcome was unknown are looked up at
    Wix first). Exit 4 while another process runs the job.
    """
    from bulkops.jobviews import cancel_job

    choice = database_choice(db)
    info, count = anyio.run(cancel_job, choice.url, job)
    if info.state.value == "finished":
        click.echo(f"job {info.job_id} has finished: nothing to cancel")
    else:
        click.echo(f"job {info.job_id} cancelled: {count} unfinished row(s) marked cancelled")
    click.echo(f"database: {choice.shown}")


@cli.command(name="sandbox")
@click.option("--port", default=8089, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key", default=None, help="Accepted key (default: sandbox-key).")
@click.option("--account-id", default=None, help="The key's account id.")
@click.option("--rate-limit", default=None, help="Enforce N requests per window, e.g. 200/min.")
@click.option("--retry-after", is_flag=True, help="Send Retry-After with 429 answers.")
@click.option("--latency", default=0.0, type=click.FloatRange(0),
              help="Seconds from a request to its answer, its handling included.")
@click.option("--error-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Share of 5xx answers (no effect).")
@click.option("--throttle-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Share of 429 answers (no effect).")
@click.option("--drop-before", default=0.0, type=click.FloatRange(0, 1),
              help="Share of connections dropped before the effect.")
@click.option("--drop-after", default=0.0, type=click.FloatRange(0, 1),
              help="Share of connections dropped after the effect.")
@click.option("--slow-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Share of answers delayed by --slow-delay (effect applied).")
@click.option("--slow-delay", default=0.0, type=click.FloatRange(0))
@click.option("--listing-lag", default=0.0, type=click.FloatRange(0),
              help="Seconds before a new or moved site shows in Query Sites.")
@click.option("--seed", default=None, type=int, help="Seed of the fault draws.")
@click.option("--state-file", default=None, type=click.Path(dir_okay=False),
              help="Keep the sandbox's world (sites, transfers, invites) in this file (and "
                   "the changes since it was written whole in FILE.journal): a sandbox "
                   "started again on it continues where the last one stopped.")
# Off by default: the acceptance tests' sandboxes (tests/acceptance/harness.py) count on an
# empty world. `run --sandbox` and `plan --sandbox` have the demo sites on.
@click.option("--demo-sites/--no-demo-sites", default=False, show_default=True,
              help="Start a new world with the demo's live client sites with Premium (the "
                   "sites jobs/onboarding.* connect domains to), or empty. A world read from "
                   "--state-file is kept as it was.")
def sandbox_command(port: int, api_key: str | None, account_id: str | None,
                    rate_limit: str | None, state_file: str | None, demo_sites: bool,
                    **faults: Any) -> None:
    """Serve the local fake Wix API on 127.0.0.1 (it never contacts the real Wix).

    With --demo-sites, a new world (not one read from --state-file) has a few live client
    sites with Premium in the key's account. The sites with Premium are listed at start."""
    from pathlib import Path

    from bulkops.sandbox import Sandbox, SandboxConfig, serve_forever
    from bulkops.sandbox.statefile import held

    config = SandboxConfig(state_file=Path(state_file) if state_file else None,
                           demo_sites=demo_sites)
    if api_key:
        config = replace(config, api_key=api_key)
    if account_id:
        config = replace(config, account_id=account_id)
    if rate_limit:
        parsed = parse_rate(rate_limit)
        config = replace(config, rate_limit=(int(parsed.count), parsed.period))
    config = replace(
        config, retry_after=faults["retry_after"], latency=faults["latency"],
        error_rate=faults["error_rate"], throttle_rate=faults["throttle_rate"],
        drop_before_rate=faults["drop_before"], drop_after_rate=faults["drop_after"],
        slow_rate=faults["slow_rate"], slow_delay=faults["slow_delay"],
        listing_lag=faults["listing_lag"], seed=faults["seed"],
    )

    fake = Sandbox(config)  # reads --state-file now: a bad one is one line, before listening
    premium = sorted((site for site in fake.state.sites.values()
                      if site.premium and site.owner_account_id == config.account_id),
                     key=lambda site: site.display_name)

    def ready(base_url: str) -> None:
        click.echo(f"sandbox listening on {base_url}")
        click.echo(f"  api key     {'(as given)' if api_key else config.api_key}")
        click.echo(f"  account id  {config.account_id}")
        click.echo(f"  sub-accounts {', '.join(config.sub_accounts)}")
        if premium:
            click.echo("  sites with Premium (connect_domain rows can use them):")
            for site in premium:
                click.echo(f"    {site.id}  {site.display_name}")
        else:
            click.echo("  sites with Premium: none (--demo-sites starts with a few)")
        click.echo(f"  try: WIX_API_KEY=... WIX_ACCOUNT_ID={config.account_id} "
                   f"bulkops run jobs/onboarding.csv --base-url {base_url}", err=False)
        if not premium:
            click.echo("  (its connect_domain rows need the demo's sites: start with "
                       "--demo-sites to run it whole)")
        sys.stdout.flush()

    # Ctrl-C or SIGTERM ends it as any command: exit 130, `interrupted`.
    try:
        with (held(config.state_file, "--state-file") if config.state_file
              else contextlib.nullcontext()):
            event_loop.run(serve_forever, fake, "127.0.0.1", port, ready)
    except OSError as exc:  # the port is taken, or not ours to listen on
        raise ConfigError(f"cannot serve the sandbox on 127.0.0.1:{port}: "
                          f"{exc.strerror or exc}: choose another --port (0: any free "
                          "port)") from exc


# -- helpers ---------------------------------------------------------------------------------


def check_job(file: str, *, keep_specs: bool = True) -> CheckedJob:
    """`jobfile.check_job(file)`: imported here, by the commands that read a job file, and not
    by `status`, `jobs` or `report`, which start faster without it."""
    from bulkops.jobfile import check_job as checked

    return checked(file, keep_specs=keep_specs)


def _api_key() -> str:
    import os

    # Keys never hold spaces: a line end copied with it (a Windows env file) is not part of it.
    return os.environ.get("WIX_API_KEY", "").strip()


def _progress_options(interval: float) -> tuple[TextIO, float, bool]:
    return sys.stderr, interval, sys.stderr.isatty()


T = TypeVar("T")


def _run_async(fn: Callable[..., Coroutine[Any, Any, T]], **kwargs: Any) -> T:
    """Run `fn(stop=..., **kwargs)`; SIGINT/SIGTERM set `stop` (a clean stop), a second one
    aborts at once (exit 130)."""

    async def main() -> T | None:
        stop = anyio.Event()
        summary: T | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, stop, tg.cancel_scope)
            try:
                summary = await fn(stop=stop, **kwargs)
            finally:
                tg.cancel_scope.cancel()
        return summary  # None: a second signal cancelled the run before it could finish

    try:
        summary = event_loop.run(main)
    except BaseExceptionGroup as group:
        raise unwrapped(group) from group
    if summary is None:
        # Aborted: rows that were in flight stay `running`; the next start reconciles them.
        sys.exit(EXIT_INTERRUPTED)
    return summary


async def _watch_signals(stop: anyio.Event, scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if stop.is_set():
                click.echo("second signal: aborting now; rows caught in flight are reconciled "
                           "on resume (a job still being stored is not stored)", err=True)
                scope.cancel()
                return
            # The same words fit every moment of a run: storing a large job, checking it,
            # sending; what is under way is never cut in half.
            click.echo(f"{signal.Signals(signum).name}: stopping once what is under way is "
                       "recorded (requests in flight, a job being stored); again to abort",
                       err=True)
            stop.set()


def _finish(summary: RunSummary, db: DbChoice, summary_json: str | None = None) -> int:
    info, counts = summary.job, summary.counts
    failed = counts.get(OpState.FAILED, 0)
    # Rows left cancelled (by `cancel` of another job naming them) were not done either.
    blocked = counts.get(OpState.BLOCKED, 0) + counts.get(OpState.CANCELLED, 0)
    code = _exit_code(summary.outcome, failed + blocked)
    parts = ", ".join(f"{counts[s]} {s.value}" for s in OpState if counts.get(s))
    before = counts.get(OpState.SUCCEEDED, 0) - summary.succeeded_now
    done_before = f" ({before} done in earlier runs, not sent again)" if before > 0 else ""
    click.echo(f"job {info.job_id}: {info.total} operation(s): {parts}{done_before}")
    if summary.overview is not None:
        from bulkops.summary import summary_lines

        for line in summary_lines(summary.overview, summary.run, outcome=summary.outcome,
                                  exit_code=code):
            click.echo(line)
    click.echo(f"database: {db.shown}")
    if summary.reason:
        click.echo(f"stopped: {summary.reason}", err=True)
    if summary_json:
        _write_summary_json(summary, db, code, summary_json)
    # Next steps can be pasted as they are: they name the database unless it is the default.
    where = "" if db.default else f" --db {shlex.quote(db.shown)}"
    problems = ",".join(state.value for state in (OpState.FAILED, OpState.BLOCKED)
                        if counts.get(state))
    click.echo(f"report: bulkops report {info.job_id}{where}"
               + (f" --only {problems}" if problems else ""))
    if summary.outcome == "interrupted":
        click.echo(f"progress saved; continue with: bulkops resume {info.job_id}{where}",
                   err=True)
    elif summary.outcome == "stopped" and summary.stop_kind in ("deadline", "outage"):
        click.echo(f"the next run of the file continues it (or now: bulkops resume "
                   f"{info.job_id}{where})", err=True)
    elif summary.outcome == "stopped":
        click.echo(f"continue with: bulkops resume {info.job_id}{where} (once the cause is "
                   f"fixed), or close it: bulkops cancel {info.job_id}{where}", err=True)
    return code


def _exit_code(outcome: str, not_done: int) -> int:
    if outcome == "interrupted":
        return EXIT_INTERRUPTED
    if outcome == "stopped":
        return EXIT_STOPPED
    return EXIT_SOME_FAILED if not_done else EXIT_OK


def _check_summary_path(path: str | None) -> None:
    """A summary that cannot be written is found out before the run, not after it."""
    if path is None:
        return
    from pathlib import Path

    target = Path(path)
    if target.is_dir() or not target.parent.is_dir():
        raise ConfigError(f"--summary-json {path}: not a file in an existing directory")


@contextlib.contextmanager
def _summary_on_refusal(path: str | None, file: str | None) -> Iterator[None]:
    """A run refused before it began (exit 2) or held by another process (exit 4) still
    leaves a summary, so that a monitor reading it never sees last night's."""
    try:
        yield
    except (JobFileError, ConfigError, StoreError, JobBusy) as exc:
        if path is not None:
            busy = isinstance(exc, JobBusy)
            reason = str(exc) if not isinstance(exc, JobFileError) else (
                f"{len(exc.errors)} problem(s) in {exc.path}: " + "; ".join(
                    str(error) for error in exc.errors[:5]))
            _dump_json(path, {
                "version": 1, "file": file, "outcome": "busy" if busy else "refused",
                "reason": reason, "exit_code": EXIT_BUSY if busy else EXIT_INVALID,
            })
        raise


def _dump_json(path: str, document: dict[str, Any]) -> None:
    try:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
    except OSError as exc:
        click.echo(f"warning: cannot write the summary to {path}: {exc.strerror}", err=True)


def _write_summary_json(summary: RunSummary, db: DbChoice, code: int, path: str) -> None:
    from bulkops.summary import summary_json

    if summary.overview is None:
        return
    _dump_json(path, summary_json(summary.overview, summary.run, outcome=summary.outcome,
                                  reason=summary.reason, exit_code=code, database=db.shown))


# The commands that look at stored jobs live in their own module; importing it registers them.
from bulkops import cli_views, cli_workers  # noqa: E402, F401


def _thread_failure(args: threading.ExceptHookArgs) -> None:
    """A library's helper thread failing after the command is done with it (aiosqlite answers a
    failed connect's clean-up on a loop that has already closed): never a traceback for a
    user; the details for -vv."""
    log.debug("thread_error", exc_info=args.exc_value or True)


def _unraisable(args: sys.UnraisableHookArgs) -> None:
    """An error Python can only report, not raise (in a generator closed as it is collected:
    a second Ctrl-C while a pass ends its helper processes): never a traceback for a user;
    the details for -vv."""
    log.debug("unraisable_error", exc_info=args.exc_value or True)


def main() -> None:
    threading.excepthook = _thread_failure
    sys.unraisablehook = _unraisable
    try:
        cli.main(prog_name="bulkops", standalone_mode=False)
    except click.UsageError as exc:
        # One clear line for scripts and cron mail, instead of click's usage block.
        hint = f" (see: {exc.ctx.command_path} --help)" if exc.ctx else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(EXIT_INVALID)
    except click.exceptions.Abort:
        exit_on_signal(EXIT_INTERRUPTED)  # a second Ctrl-C would only cut this line short
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


