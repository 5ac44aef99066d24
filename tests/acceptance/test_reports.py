"""What `status` and `report` tell a user, and the fix-and-run-again loop of failed rows.

Two stories against one sandbox, each run once per module and checked by several tests:

- failing rows: a transfer to an account Wix does not know (428), an invite to a bouncing
  address, and an invite that waits for the failed transfer (blocked). The run exits 1; the
  failed-rows CSV validates, and once its cells are fixed it runs to exit 0.
- formula-like site names: creates named "=HYPERLINK(...)", "+1 Plumbing", ... are made to
  fail (the sandbox answers 5xx to every create), so they land in the failed-rows CSV, whose
  cells must not start a formula; run again, the sites must get the names as first written.
"""

from __future__ import annotations

import csv
import io
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from evidence import assert_report_in_input_order
from harness import (
    BOUNCE_DOMAIN,
    SUB_ACCOUNTS,
    UNKNOWN_ACCOUNT,
    Json,
    SandboxProcess,
    cli_env,
    fast_run_flags,
    read_report_csv,
    realistic_rows,
    report_json,
    run_cli,
    running_sandbox,
    status_json,
    write_job_csv,
)

FAILING_ROWS = [
    # After the team member limited to that site is invited: once moved, the site could no
    # longer be named by an account invite (the checks before the first write say so).
    {"action": "transfer_site", "key": "lost-move", "site": "@rep-c001",
     "to_account": UNKNOWN_ACCOUNT, "depends_on": "@rep-c001-team"},
    {"action": "site_invite", "key": "bounce", "site": "@rep-c003",
     "email": f"nobody@{BOUNCE_DOMAIN}", "role": "Website Manager"},
    {"action": "site_invite", "key": "after-move", "site": "@rep-c001",
     "email": "new-owner@client1.example.com", "role": "Website Manager",
     "depends_on": "@lost-move"},
]
FIXED_EMAIL = "nobody@client3.example.com"
FORMULA_NAMES = ('=HYPERLINK("https://evil.example","Click")', "+1 Plumbing", "-Minus Design",
                 "@Home Decor")
REQUIRED_RECORD_KEYS = {"line", "key", "action", "status", "attempts", "result", "error"}
STATES = ("pending", "running", "unknown", "succeeded", "failed", "blocked", "cancelled")


@dataclass(frozen=True)
class FailingStory:
    rows: list[dict[str, str]]
    run: subprocess.CompletedProcess[str]
    status: Json
    report: list[Json]
    failed_csv_text: str
    validate_failed: subprocess.CompletedProcess[str]
    rerun_fixed: subprocess.CompletedProcess[str]
    state_after_rerun: Json


@dataclass(frozen=True)
class FormulaStory:
    run: subprocess.CompletedProcess[str]
    failed_csv_text: str
    rerun: subprocess.CompletedProcess[str]
    state_after_rerun: Json


def _fix_failed_csv(path: Path) -> None:
    """What the user does in the spreadsheet: point the transfer at a real client account
    and correct the bounced address; nothing else changes."""
    rows = read_report_csv(path)
    for row in rows:
        if row["key"] == "lost-move":
            row["to_account"] = SUB_ACCOUNTS[0]
        if row["key"] == "bounce":
            row["email"] = FIXED_EMAIL
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _failing_story(sandbox: SandboxProcess, folder: Path) -> FailingStory:
    env = cli_env()
    rows = realistic_rows(8, tag="rep") + FAILING_ROWS
    job = write_job_csv(folder / "clients.csv", rows)
    db = folder / "story.db"
    flags = fast_run_flags(db, sandbox.base_url)
    run = run_cli(["run", str(job), *flags], env)
    status = status_json(db, env)
    report = report_json(db, env)
    failed_csv = folder / "failed.csv"
    exported = run_cli(["report", "--format", "csv", "--only", "failed", "-o", str(failed_csv),
                        "--db", str(db)], env, timeout=30)
    assert exported.returncode == 0, exported.stderr
    failed_csv_text = failed_csv.read_text(encoding="utf-8")
    validate_failed = run_cli(["validate", str(failed_csv)], env, timeout=30)
    _fix_failed_csv(failed_csv)
    rerun = run_cli(["run", str(failed_csv), *flags], env)
    return FailingStory(rows, run, status, report, failed_csv_text, validate_failed, rerun,
                        sandbox.state())


def _formula_story(sandbox: SandboxProcess, folder: Path) -> FormulaStory:
    env = cli_env()
    rows = [{"action": "create_site", "key": f"formula-{n}", "site_name": name}
            for n, name in enumerate(FORMULA_NAMES, 1)]
    job = write_job_csv(folder / "formulas.csv", rows)
    db = folder / "formulas.db"
    flags = fast_run_flags(db, sandbox.base_url, max_attempts=2)
    sandbox.set_faults(error_rate=1.0, fault_methods=["create_site"])
    try:
        run = run_cli(["run", str(job), *flags], env)
    finally:
        sandbox.set_faults(error_rate=0.0)
    failed_csv = folder / "formulas-failed.csv"
    exported = run_cli(["report", "--format", "csv", "--only", "failed", "-o", str(failed_csv),
                        "--db", str(db)], env, timeout=30)
    assert exported.returncode == 0, exported.stderr
    rerun = run_cli(["run", str(failed_csv), *flags], env)
    return FormulaStory(run, failed_csv.read_text(encoding="utf-8"), rerun, sandbox.state())


@pytest.fixture(scope="module")
def stories(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FailingStory,
                                                                          FormulaStory]]:
    folder = tmp_path_factory.mktemp("reports")
    with running_sandbox() as sandbox:
        yield _failing_story(sandbox, folder), _formula_story(sandbox, folder)


@pytest.fixture(scope="module")
def failing(stories: tuple[FailingStory, FormulaStory]) -> FailingStory:
    return stories[0]


@pytest.fixture(scope="module")
def formulas(stories: tuple[FailingStory, FormulaStory]) -> FormulaStory:
    return stories[1]


def test_run_with_failed_and_blocked_rows_exits_1(failing: FailingStory) -> None:
    """Some rows failed (428 target account, bounced invite) and one was blocked: exit 1."""
    assert failing.run.returncode == 1, failing.run.stdout + failing.run.stderr
    assert "2 failed" in failing.run.stdout and "1 blocked" in failing.run.stdout


def test_status_json_has_the_contract_shape(failing: FailingStory) -> None:
    """{"job", "state", "total", "counts"}: counts name every state and add up to total."""
    status = failing.status
    assert {"job", "state", "total", "counts"} <= set(status)
    assert isinstance(status["job"], str) and status["job"]
    assert status["state"] == "finished"
    assert status["total"] == len(failing.rows)
    assert set(status["counts"]) == set(STATES)
    assert sum(status["counts"].values()) == status["total"]
    assert (status["counts"]["failed"], status["counts"]["blocked"]) == (2, 1)
    assert status["counts"]["succeeded"] == len(failing.rows) - 3


def test_report_json_has_one_record_per_row_in_input_order(failing: FailingStory) -> None:
    """Every record has line/key/action/status/attempts/result/error, in input order."""
    assert_report_in_input_order(failing.rows, failing.report)
    for record in failing.report:
        assert set(record) >= REQUIRED_RECORD_KEYS, record


def test_report_json_results_and_errors_per_status(failing: FailingStory) -> None:
    """Succeeded rows carry their site or invite id and no error; failed rows carry Wix's
    code, a message and a hint; the blocked row was never sent."""
    by_key = {record["key"]: record for record in failing.report}
    for row in failing.rows:
        record = by_key[row["key"]]
        if record["status"] != "succeeded":
            continue
        field = "site_id" if row["action"] in ("create_site", "transfer_site") else "invite_id"
        assert record["result"][field] and record["error"] is None, record
        assert record["attempts"] >= 1
    lost = by_key["lost-move"]
    assert lost["status"] == "failed"
    assert lost["error"]["code"] == "TARGET_ACCOUNT_ID_NOT_FOUND", lost
    assert lost["error"]["message"] and lost["error"]["hint"], lost
    bounce = by_key["bounce"]
    assert bounce["status"] == "failed" and bounce["error"]["message"], bounce
    blocked = by_key["after-move"]
    assert (blocked["status"], blocked["attempts"], blocked["result"]) == ("blocked", 0, None)


def test_failed_rows_csv_validates_and_after_fixing_runs_to_exit_0(
    failing: FailingStory,
) -> None:
    """`report --only failed` is a job file as it is; with to_account and e-mail fixed it
    succeeds, and the sandbox shows the transfer and the invite."""
    exported = list(csv.DictReader(io.StringIO(failing.failed_csv_text)))
    assert [row["key"] for row in exported] == ["lost-move", "bounce"]
    assert {"status", "attempts", "site_id", "invite_id", "error_code",
            "error_message"} <= set(exported[0])
    assert exported[0]["error_code"] == "TARGET_ACCOUNT_ID_NOT_FOUND"
    assert failing.validate_failed.returncode == 0, failing.validate_failed.stderr
    assert failing.rerun_fixed.returncode == 0, (failing.rerun_fixed.stdout
                                                 + failing.rerun_fixed.stderr)
    state = failing.state_after_rerun
    [site_id] = [s["id"] for s in state["sites"] if s["displayName"] == "REP Dental 001"]
    assert [t["to"] for t in state["transfers"] if t["siteId"] == site_id] == [SUB_ACCOUNTS[0]]
    invited = {(i["siteId"], i["email"]) for i in state["invites"]}
    [site_3] = [s["id"] for s in state["sites"] if s["displayName"] == "REP Law Partners 003"]
    assert (site_3, FIXED_EMAIL) in invited


def test_csv_report_cells_never_start_a_formula(formulas: FormulaStory) -> None:
    """Site names starting with = + - @ are written with a leading apostrophe."""
    assert formulas.run.returncode == 1, formulas.run.stdout + formulas.run.stderr
    names = [row["site_name"] for row in csv.DictReader(io.StringIO(formulas.failed_csv_text))]
    assert names == [f"'{name}" for name in FORMULA_NAMES]


def test_failed_rows_csv_read_back_keeps_the_original_site_names(
    formulas: FormulaStory,
) -> None:
    """Run again from the failed-rows CSV, the sites get the names as first written: the
    reader strips the apostrophe the report added (README: Job files)."""
    assert formulas.rerun.returncode == 0, formulas.rerun.stdout + formulas.rerun.stderr
    created = sorted(site["displayName"] for site in formulas.state_after_rerun["sites"]
                     if site["displayName"].lstrip("'") in FORMULA_NAMES)
    assert created == sorted(FORMULA_NAMES)


@pytest.mark.parametrize("command", [["status", "--json"], ["report"]])
def test_reading_commands_never_create_a_database(tmp_path: Path, command: list[str]) -> None:
    """A mistyped --db is named in one line with exit 2, and no empty database is left."""
    missing = tmp_path / "typo.db"
    result = run_cli([*command, "--db", str(missing)], cli_env())
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"no database at {missing}" in result.stderr
    assert not missing.exists()
