"""`bulkops report` of a job in a SQLite file: read through the standard driver, rendered from
plain rows (`store.reportrows`, `report.json_page` / `csv_page`), without SQLAlchemy, asyncio
or a record per row.

It writes what `jobviews.write_report` writes, byte for byte (tests/integration/
test_report_lean.py), and checks it the same way before anything reaches `out` (a staged
`out`: before it is kept): every row of the job (`only`: every row in those states) in
exactly one record, in input order, as many per state as the job's counts. Both are read in
one snapshot, so they never move between the two reads; a disagreement raises ReportMismatch
and writes nothing.

Memory is bounded: a page of rows (`reportrows.FETCH`) at a time, `@key`s resolved per page,
the report spooled to a temporary file past `SPOOL_BYTES` (or, for `report -o`, written
straight into the file that replaces the old one only once the checks pass).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bulkops.locations import plain_file
from bulkops.model import JobInfo, OpRecord, OpState
from bulkops.report import (
    HTML_ROWS,
    INPUT_COLUMNS,
    REPORT_COLUMNS,
    SPOOL_BYTES,
    ReportTally,
    TextSink,
    count_problems,
    csv_page,
    json_page,
    mismatch,
    page_produced,
    page_references,
    page_specs,
    row_problems,
)
from bulkops.store.reportrows import ELSEWHERE, SEQ, ReportRows

DEFAULT_LOCK_WAIT_MS = 30_000  # `store.engine.BUSY_TIMEOUT_MS`, unless --lock-wait said otherwise


def sqlite_file(db_url: str) -> Path | None:
    """The SQLite file `--db` names when it is a plain path (as `urls.normalise_url` makes it
    absolute); None for a URL or an in-memory database (the store's path reads those)."""
    text = db_url.strip()
    if not text or "://" in text or text == ":memory:":
        return None
    return Path(text).expanduser().absolute()


def write_report(
    path: Path, job_id: str | None, fmt: str, only: Collection[OpState] | None,
    out: TextSink, *, database: str, staged: bool = False,
) -> int | None:
    """`jobviews.write_report` for the SQLite file at `path` (`database`: --db as given, which
    the HTML page shows). Returns the rows reported, or None, having written nothing, when
    this path does not read the database: no such file, a schema older or newer than the
    shipped one, no such job or a pruned one (the store's path opens, upgrades or explains).
    `staged`: `out` is thrown away unless this returns (`report -o`'s file, renamed into
    place only then), so the report is written to it as it is rendered, not first to a
    temporary file: at a million rows that copy was a tenth of the command.
    Raises ReportMismatch, StoreError."""
    if not plain_file(path):
        return None
    reader = ReportRows(path, busy_ms=_lock_wait_ms())
    try:
        reader.begin()
        if not reader.at_head():
            return None
        job = reader.job(job_id)
        if job is None or job.pruned_at is not None:
            return None
        counts = reader.counts(job)
        tally = ReportTally(job.job_id)
        with _checked_sink(out, staged) as spool:
            if fmt == "html":
                states: Collection[OpState] | None = (OpState.FAILED, OpState.BLOCKED)
                count, shown = _html(reader, job, database, tally, spool)
            else:
                states = only
                shown = None
                write = _json if fmt == "json" else _csv
                count = write(reader, job.job_id, only, tally, spool)
            rows = row_problems(tally, total=job.total, only=states)
            if rows:
                raise mismatch(job, rows)
            problems = count_problems(tally, counts=counts, only=states)
            if shown is not None and dict(shown) != counts:
                problems.append("the page's counts per state differ from the database's")
            if problems:
                raise mismatch(job, problems)
            return count
    finally:
        reader.close()


@contextmanager
def _checked_sink(out: TextSink, staged: bool) -> Iterator[TextSink]:
    """Where the report goes until it is checked: `out` itself when it is `staged`, else a
    temporary file (in memory up to SPOOL_BYTES), copied to `out` when the block ends
    without an error (a check that fails raises in it: nothing reaches `out`)."""
    if staged:
        yield out
        return
    with tempfile.SpooledTemporaryFile(SPOOL_BYTES, mode="w+", encoding="utf-8",
                                       newline="") as spool:
        yield spool
        spool.seek(0)
        shutil.copyfileobj(spool, out)


def _lock_wait_ms() -> int:
    # --lock-wait sets it in `store.engine` (loaded then); loading that module (SQLAlchemy)
    # only to read the default would cost more than this whole path's start-up.
    engine = sys.modules.get("bulkops.store.engine")
    return DEFAULT_LOCK_WAIT_MS if engine is None else round(engine.lock_wait() * 1000)


def _others(reader: ReportRows, job_id: str, page: list[tuple[Any, ...]]
            ) -> dict[int, OpRecord]:
    """The page's rows whose op another job owns, as whole records by seq (their note says
    where the work was done)."""
    seqs = [row[SEQ] for row in page if row[ELSEWHERE]]
    if not seqs:
        return {}
    return {record.seq: record for record in reader.records(job_id, seqs)}


def _json(reader: ReportRows, job_id: str, only: Collection[OpState] | None, tally: ReportTally,
          out: TextSink) -> int:
    """`report.write_json`: a JSON array, one object per line inside it."""
    count = 0
    out.write("[")
    for page in reader.pages(job_id, only=only, spec=False):
        tally.add_page(page)
        objects = json_page(page, _others(reader, job_id, page))
        out.write(("\n" if count == 0 else ",\n") + ",\n".join(objects))
        count += len(page)
    out.write("\n]\n" if count else "]\n")
    return count


def _csv(reader: ReportRows, job_id: str, only: Collection[OpState] | None, tally: ReportTally,
         out: TextSink) -> int:
    """`report.write_csv`. A `@key` naming a row of this page or the one before is resolved
    from those rows (keys are unique in a job: they are the rows the store would look up);
    the others in one look-up per page."""
    out.write(",".join([*INPUT_COLUMNS, *REPORT_COLUMNS]) + "\n")  # csv quotes none of them
    count = 0
    before_keys: set[str] = set()
    before: dict[str, str] = {}
    for page in reader.pages(job_id, only=only, spec=True):
        tally.add_page(page)
        specs = page_specs(page)
        keys, known = page_produced(page)
        rest = [key for key in page_references(specs)
                if key not in keys and key not in before_keys]
        produced = {**before, **known}
        if rest:
            produced.update(reader.produced(job_id, rest))
        # One write a page: a spooled file's write costs more per call than a row's rendering.
        out.write("".join(csv_page(page, specs, produced, _others(reader, job_id, page))))
        count += len(page)
        before_keys, before = keys, known
    return count


def _html(reader: ReportRows, job: JobInfo, database: str, tally: ReportTally, out: TextSink
          ) -> tuple[int, dict[OpState, int]]:
    """`jobviews._write_html`: the page lists the first HTML_ROWS failed and blocked rows."""
    from bulkops.htmlreport import render_html  # jinja2 is loaded only for this

    problems: list[OpRecord] = []
    more = 0
    for page in reader.pages(job.job_id, only=(OpState.FAILED, OpState.BLOCKED), spec=False):
        tally.add_page(page)
        listed = page[: max(0, HTML_ROWS - len(problems))]
        if listed:
            problems += reader.records(job.job_id, [row[SEQ] for row in listed])
        more += len(page) - len(listed)
    overview = reader.overview(job)
    out.write(render_html(overview, problems, more_problems=more, database=database,
                          generated_at=time.time()))
    return sum(overview.counts.values()), dict(overview.counts)
