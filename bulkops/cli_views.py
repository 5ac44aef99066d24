"""The `bulkops` commands that look at stored jobs or tidy them: status, jobs, prune, report.

They print; nothing here sends anything to Wix. The group, the shared options and the error
handling are `cli`'s.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio
import click

from bulkops.cli import cli, database_choice, db_option
from bulkops.errors import ConfigError
from bulkops.model import FINAL_STATES, OpState

if TYPE_CHECKING:
    from bulkops.model import JobInfo
    from bulkops.store.listing import JobListing


@cli.command()
@click.argument("job", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@db_option
def status(job: str | None, as_json: bool, db: str | None) -> None:
    """Counts per state of a job (default: the latest), and whether a process runs it."""

    from bulkops.jobviews import shown_state, status_of

    info, counts = status_of(database_choice(db).url, job or None)
    now = time.time()
    state, why = shown_state(info, now, counts)
    if as_json:
        click.echo(json.dumps({
            "job": info.job_id, "state": state, "total": info.total,
            "counts": {state.value: counts.get(state, 0) for state in OpState},
            "stop_reason": info.stop_reason, "detail": why, "held_by": _held_by(info, now),
        }))
        return
    click.echo(f"job {info.job_id} ({info.path}): {state}" + (f" — {why}" if why else ""))
    done = sum(counts.get(s, 0) for s in FINAL_STATES)
    click.echo(f"  {done}/{info.total} final")
    for op_state in OpState:
        if counts.get(op_state):
            click.echo(f"  {op_state.value:<10} {counts[op_state]}")


def _held_by(info: JobInfo, now: float) -> dict[str, Any] | None:
    """The live process running the job (`run`, `resume` or a worker), or None."""
    if not info.held_at(now):
        return None
    from bulkops.identity import Holder

    holder = Holder(info.lease_owner or "?", info.lease_since, info.lease_expires_at)
    if holder.shared:
        return {"workers": True, "host": None, "pid": None, "since": info.lease_since,
                "lease_expires_at": info.lease_expires_at}
    return {"workers": False, "host": holder.host,
            "pid": int(holder.pid) if holder.pid.isdigit() else None,
            "since": info.lease_since, "lease_expires_at": info.lease_expires_at}


@cli.command(name="jobs")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@db_option
def jobs_command(as_json: bool, db: str | None) -> None:
    """Every job of the database, newest first: state, counts, when it ran."""

    from bulkops.jobviews import listing_of, shown_state

    listing = listing_of(database_choice(db).url)
    now = time.time()
    if as_json:
        click.echo(json.dumps([_job_json(entry, shown_state(entry.job, now, entry.counts)[0])
                               for entry in listing], indent=1))
        return
    if not listing:
        click.echo("no jobs in this database yet")
        return
    click.echo(f"{'job':<16}  {'state':<11}  {'rows':>6}  {'done':>6}  {'failed':>6}  "
               f"{'started (UTC)':<16}  {'duration':>8}  file")
    for entry in listing:
        counts = entry.counts
        failed = counts.get(OpState.FAILED, 0) + counts.get(OpState.BLOCKED, 0)
        state = shown_state(entry.job, now, entry.counts)[0]
        click.echo(
            f"{entry.job.job_id:<16}  {state:<11}  {entry.job.total:>6}  "
            f"{counts.get(OpState.SUCCEEDED, 0):>6}  {failed:>6}  "
            f"{_utc(entry.started_at):<16}  {_duration(entry):>8}  {entry.job.path}"
        )


def _job_json(entry: JobListing, state: str) -> dict[str, Any]:
    from bulkops.summary import iso_utc  # its time parsing is for the run summaries

    started, finished = entry.started_at, entry.finished_at
    return {
        "job": entry.job.job_id, "file": entry.job.path, "state": state,
        "total": entry.job.total,
        "counts": {s.value: entry.counts.get(s, 0) for s in OpState},
        "runs": entry.runs,
        "started_at": iso_utc(started), "finished_at": iso_utc(finished),
        "duration_seconds": None if started is None or finished is None
        else round(finished - started, 3),
        "pruned_at": iso_utc(entry.pruned_at),
    }


def _utc(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


def _duration(entry: JobListing) -> str:
    if entry.started_at is None or entry.finished_at is None:
        return "-"
    seconds = int(entry.finished_at - entry.started_at)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@cli.command()
@click.option("--older-than", "older_than", required=True, type=click.FloatRange(0),
              metavar="DAYS", help="Prune jobs finished or cancelled more than DAYS days ago.")
@db_option
def prune(older_than: float, db: str | None) -> None:
    """Remove old jobs' per-row detail; every succeeded operation stays, so it is never
    repeated by a later file."""
    from bulkops.jobviews import prune_jobs

    result = anyio.run(prune_jobs, database_choice(db).url, older_than)
    click.echo(f"pruned {result.jobs} job(s): {result.rows} row(s) removed, "
               f"{result.ops} operation(s) that never succeeded forgotten")


@cli.command()
@click.argument("job", required=False)
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "html"]),
              help="html: one self-contained page to open in a browser. Default: the one -o's "
                   "name ends with (.csv, .html, .htm), else json.")
@click.option("--only", metavar="STATES",
              help="Only rows in these states, comma-separated (e.g. failed,blocked: a file to "
                   "fix and run again). json and csv.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@db_option
def report(job: str | None, fmt: str | None, only: str | None, output: str | None,
           db: str | None) -> None:
    """One record per input row, in input order (default job: the latest)."""
    if output == "-":  # the usual name for standard output
        output = None
    fmt = fmt or _format_of(output)
    db = database_choice(db).url
    states = _states(only)
    if output:
        with replaced_on_success(output, what="the report") as (out, staged):
            count = _write_report(db, job or None, fmt, states, out, staged=staged)
        click.echo(f"wrote {count} row(s) to {output}", err=True)
    else:
        try:
            _write_report(db, job or None, fmt, states, sys.stdout)
            sys.stdout.flush()  # here, where a failure is still one line (not at exit)
        except BrokenPipeError:
            raise  # the reader went away: `cli` ends quietly
        except OSError as exc:
            # What is still buffered would fail again when Python flushes at exit: it goes
            # nowhere instead (as Python's docs advise for a closed pipe).
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise ConfigError(f"cannot write the report to standard output: "
                              f"{exc.strerror or exc}") from None


def _format_of(output: str | None) -> str:
    """The report format `-o PATH` asks for by its name (`-o failed.csv`: csv); json, the
    contract's default, for any other name and for stdout."""
    name = os.path.basename(output or "").lower()
    for suffix, fmt in ((".csv", "csv"), (".html", "html"), (".htm", "html")):
        if name.endswith(suffix):  # `.csv` too: a name that is only the suffix
            return fmt
    return "json"


def _write_report(db: str, job: str | None, fmt: str, states: list[OpState] | None,
                  out: TextIO, *, staged: bool = False) -> int:
    """The report of a job in a SQLite file through the standard driver (no SQLAlchemy to
    load, no record per row); any other database, or a file that path does not read (an
    older schema, no such job), through the store. `staged`: `out` is discarded unless this
    returns (`sqlitereport.write_report`)."""
    from bulkops.gcpace import paced_collections
    from bulkops.sqlitereport import sqlite_file, write_report

    with paced_collections():  # a report makes and drops containers by the million
        path = sqlite_file(db)
        if path is not None:
            count = write_report(path, job, fmt, states, out, database=db, staged=staged)
            if count is not None:
                return count
        from bulkops.jobviews import write_report as write_through_store

        written: int = anyio.run(write_through_store, db, job, fmt, states, out)
        return written


@contextmanager
def replaced_on_success(path: str, *, what: str) -> Iterator[tuple[TextIO, bool]]:
    """A text file that becomes `path` only when the block ends without an error: a report
    refused by its checks leaves an earlier file of that name as it was. A symbolic link
    stays: the file it points to is the one replaced. A path that is not a regular file (a
    FIFO, a device such as /dev/stdout) is written in place, since nothing may be renamed
    over it. Yields the file and whether it is staged (False: written in place, what is
    written is seen at once). Raises ConfigError (one line) when the file cannot be
    written."""
    target = Path(os.path.realpath(path))
    if _names_a_descriptor(path):
        # /dev/stdout, /dev/fd/N, /proc/self/fd/N: an open file of this process, which may be
        # a file the shell appends to (`>> log`); written where it stands, never replaced.
        with _written(path, what), open(path, "a", encoding="utf-8", newline="") as out:
            yield out, False
        return
    if target.exists() and not target.is_file():
        with _written(path, what), open(target, "w", encoding="utf-8", newline="") as out:
            yield out, False
        return
    with _written(path, what):
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                             suffix=".partial")
        if target.exists():  # replaced: its permissions stay (a report holds e-mail addresses)
            mode = stat.S_IMODE(target.stat().st_mode)
        else:  # as `open` would have made it, not mkstemp's 0600
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(temporary, mode)
    try:
        with _written(path, what):
            with open(handle, "w", encoding="utf-8", newline="") as out:
                yield out, True
            os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _names_a_descriptor(path: str) -> bool:
    """Whether `path` names an open file descriptor rather than a file: /dev/stdout, /dev/fd/N
    and the like, /proc/self/fd/N (Linux's links to whatever the descriptor has open)."""
    parts = Path(os.path.abspath(path)).parts
    if parts[1:2] == ("proc",):
        return "fd" in parts
    return parts[1:3] in (("dev", "fd"), ("dev", "stdout"), ("dev", "stderr"))


@contextmanager
def _written(path: str, what: str) -> Iterator[None]:
    """An OSError in the block (the disk full, no permission) as ConfigError, in one line."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(f"cannot write {what} to {path}: {exc.strerror or exc}") from None


def _states(only: str | None) -> list[OpState] | None:
    if not only:
        return None
    names = [name.strip().lower() for name in only.split(",") if name.strip()]
    known = {state.value: state for state in OpState}
    wrong = [name for name in names if name not in known]
    if wrong or not names:
        raise click.BadParameter(
            f"{', '.join(wrong) or repr(only)}: states are {', '.join(known)}",
            param_hint="'--only'",
        )
    return [known[name] for name in names]
