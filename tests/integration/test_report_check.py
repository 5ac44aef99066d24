"""The report is checked against the store before it is written: every input row in exactly one
record, and the records per state equal `Store.counts` (of the `--only` states when filtered).

Jobs live in a real SQLite checkpoint file; their rows are put in each state through the
store's own verbs, as the engine would leave them.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pytest
from stored_jobs import add_job

from bulkops import jobviews
from bulkops.jobviews import write_report
from bulkops.model import Action, OpError, OpRecord, OpSpec, OpState
from bulkops.report import (
    INPUT_COLUMNS,
    REPORT_COLUMNS,
    ReportMismatch,
    ReportTally,
    count_problems,
    row_problems,
)
from bulkops.store import open_store
from bulkops.store.base import Store

SITE_A = "aaaaaaaa-0000-4000-8000-00000000000a"

# The row of each key ends in this state (`_settle`); line = position + 2, as a CSV gives it.
FIRST_FILE: tuple[tuple[OpSpec, OpState], ...] = (
    (OpSpec(0, "a", Action.CREATE_SITE, site_name="Alpha"), OpState.SUCCEEDED),
    (OpSpec(0, "b", Action.CREATE_SITE, site_name="Bravo"), OpState.FAILED),
    (OpSpec(0, "c", Action.CREATE_SITE, site_name="Charlie"), OpState.UNKNOWN),
    (OpSpec(0, "d", Action.CREATE_SITE, site_name="Delta"), OpState.RUNNING),
    (OpSpec(0, "a-owner", Action.SITE_INVITE, site="@a", email="owner@a.example.com",
            roles=("Website Manager",)), OpState.SUCCEEDED),
    (OpSpec(0, "b-owner", Action.SITE_INVITE, site="@b", email="owner@b.example.com",
            roles=("Website Manager",)), OpState.BLOCKED),
    (OpSpec(0, "c-move", Action.TRANSFER_SITE, site="@c",
            to_account="22222222-2222-4222-8222-222222222221"), OpState.PENDING),
    (OpSpec(0, "team", Action.ACCOUNT_INVITE, email="team@agency.example.com",
            roles=("Website Manager",)), OpState.CANCELLED),
)
EXPECTED = Counter(state for _, state in FIRST_FILE)


async def _settle(store: Store, job_id: str, states: Mapping[str, OpState]) -> None:
    """Each keyed row's op to its state, as a run leaves it; blocked rows by the store's own
    `block_dependents` (the dependency of each failed)."""
    changed = []
    async for op in store.iter_ops(job_id):
        state = states.get(op.spec.key)
        if state is None or state is OpState.BLOCKED:
            continue
        changed.append(dataclasses.replace(
            op, state=state, lease_owner=None,
            attempts=0 if state in (OpState.PENDING, OpState.CANCELLED) else 1,
            site_id=SITE_A if state is OpState.SUCCEEDED and op.spec.site_name else None,
            error=OpError("BAD", "refused", hint="fix it") if state is OpState.FAILED else None,
        ))
    await store.save(changed)
    await store.block_dependents(job_id)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "report.db")


@pytest.fixture
async def first_job(db: str) -> str:
    """job-1: one row in every state (FIRST_FILE)."""
    store = await open_store(db)
    try:
        await add_job(store, "job-1", [spec for spec, _ in FIRST_FILE])
        await _settle(store, "job-1", {spec.key: state for spec, state in FIRST_FILE})
        counts = await store.counts("job-1")
    finally:
        await store.close()
    assert Counter({s: n for s, n in counts.items() if n}) == EXPECTED  # the set-up itself
    return "job-1"


async def _counts(db: str, job_id: str) -> Mapping[OpState, int]:
    store = await open_store(db)
    try:
        return await store.counts(job_id)
    finally:
        await store.close()


async def _report(db: str, job_id: str, fmt: str,
                  only: Collection[OpState] | None = None) -> list[dict[str, Any]]:
    """The report as records (json objects, or csv rows as dicts); checks the returned count."""
    out = io.StringIO()
    count = await write_report(db, job_id, fmt, only, out)
    text = out.getvalue()
    records: list[dict[str, Any]] = (
        json.loads(text) if fmt == "json" else list(csv.DictReader(io.StringIO(text))))
    assert count == len(records)
    return records


# -- the check passes on real jobs -------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "csv"])
async def test_report_of_rows_in_every_state_matches_the_store_and_is_written(
    db: str, first_job: str, fmt: str,
) -> None:
    records = await _report(db, first_job, fmt)

    assert [int(r["line"]) for r in records] == list(range(2, 2 + len(FIRST_FILE)))
    assert [r["status"] for r in records] == [state.value for _, state in FIRST_FILE]
    counts = await _counts(db, first_job)
    assert Counter(r["status"] for r in records) == Counter(
        {state.value: n for state, n in counts.items() if n})


async def test_html_report_of_rows_in_every_state_is_written(db: str, first_job: str) -> None:
    out = io.StringIO()

    count = await write_report(db, first_job, "html", None, out)

    assert count == len(FIRST_FILE)
    assert out.getvalue().lstrip().lower().startswith("<!doctype html>")


async def test_report_of_a_job_sharing_rows_with_another_job_matches_its_own_counts(
    db: str, first_job: str,
) -> None:
    """job-2 names three of job-1's operations (same keys, same content) and adds one: its
    report shows the shared rows in their operations' states, and its counts agree."""
    shared = [spec for spec, _ in FIRST_FILE if spec.key in ("a", "b", "b-owner")]
    fresh = OpSpec(0, "e", Action.CREATE_SITE, site_name="Echo")
    store = await open_store(db)
    try:
        await add_job(store, "job-2", [*shared, fresh])
        await _settle(store, "job-2", {"e": OpState.SUCCEEDED})
    finally:
        await store.close()

    records = await _report(db, "job-2", "json")

    assert [(r["key"], r["status"]) for r in records] == [
        ("a", "succeeded"), ("b", "failed"), ("b-owner", "blocked"), ("e", "succeeded")]
    assert all(r["note"] for r in records[:3]), records  # done or failed in job-1
    counts = await _counts(db, "job-2")
    assert (counts[OpState.SUCCEEDED], counts[OpState.FAILED], counts[OpState.BLOCKED]) == (
        2, 1, 1)
    # The other job's report is unchanged by sharing: still one record per row of its own.
    assert len(await _report(db, first_job, "csv")) == len(FIRST_FILE)


@pytest.mark.parametrize("fmt", ["json", "csv"])
@pytest.mark.parametrize("only", [
    (OpState.FAILED, OpState.BLOCKED),
    (OpState.SUCCEEDED,),
    (OpState.PENDING, OpState.RUNNING, OpState.UNKNOWN),
    (OpState.CANCELLED, OpState.SUCCEEDED),
], ids=["failed,blocked", "succeeded", "open", "cancelled,succeeded"])
async def test_filtered_report_holds_exactly_the_rows_the_store_counts_in_those_states(
    db: str, first_job: str, fmt: str, only: tuple[OpState, ...],
) -> None:
    records = await _report(db, first_job, fmt, only)

    counts = await _counts(db, first_job)
    assert len(records) == sum(counts[state] for state in only)
    assert Counter(r["status"] for r in records) == Counter(
        {state.value: counts[state] for state in only if counts[state]})
    lines = [int(r["line"]) for r in records]
    assert lines == sorted(set(lines))  # each once, in input order


async def test_filtered_report_with_no_row_in_those_states_is_empty_not_an_error(
    db: str, first_job: str,
) -> None:
    store = await open_store(db)
    try:
        await add_job(store, "job-3", [OpSpec(0, "z", Action.CREATE_SITE, site_name="Zulu")])
        await _settle(store, "job-3", {"z": OpState.SUCCEEDED})
    finally:
        await store.close()

    assert await _report(db, "job-3", "csv", (OpState.FAILED, OpState.BLOCKED)) == []


async def test_csv_report_header_is_the_input_columns_then_the_report_columns(
    db: str, first_job: str,
) -> None:
    out = io.StringIO()
    await write_report(db, first_job, "csv", None, out)

    header = next(csv.reader(io.StringIO(out.getvalue())))

    assert header == [*INPUT_COLUMNS, *REPORT_COLUMNS]
    assert {"hint", "request_id", "note", "error_code", "error_message"} <= set(header)


# -- the check catches a report that does not match --------------------------------------------


def _record(seq: int, state: OpState, job_id: str = "job-1") -> OpRecord:
    spec = OpSpec(seq + 2, f"k{seq}", Action.CREATE_SITE, site_name=f"Site {seq}")
    return OpRecord(op_id=seq + 1, job_id=job_id, seq=seq, spec=spec, state=state)


def _tally(*records: OpRecord) -> ReportTally:
    tally = ReportTally("job-1")
    for record in records:
        tally.add(record)
    return tally


ALL_COUNTS = {state: 0 for state in OpState}


def test_records_of_each_row_once_in_order_with_the_stores_counts_have_no_problem() -> None:
    tally = _tally(_record(0, OpState.SUCCEEDED), _record(1, OpState.FAILED),
                   _record(2, OpState.SUCCEEDED))
    counts = {**ALL_COUNTS, OpState.SUCCEEDED: 2, OpState.FAILED: 1}

    assert row_problems(tally, total=3, only=None) == []
    assert count_problems(tally, counts=counts, only=None) == []
    assert count_problems(_tally(_record(1, OpState.FAILED)), counts=counts,
                          only=[OpState.FAILED, OpState.BLOCKED]) == []


@pytest.mark.parametrize(("records", "total", "only", "said"), [
    ((0, 1, 1, 2), 3, None, "repeated or out of input order (line 3)"),
    ((0, 2, 1), 3, None, "repeated or out of input order (line 3)"),
    ((0, 1), 3, None, "2 record(s) for the job's 3 rows"),
    ((0, 1, 2, 3), 3, None, "records of rows the job's 3 rows do not have"),
    ((1, 1), 3, (OpState.SUCCEEDED,), "repeated or out of input order"),
], ids=["repeated", "out-of-order", "row-missing", "row-beyond", "repeated-filtered"])
def test_rows_missing_repeated_or_out_of_order_are_problems(
    records: tuple[int, ...], total: int, only: tuple[OpState, ...] | None, said: str,
) -> None:
    tally = _tally(*(_record(seq, OpState.SUCCEEDED) for seq in records))

    problems = row_problems(tally, total=total, only=only)

    assert any(said in problem for problem in problems), problems


def test_a_record_of_another_jobs_row_is_a_problem() -> None:
    tally = _tally(_record(0, OpState.SUCCEEDED), _record(1, OpState.SUCCEEDED, "job-9"))

    assert row_problems(tally, total=2, only=None) == ["1 record(s) of another job's rows"]


def test_counts_per_state_that_differ_from_the_store_are_problems() -> None:
    tally = _tally(_record(0, OpState.SUCCEEDED), _record(1, OpState.FAILED))

    wrong = count_problems(tally, counts={**ALL_COUNTS, OpState.SUCCEEDED: 2}, only=None)
    outside = count_problems(tally, counts={**ALL_COUNTS, OpState.FAILED: 1},
                             only=[OpState.FAILED])

    assert wrong == ["1 succeeded in the report, 2 in the database",
                     "1 failed in the report, 0 in the database"]
    assert outside == ["1 succeeded record(s), a state not asked for"]


class CountsOff:
    """The real store, except that `counts` answers `shift(call number, true counts)`."""

    def __init__(self, store: Store, shift: Any) -> None:
        self._store = store
        self._shift = shift
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def counts(self, job_id: str) -> Mapping[OpState, int]:
        self.calls += 1
        shifted: Mapping[OpState, int] = self._shift(self.calls,
                                                     dict(await self._store.counts(job_id)))
        return shifted


def _serve(monkeypatch: pytest.MonkeyPatch, shift: Any) -> list[CountsOff]:
    """Make `write_report` open its store wrapped in CountsOff; returns the wrappers made."""
    made: list[CountsOff] = []
    real_open = open_store

    async def wrapped(url: str) -> CountsOff:
        made.append(CountsOff(await real_open(url), shift))
        return made[-1]

    monkeypatch.setattr(jobviews, "open_store", wrapped)
    return made


def _one_more_failed(_: int, counts: dict[OpState, int]) -> dict[OpState, int]:
    return {**counts, OpState.FAILED: counts[OpState.FAILED] + 1}


@pytest.mark.parametrize("fmt", ["json", "csv", "html"])
async def test_counts_that_disagree_with_the_records_raise_and_nothing_is_written(
    db: str, first_job: str, fmt: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _serve(monkeypatch, _one_more_failed)
    out = io.StringIO()

    with pytest.raises(ReportMismatch, match="1 failed in the report, 2 in the database"):
        await write_report(db, first_job, fmt, None, out)

    assert out.getvalue() == ""


async def test_filtered_counts_that_disagree_raise_and_other_states_are_not_compared(
    db: str, first_job: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _serve(monkeypatch, _one_more_failed)

    written = await _report(db, first_job, "json", (OpState.SUCCEEDED,))
    with pytest.raises(ReportMismatch):
        await _report(db, first_job, "json", (OpState.FAILED, OpState.BLOCKED))

    assert len(written) == EXPECTED[OpState.SUCCEEDED]


def _moving(call: int, counts: dict[OpState, int]) -> dict[OpState, int]:
    """Counts that change between every two reads, as under a live run."""
    return {**counts, OpState.SUCCEEDED: counts[OpState.SUCCEEDED] + call}


async def test_a_job_changing_while_read_is_read_again_then_written_with_its_rows_checked(
    db: str, first_job: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = _serve(monkeypatch, _moving)

    records = await _report(db, first_job, "csv")

    assert len(records) == len(FIRST_FILE)
    assert made[0].calls == 2 * jobviews.REPORT_READS  # before and after each read


async def test_a_job_that_stops_changing_but_still_disagrees_raises(
    db: str, first_job: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def settles_wrong(call: int, counts: dict[OpState, int]) -> dict[OpState, int]:
        return _one_more_failed(call, counts) if call >= 2 else counts

    made = _serve(monkeypatch, settles_wrong)

    with pytest.raises(ReportMismatch):
        await _report(db, first_job, "json")
    assert made[0].calls == 4  # the first read moved (1 -> 2), the second stood still


def _drop_row(db: str, job_id: str, line: int) -> None:
    """Damage the database as no bulkops verb would: one of the job's rows disappears."""
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM row_deps WHERE job_id = ?", (job_id,))
        removed = conn.execute(
            "DELETE FROM job_rows WHERE job_id = ? AND coalesce(line, (SELECT ops.line FROM ops "
            "WHERE ops.op_id = job_rows.op_id)) = ?", (job_id, line)).rowcount
    assert removed == 1


async def test_a_row_missing_from_the_database_raises_and_nothing_is_written(
    db: str, first_job: str,
) -> None:
    _drop_row(db, first_job, 3)
    out = io.StringIO()

    with pytest.raises(ReportMismatch, match="7 record\\(s\\) for the job's 8 rows"):
        await write_report(db, first_job, "csv", None, out)

    assert out.getvalue() == ""


def test_cli_report_of_a_damaged_job_is_one_error_line_exit_2_and_no_output(
    db: str, first_job: str, tmp_path: Path,
) -> None:
    _drop_row(db, first_job, 3)
    target = tmp_path / "report.csv"
    target.write_text("yesterday's report\n", encoding="utf-8")  # must survive a refused one

    results = [
        subprocess.run([sys.executable, "-m", "bulkops", "report", first_job, "--db", db,
                        *extra], capture_output=True, text=True, timeout=60, check=False)
        for extra in (["--format", "json"], ["--format", "csv", "-o", str(target)])
    ]

    for result in results:
        assert result.returncode == 2, result
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert line.startswith(f"error: the report of job {first_job} does not match"), line
        assert "nothing was written" in line
    assert target.read_text(encoding="utf-8") == "yesterday's report\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []


# -- notes of rows another job ran ---------------------------------------------------------------


async def test_a_row_naming_by_id_the_site_another_job_named_by_key_is_done_before(
    db: str, first_job: str,
) -> None:
    """job-1 invited the owner to `@a`; job-2 (a fixed report run as a file) names that site
    by the id `a` produced: the same work, done before, not other work under the same key."""
    owner = next(spec for spec, _ in FIRST_FILE if spec.key == "a-owner")
    store = await open_store(db)
    try:
        await add_job(store, "job-2", [dataclasses.replace(owner, site=SITE_A)])
        [record] = [op async for op in store.iter_ops("job-2")]
    finally:
        await store.close()

    assert record.elsewhere is not None and record.elsewhere.job_id == "job-1"
    assert not record.elsewhere.replaced
    [report] = await _report(db, "job-2", "json")
    assert report["note"].startswith("done before: in job job-1"), report


async def test_a_row_whose_key_another_job_took_over_with_other_content_is_replaced(
    db: str, first_job: str,
) -> None:
    """The control: job-2 runs job-1's failed key `b` with another site name, so job-1's
    row was not run as written."""
    store = await open_store(db)
    try:
        await add_job(store, "job-2", [OpSpec(0, "b", Action.CREATE_SITE, site_name="Bravo Two")])
        await store.take_over("job-2", now=1_700_000_000.0, rerun=True)
    finally:
        await store.close()

    [report] = [r for r in await _report(db, first_job, "json") if r["key"] == "b"]

    assert report["note"].startswith("replaced: this key was run in job job-2"), report
