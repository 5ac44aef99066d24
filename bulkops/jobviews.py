"""Commands that look at stored jobs, or tidy them: status, reports, listings, cancel, prune,
and what `validate` learns from the database. None of them sends anything to Wix."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from bulkops.errors import ConfigError, JobBusy, RowError
from bulkops.identity import Holder, KnownOp, outside_ref_errors, scope_of, when
from bulkops.locations import database_exists
from bulkops.model import FINAL_STATES, JobInfo, JobState, OpRecord, OpState
from bulkops.report import (
    HTML_ROWS,
    SPOOL_BYTES,
    ReportTally,
    TextSink,
    count_problems,
    mismatch,
    row_problems,
    write_csv,
    write_json,
)
from bulkops.store import quickread

# The store's implementation loads SQLAlchemy (~0.3 s): it is imported where a store is opened,
# so that `status` and `jobs` on a SQLite file (`quickread`) start without it.
if TYPE_CHECKING:
    from bulkops.jobfile import CheckedJob  # for `validate`, not for the commands that read
    from bulkops.store.base import Store
    from bulkops.store.listing import JobListing, PruneResult


async def open_store(db_url: str) -> Store:
    """`bulkops.store.open_store`, whose module is loaded here, on first use (see the
    imports)."""
    from bulkops.store import open_store as opening

    return await opening(db_url)


@asynccontextmanager
async def opened_store(db_url: str) -> AsyncIterator[Store]:
    store = await open_store(db_url)
    try:
        yield store
    finally:
        # Shielded: a run aborted by a second signal still closes its database cleanly,
        # instead of the pool logging the cancelled close as an error.
        with anyio.CancelScope(shield=True):
            await store.close()


def lease_owner() -> str:
    """`host:pid:token`: who holds a job, as `bulkops` tells another process that wants it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def pick_job(store: Store, job_id: str | None) -> JobInfo:
    job = await store.get_job(job_id) if job_id else await store.latest_job()
    if job is None:
        raise missing_job(job_id)
    return job


def missing_job(job_id: str | None) -> ConfigError:
    """The error for no job `job_id` (None: no job at all) in the database."""
    return ConfigError(f"no job {job_id!r} in this database" if job_id
                       else "no job in this database yet")


def require_existing(db_url: str) -> None:
    """Reading commands never create a database: a mistyped --db should say so."""
    if not database_exists(db_url):
        from bulkops.store.urls import normalise_url, sqlite_path  # see the imports

        raise ConfigError(f"no database at {sqlite_path(normalise_url(db_url))}: run a job "
                          "first, or point --db at its database")


def status_of(db_url: str, job_id: str | None) -> tuple[JobInfo, Mapping[OpState, int]]:
    """`bulkops status`: the job `job_id` (None: the latest) and its rows' counts per state
    (every state). A SQLite file at the newest revision is read without the store
    (`quickread`); any other database as `job_status` reads it. Raises ConfigError for no
    database or no such job, StoreError when the database cannot be read."""

    def reading(reader: quickread.Reader) -> tuple[JobInfo, Mapping[OpState, int]]:
        job = reader.get_job(job_id) if job_id else reader.latest_job()
        if job is None:
            raise missing_job(job_id)
        return job, reader.counts(job)

    quick = quickread.read(db_url, reading)
    return quick if quick is not None else anyio.run(job_status, db_url, job_id)


def listing_of(db_url: str) -> list[JobListing]:
    """`bulkops jobs`: every job of the database, newest first; read as `status_of` reads."""
    quick = quickread.read(db_url, quickread.Reader.list_jobs)
    return quick if quick is not None else anyio.run(jobs_listing, db_url)


async def job_status(db_url: str, job_id: str | None) -> tuple[JobInfo, Mapping[OpState, int]]:
    """`status_of` through the store."""
    require_existing(db_url)
    async with opened_store(db_url) as store:
        job = await pick_job(store, job_id)
        return job, await store.counts(job.job_id)


REPORT_READS = 3  # reads of a job whose rows a live run keeps changing, before writing it as read


async def write_report(
    db_url: str, job_id: str | None, fmt: str, only: Collection[OpState] | None, out: TextSink
) -> int:
    """Write the job's report (`fmt`: json, csv or html) to `out`; returns the rows reported
    (html: every row of the job, counted on the page). `only`: just rows in these states (json
    and csv; html lists the failed and blocked rows). Raises ConfigError for a pruned job (its
    rows are gone).

    Nothing reaches `out` before the report is checked against the store: every row of the job
    (`only`: every row in those states) in exactly one record, in input order, and as many
    records per state as `Store.counts` has (html: the page's counts too). A disagreement
    raises ReportMismatch and writes nothing. A job that a live run changes while it is read
    is read again, up to REPORT_READS times, then written as last read: its rows are still
    checked, but counts that moved during the read cannot be.
    """
    require_existing(db_url)
    async with opened_store(db_url) as store:
        job = await pick_job(store, job_id)
        if job.pruned_at is not None:
            raise ConfigError(f"job {job.job_id} was pruned on {when(job.pruned_at)}: its "
                              "per-row detail is gone (done work stays done)")
        states = (OpState.FAILED, OpState.BLOCKED) if fmt == "html" else only
        for read in range(1, REPORT_READS + 1):
            before = await store.counts(job.job_id)
            tally = ReportTally(job.job_id)
            with tempfile.SpooledTemporaryFile(SPOOL_BYTES, mode="w+", encoding="utf-8",
                                               newline="") as spool:
                count, shown = await _render(store, job, fmt, only, db_url, tally, spool)
                after = await store.counts(job.job_id)
                rows = row_problems(tally, total=job.total, only=states)
                if rows:
                    raise mismatch(job, rows)
                problems = count_problems(tally, counts=after, only=states)
                if shown is not None and dict(shown) != dict(after):
                    problems.append("the page's counts per state differ from the database's")
                moving = dict(before) != dict(after)
                if not problems or (moving and read == REPORT_READS):
                    spool.seek(0)
                    shutil.copyfileobj(spool, out)
                    return count
                if not moving:
                    raise mismatch(job, problems)
        raise AssertionError("unreachable: the last read either writes or raises")


async def _render(
    store: Store, job: JobInfo, fmt: str, only: Collection[OpState] | None, db_url: str,
    tally: ReportTally, out: TextSink,
) -> tuple[int, Mapping[OpState, int] | None]:
    """Render the report into `out`, counting its records in `tally`. Returns the rows
    reported and, for html, the counts per state the page shows."""
    if fmt == "html":
        return await _write_html(store, job, db_url, tally, out)
    records = tally.through(store.iter_ops(job.job_id, only=only))
    if fmt == "json":
        return await write_json(records, out), None

    async def produced(keys: Collection[str]) -> Mapping[str, str]:
        return await store.produced_by_keys(job.job_id, keys)

    # `@key`s are resolved a chunk of rows at a time: never a dict of the whole job.
    return await write_csv(records, produced, out), None


async def _write_html(
    store: Store, job: JobInfo, db_url: str, tally: ReportTally, out: TextSink
) -> tuple[int, Mapping[OpState, int]]:
    from bulkops.htmlreport import render_html  # jinja2 is loaded only for this

    problems: list[OpRecord] = []
    more = 0
    async for op in tally.through(
        store.iter_ops(job.job_id, only=(OpState.FAILED, OpState.BLOCKED))
    ):
        if len(problems) < HTML_ROWS:
            problems.append(op)
        else:
            more += 1
    overview = await store.overview(job)
    out.write(render_html(overview, problems, more_problems=more, database=db_url,
                          generated_at=time.time()))
    return sum(overview.counts.values()), overview.counts


async def cancel_job(db_url: str, job_id: str) -> tuple[JobInfo, int]:
    """Close a stored job: its unfinished rows become `cancelled` (a later run of its file
    arms them again). Raises JobBusy while a live process runs it, ConfigError for no such
    job. Returns the job and how many rows were cancelled."""
    require_existing(db_url)
    async with opened_store(db_url) as store:
        job = await pick_job(store, job_id)
        if job.state is JobState.FINISHED:
            return job, 0  # every row is final: nothing to cancel, and the job stays finished
        owner = lease_owner()
        holder = await store.acquire_job(job.job_id, owner, now=time.time(), lease_seconds=60.0)
        if holder is not None:
            ends_in = max(0.0, (holder.expires_at or 0.0) - time.time())
            raise JobBusy(f"job {job.job_id} is being run by {holder.describe()}: stop that "
                          "run first (Ctrl-C or SIGTERM), then cancel; if that process died, "
                          f"its lease ends in {ends_in:.0f} s")
        try:
            return job, await store.cancel_job(job.job_id)
        finally:
            with anyio.CancelScope(shield=True):
                await store.release_job(job.job_id, owner)


async def validation_errors(
    db_url: str | None, checked: CheckedJob, account_id: str, base_url: str
) -> list[RowError]:
    """`validate`: what the database says of the file (`db_url` None: there is none). `@key`s
    naming no row of the file must name a done operation; rows whose key names work done
    with other content are refused, as `run` would refuse them. Without an account id, any
    account's operation answers a `@key`, and the content check is skipped."""
    if db_url is None:
        return outside_ref_errors(checked.outside, {}, database=False)
    async with opened_store(db_url) as store:
        scope = scope_of(account_id, base_url) if account_id else None
        errors = await outside_problems(store, checked, scope)
        if scope is not None and not checked.errors and not errors:
            errors += await store.conflicts_of(scope, checked.specs())
    return errors


async def outside_problems(
    store: Store, checked: CheckedJob, scope: str | None
) -> list[RowError]:
    """The file's `@key`s naming no row of it, judged against the operations of `scope` (None:
    any scope): each must name one that succeeded, and a site invite naming such a site must not
    invite someone another row invites there. `run` and `validate` both ask this."""
    if not checked.outside:
        return []
    known = await store.known_ops(scope, {ref.key for ref in checked.outside})
    return [*outside_ref_errors(checked.outside, known, database=True),
            *_invited_twice(checked, known)]


def _invited_twice(checked: CheckedJob, known: Mapping[str, KnownOp]) -> list[RowError]:
    """Site invites naming an earlier run's site by `@key` that invite the same person as
    another row naming that site by its id, or by another key of the same site."""
    errors: list[RowError] = []
    seen: dict[tuple[str, str], int] = {}
    for line, key, email in checked.outside_invitees:
        site = known[key].site_id if key in known else None
        if site is None:
            continue
        earlier = checked.invited_at(site, email) or seen.setdefault((site.casefold(), email),
                                                                    line)
        if earlier != line:
            errors.append(RowError(
                line, "email",
                f"{email!r} is already invited to this site at line {min(earlier, line)} "
                f"(@{key} is site {site}; the same person twice)",
            ))
    return errors


async def jobs_listing(db_url: str) -> list[JobListing]:
    """Every job of the database, newest first (`bulkops jobs`)."""
    require_existing(db_url)
    async with opened_store(db_url) as store:
        return await store.list_jobs()


async def prune_jobs(db_url: str, older_than_days: float) -> PruneResult:
    """Remove the row detail of jobs done with more than `older_than_days` days ago."""
    require_existing(db_url)
    async with opened_store(db_url) as store:
        return await store.prune(before=time.time() - older_than_days * 86400)


def shown_state(
    job: JobInfo, now: float, counts: Mapping[OpState, int] | None = None
) -> tuple[str, str | None]:
    """The state to show for a job, and why: a job stored `running` whose lease no live process
    holds was interrupted (its process died); the time is when its last holder's lease ended.
    With its rows' `counts`: a stopped or interrupted job whose rows later runs finished is
    shown finished."""
    if job.pruned_at is not None:
        return "pruned", f"its rows were pruned on {when(job.pruned_at)}; done work stays done"
    open_rows = None if counts is None else sum(
        n for state, n in counts.items() if state not in FINAL_STATES)
    unheld = not job.held_at(now)
    if open_rows == 0 and unheld and job.state in (
        JobState.STOPPED, JobState.INTERRUPTED, JobState.RUNNING
    ):
        return "finished", "its rows were finished by later runs"
    if job.state is JobState.RUNNING and unheld:
        since = job.lease_expires_at or job.updated_at
        return "interrupted", f"no process holds it since {when(since)}"
    if job.state is JobState.RUNNING:
        holder = Holder(job.lease_owner or "?", job.lease_since, job.lease_expires_at)
        return "running", f"run by {holder.describe()}"
    reason = job.stop_reason if job.stop_reason != job.state.value else None
    return job.state.value, reason
