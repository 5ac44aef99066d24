"""A report of a job in a SQLite file is read through the standard driver (`store.reportrows`)
and rendered from plain rows (`sqlitereport`): it writes exactly what the store's path (records
read through SQLAlchemy, `jobviews.write_report`) writes of the same job, in every format.

The jobs hold every action and state, rows another job ran (done before, failed there, replaced
by a later file's content), a connected domain with registrar records, TXT values with `;` and
quotes, and cells that start like formulas, quote, hold commas and line breaks. They are made by
the store's own verbs, in real SQLite files (and PostgreSQL, for the store's path there).
"""

from __future__ import annotations

import dataclasses
import io
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pytest
from stored_jobs import ACCOUNT, add_job

from bulkops import jobviews, sqlitereport
from bulkops.model import Action, OpError, OpSpec, OpState
from bulkops.store import open_store, reportrows
from bulkops.store.base import Store

SUB_ACCOUNT = "22222222-2222-4222-8222-222222222221"
SITE_A = "aaaaaaaa-0000-4000-8000-00000000000a"
SITE_B = "bbbbbbbb-0000-4000-8000-00000000000b"
SITE_D = "dddddddd-0000-4000-8000-00000000000d"
NOW = 1_790_000_000.0  # every clock of the stores: notes with times are the same everywhere

REGISTRAR = {
    "registrar": "Sandbox Registrar",
    "registrar_records": [
        {"host": "client.com", "ttl": 3600, "type": "A", "values": ["185.230.63.107"]},
        {"host": "www.client.com", "ttl": 3600, "type": "CNAME",
         "values": ["pointing.wixdns.net", "=second, \"value\""]},
    ],
    "setup": "POINTING",
}

# (spec, final state, what the run left on the op). Lines are position + 2, as a CSV gives.
FIRST_FILE: tuple[tuple[OpSpec, OpState, dict[str, Any]], ...] = (
    (OpSpec(0, "a", Action.CREATE_SITE, site_name='=HYPERLINK("http://x")',
            template_id="tpl-1", folder_id="@folder"),
     OpState.SUCCEEDED, {"site_id": SITE_A, "attempts": 1}),
    (OpSpec(0, "b", Action.CREATE_SITE, site_name='Shop, "quoted"\nsecond line'),
     OpState.FAILED, {"attempts": 3, "error": OpError(
         "-BAD_NAME", "refused; =1+1, twice", hint="@fix it", status=400,
         request_id="req-1")}),
    (OpSpec(0, "a-owner", Action.SITE_INVITE, site="@a", email="+owner@a.example.com",
            roles=("Website Manager", "Admin")),
     OpState.SUCCEEDED, {"invite_id": "inv-1", "attempts": 1}),
    (OpSpec(0, "b-owner", Action.SITE_INVITE, site="@b", email="owner@b.example.com",
            roles=("Website Manager",)),
     OpState.BLOCKED, {}),
    (OpSpec(0, "team", Action.ACCOUNT_INVITE, email="team@agency.example.com",
            roles=("-Manager",), sites=("@a", "@b", SITE_D), depends_on=("a",)),
     OpState.UNKNOWN, {"attempts": 1, "note": "sent; outcome not known yet"}),
    (OpSpec(0, "move-a", Action.TRANSFER_SITE, site="@a", to_account=SUB_ACCOUNT,
            from_account=ACCOUNT, depends_on=("a-owner", "team")),
     OpState.PENDING, {}),
    (OpSpec(0, "dom", Action.CONNECT_DOMAIN, site=SITE_B, domain="client.com",
            connection="pointing", assignment="primary", notify=True),
     OpState.SUCCEEDED, {"attempts": 1, "details": REGISTRAR,
                         "note": "Wix hosts the zone: set (MX, TXT, ...) \"again\""}),
    (OpSpec(0, "txt", Action.SET_DNS_RECORD, domain="client.com", record_type="TXT",
            host="client.com", values=("v=spf1 include:x ~all", 'a;b "c"'), ttl=300,
            implied_depends_on=("dom",)),
     OpState.RUNNING, {"attempts": 1}),
    (OpSpec(0, "txt-one", Action.SET_DNS_RECORD, domain="client.com", record_type="TXT",
            host="@", values=('"quoted alone"',)),
     OpState.SUCCEEDED, {"attempts": 1, "details": {"before": None}}),
    (OpSpec(0, "mx", Action.SET_DNS_RECORD, domain="client.com", record_type="MX",
            host="client.com", values=("10 mx1.client.com", "20 mx2.client.com"), ttl=3600),
     OpState.CANCELLED, {}),
    (OpSpec(0, "c", Action.CREATE_SITE, site_name="-minus\tand tab"),
     OpState.FAILED, {"attempts": 1, "error": OpError(None, "no code, only words")}),
    (OpSpec(0, "d", Action.CREATE_SITE, site_name="\tTab first"),
     OpState.SUCCEEDED, {"site_id": SITE_D, "attempts": 2, "note": "reconciled: found",
                         "error": OpError("TIMEOUT", "an old error", hint="history")}),
    # Results that a cell would read as a formula: Wix's ids never are, but a report escapes
    # whatever it is given.
    (OpSpec(0, "h", Action.CREATE_SITE, site_name="Hotel"),
     OpState.SUCCEEDED, {"site_id": "=odd-site-id", "attempts": 1}),
    (OpSpec(0, "h-owner", Action.SITE_INVITE, site="@h", email="h@h.example.com",
            roles=("Admin",)),
     OpState.SUCCEEDED, {"invite_id": "-odd-invite", "attempts": 1}),
    (OpSpec(0, "e", Action.CREATE_SITE, site_name="Été ünïcode ✓"),
     OpState.FAILED, {"attempts": 4, "error": OpError(
         "-BAD_NAME", "refused; =1+1, twice", hint="@fix it", status=400,
         request_id="req-1")}),
    (OpSpec(0, "g", Action.CREATE_SITE, site_name="Golf"),
     OpState.FAILED, {"attempts": 1, "error": OpError(None, "", request_id="")}),
)
# A later file: three of the first file's rows as they were (done, failed, open there), one
# with other content under a failed key (it replaces that key's work), one of its own.
SECOND_FILE: tuple[OpSpec, ...] = (
    FIRST_FILE[0][0],
    dataclasses.replace(FIRST_FILE[1][0], site_name="Shop renamed"),
    FIRST_FILE[10][0],
    FIRST_FILE[5][0],
    OpSpec(0, "f", Action.CREATE_SITE, site_name="Foxtrot"),
)


async def _settle(store: Store, job_id: str, ends: Mapping[str, tuple[OpState, dict[str, Any]]]
                  ) -> None:
    """Each keyed row's op to its state and results, as a run leaves it; blocked rows by the
    store's own `block_dependents` (the dependency of each failed)."""
    changed = []
    async for op in store.iter_ops(job_id):
        if op.spec.key not in ends or op.job_id != job_id:
            continue
        state, results = ends[op.spec.key]
        if state is OpState.BLOCKED:
            continue
        changed.append(dataclasses.replace(op, state=state, lease_owner=None, **results))
    await store.save(changed)
    await store.block_dependents(job_id)


async def _make_jobs(url: str) -> None:
    """job-1 (FIRST_FILE, settled), then job-2 (SECOND_FILE), run once: it takes over the
    failed and open rows it names, and runs its own."""
    store = await open_store(url, clock=lambda: NOW)
    try:
        await add_job(store, "job-1", [spec for spec, _, _ in FIRST_FILE])
        await _settle(store, "job-1", {spec.key: (state, results)
                                       for spec, state, results in FIRST_FILE})
        await add_job(store, "job-2", list(SECOND_FILE))
        await store.take_over("job-2", now=NOW + 60, rerun=True)
        await _settle(store, "job-2", {
            "f": (OpState.SUCCEEDED, {"site_id": SITE_B, "attempts": 1}),
            "c": (OpState.FAILED, {"attempts": 2, "error": OpError("AGAIN", "still, no")}),
        })
    finally:
        await store.close()


@pytest.fixture
async def db(tmp_path: Path) -> str:
    path = str(tmp_path / "report.db")
    await _make_jobs(path)
    return path


async def _through_store(url: str, job_id: str, fmt: str,
                         only: Collection[OpState] | None) -> tuple[int, str]:
    out = io.StringIO()
    count = await jobviews.write_report(url, job_id, fmt, only, out)
    return count, out.getvalue()


def _lean(path: str, job_id: str | None, fmt: str, only: Collection[OpState] | None
          ) -> tuple[int | None, str]:
    out = io.StringIO()
    count = sqlitereport.write_report(Path(path), job_id, fmt, only, out, database=path)
    return count, out.getvalue()


ONLY = [None, (OpState.FAILED, OpState.BLOCKED), (OpState.SUCCEEDED,),
        (OpState.PENDING, OpState.RUNNING, OpState.UNKNOWN, OpState.CANCELLED)]


@pytest.mark.parametrize("fetch", [1000, 2], ids=["one-page", "pages-of-2"])
@pytest.mark.parametrize("only", ONLY, ids=["all", "failed,blocked", "succeeded", "open"])
@pytest.mark.parametrize("fmt", ["json", "csv"])
@pytest.mark.parametrize("job_id", ["job-1", "job-2"])
async def test_lean_report_is_byte_for_byte_the_store_paths(
    db: str, job_id: str, fmt: str, only: tuple[OpState, ...] | None, fetch: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pages of two rows: `@key`s resolved from this page, the one before, and the database.
    monkeypatch.setattr(reportrows, "FETCH", fetch)

    expected = await _through_store(db, job_id, fmt, only)
    written = _lean(db, job_id, fmt, only)

    assert written == expected
    assert expected[0] > 0 or only is not None


async def test_the_jobs_hold_what_the_comparison_is_about(db: str) -> None:
    """The set-up itself: every state, rows run elsewhere (done, failed, replaced), registrar
    records, TXT quoting, escaped and quoted cells."""
    first = json.loads((await _through_store(db, "job-1", "json", None))[1])
    second = json.loads((await _through_store(db, "job-2", "json", None))[1])
    _, table = await _through_store(db, "job-1", "csv", None)

    assert {record["status"] for record in first} == {state.value for state in OpState}
    notes = {record["key"]: record["note"] or "" for record in first}
    assert notes["b"].startswith("replaced: this key was run in job job-2")
    assert notes["c"].startswith("failed in job job-2")
    assert notes["move-a"] == "run in job job-2 (line 5)"
    assert second[0]["note"].startswith("done before: in job job-1")
    assert next(r for r in first if r["key"] == "dom")["result"]["registrar_records"]
    assert next(r for r in first if r["key"] == "e")["error"]["request_id"] == "req-1"
    lines = table.splitlines()
    assert "'=HYPERLINK" in lines[1] and lines[-2].startswith("create_site,e,")
    assert ',TXT,client.com,"""v=spf1 include:x ~all"";""a;b \\""c\\""""",300,' in table
    assert "'-BAD_NAME,\"refused; =1+1, twice\",'@fix it,req-1," in table
    assert "create_site,h,Hotel," + "," * 17 + "succeeded,1,'=odd-site-id,,,,,,,14," in table
    assert (",'=odd-site-id,,,h@h.example.com,Admin" + "," * 11
            + "succeeded,1,,'-odd-invite,,,,,,15," in table)


@pytest.mark.parametrize("job_id", ["job-1", "job-2", None])
async def test_lean_html_page_is_the_store_paths(
    db: str, job_id: str | None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "time", lambda: NOW + 3600)  # the page's "generated" line
    monkeypatch.setattr(jobviews, "HTML_ROWS", 2)
    monkeypatch.setattr(sqlitereport, "HTML_ROWS", 2)  # "... and N more" on both

    expected = await _through_store(db, job_id or "job-2", "html", None)
    written = _lean(db, job_id, "html", None)

    assert written == expected
    assert "more" in expected[1]


async def test_a_database_of_another_schema_revision_is_left_to_the_store(db: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0004'")

    assert _lean(db, "job-1", "json", None) == (None, "")


@pytest.mark.parametrize("job_id", ["no-such-job"])
async def test_a_job_not_there_or_pruned_is_left_to_the_store(db: str, job_id: str) -> None:
    assert _lean(db, job_id, "csv", None) == (None, "")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE jobs SET pruned_at = 1 WHERE job_id = 'job-1'")
    assert _lean(db, "job-1", "csv", None) == (None, "")


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_cli_report_of_a_file_path_is_the_report_of_its_sqlalchemy_url(
    db: str, fmt: str, tmp_path: Path,
) -> None:
    """`--db PATH` takes the lean path, `--db sqlite:///PATH` the store's: same bytes."""
    outputs = []
    for where in (db, f"sqlite:///{db}"):
        result = subprocess.run(
            [sys.executable, "-m", "bulkops", "report", "job-1", "--db", where, "--format", fmt],
            capture_output=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)

    assert outputs[0] == outputs[1]
    assert outputs[0]


async def test_store_path_on_postgresql_writes_what_the_lean_path_writes_on_sqlite(
    db: str, pg_url: str,
) -> None:
    """The same jobs on PostgreSQL (its report is the store's path): the same reports."""
    await _make_jobs(pg_url)

    for job_id in ("job-1", "job-2"):
        for fmt in ("json", "csv"):
            for only in ONLY:
                assert await _through_store(pg_url, job_id, fmt, only) == _lean(
                    db, job_id, fmt, only), (job_id, fmt, only)
