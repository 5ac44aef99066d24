"""Running files again: an operation is its key within the database, account and API, so work
that succeeded in any earlier run of any file is never sent twice.

Every test drives the `bulkops` command as a subprocess and counts what reached the sandbox by
the difference of its own per-endpoint request counters before and after. Tests that use the
default database set XDG_DATA_HOME to a temporary folder (the `env` fixture below does so for
every test) and run in an empty working directory, so no user's database is ever touched.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import socket
import time
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from evidence import assert_exactly_once
from harness import (
    ACCOUNT_ID,
    BOUNCE_DOMAIN,
    JOB_COLUMNS,
    SUB_ACCOUNTS,
    Json,
    SandboxFactory,
    SandboxProcess,
    calls_since,
    cli_env,
    fast_run_flags,
    mutating_calls,
    realistic_rows,
    report_json,
    request_count,
    run_cli,
    start_cli,
    status_json,
    wait_until,
    write_job_csv,
)

# The sandbox endpoints that change the world; reads (query_sites, roles) are not counted.
ENDPOINT_OF_ACTION = {
    "create_site": "create_site", "transfer_site": "transfer_site",
    "site_invite": "site_invite_bulk", "account_invite": "account_invite",
}
RUN_TIMEOUT = 30.0
# Long enough that a run at this rate is still going when the test acts on it mid-run.
SLOW_RATE = "5/s"
DONE_BEFORE = re.compile(
    r"^done before: in job (?P<job>[0-9a-f]+) \(line (?P<line>\d+)\) on "
    r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}"
)


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The CLI's environment with the per-user data directory inside the test's tmp folder:
    a command that falls back to the default database never touches a real one."""
    return cli_env(XDG_DATA_HOME=str(tmp_path / "xdg-data"))






def _expected_sends(rows: Sequence[Mapping[str, str]]) -> Counter[str]:
    """One effect per row, by the endpoint that makes it (see `_effects`)."""
    return Counter(ENDPOINT_OF_ACTION[row["action"]] for row in rows)


def _effects(sandbox: SandboxProcess) -> Counter[str]:
    """What Wix did, by the endpoint that does it: sites created (not seeded), transfers, site
    and account invites. Invites share calls, so calls do not count rows; effects do."""
    state = sandbox.state()
    invites = Counter(f"{invite['kind']}_invite" for invite in state["invites"])
    return +Counter({
        "create_site": sum(1 for site in state["sites"] if not site["seeded"]),
        "transfer_site": len(state["transfers"]),
        "site_invite_bulk": invites["site_invite"],
        "account_invite": invites["account_invite"],
    })


def _effects_since(before: Counter[str], sandbox: SandboxProcess) -> Counter[str]:
    after = _effects(sandbox)
    after.subtract(before)
    return +after


def _flags(
    db: str | Path, base_url: str, *, lease_seconds: float | None = None, **options: Any
) -> list[str]:
    """`fast_run_flags` without any job-lease flags (`--lease-seconds`, `--wait`), so lease
    tests choose them themselves; `lease_seconds` adds that flag."""
    flags: list[str] = []
    skip = False
    for flag in fast_run_flags(db, base_url, **options):
        if skip:
            skip = False
        elif flag == "--lease-seconds":
            skip = True
        elif flag == "--wait" or flag.startswith("--wait="):
            continue
        else:
            flags.append(flag)
    if lease_seconds is not None:
        flags += ["--lease-seconds", str(lease_seconds)]
    return flags


def _tagged_rows(total: int, tag: str) -> list[dict[str, str]]:
    """`realistic_rows` whose invitee e-mails are unique to `tag` too (realistic_rows gives
    every file's account invites the same addresses), so several files in one sandbox share
    no invitee unless they share rows."""
    rows = realistic_rows(total, tag=tag)
    for row in rows:
        if row.get("email"):
            row["email"] = row["email"].replace("@", f"+{tag}@")
    return rows


def _job_of(stdout: str) -> str:
    """The job id of a run summary's first line `job <id>: ...`."""
    found = re.search(r"^job ([0-9a-f]+):", stdout, re.MULTILINE)
    assert found, f"no job line in {stdout!r}"
    return found.group(1)


def _line_after(text: str, marker: str) -> str:
    """What follows `marker` on the last line of `text` that holds it."""
    lines = [line for line in text.splitlines() if marker in line]
    assert lines, f"no line with {marker!r} in {text!r}"
    return lines[-1].split(marker, 1)[1].strip()


def _without_db(flags: Sequence[str]) -> list[str]:
    """Run flags with `--db PATH` left out: the command picks its default database."""
    at = list(flags).index("--db")
    return [*flags[:at], *flags[at + 2:]]


def _pasted(command: str) -> list[str]:
    """A printed `bulkops ...` command as the arguments a shell would give it."""
    words = shlex.split(command)
    assert words[0] == "bulkops", command
    return words[1:]


def _output(result: Any) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def _sites_by_name(state: Json) -> Counter[str]:
    return Counter(site["displayName"] for site in state["sites"] if not site["seeded"])


def _no_duplicate_effects(state: Json) -> None:
    duplicates = {name: n for name, n in _sites_by_name(state).items() if n > 1}
    assert not duplicates, f"sites created more than once: {duplicates}"
    moves = Counter(transfer["siteId"] for transfer in state["transfers"])
    assert all(n == 1 for n in moves.values()), f"sites moved more than once: {moves}"
    assert state["duplicate_invite_emails"] == 0, [
        e for e in state["emails_sent"] if e["count"] > 1]


def _wait_requests(sandbox: SandboxProcess, more: int, cli: Any) -> None:
    """Wait until the sandbox saw `more` further requests; the run must still be going."""
    start = request_count(sandbox.base_url)
    wait_until(lambda: not cli.running() or request_count(sandbox.base_url) >= start + more,
               timeout=RUN_TIMEOUT)
    assert cli.running(), f"the run ended before {more} requests: {_output(cli.wait(1))}"


# -- the same file again ------------------------------------------------------------------------


def test_unchanged_file_run_again_sends_no_mutating_request(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    rows = realistic_rows(20, tag="same")
    job = write_job_csv(tmp_path / "clients.csv", rows)
    db = each_db
    first = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                    timeout=RUN_TIMEOUT)
    assert first.returncode == 0, _output(first)
    assert f"database: {db}" in first.stdout.splitlines()
    before = mutating_calls(sandbox)

    again = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                    timeout=RUN_TIMEOUT)

    assert again.returncode == 0, _output(again)
    assert calls_since(before, sandbox) == Counter()
    assert _job_of(again.stdout) == _job_of(first.stdout)
    assert "(20 done in earlier runs, not sent again)" in again.stdout
    assert f"database: {db}" in again.stdout.splitlines()
    assert_exactly_once(rows, report_json(db, env), sandbox.state())


def test_same_file_against_another_api_or_account_is_other_work_and_is_sent_again(
    sandbox_factory: SandboxFactory, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    """An operation is its key within the database *and* the account and API: the same file
    sent to another sandbox, or for another account, is sent in full; to the first again,
    not at all."""
    first, second = sandbox_factory(), sandbox_factory()
    rows = [row for row in realistic_rows(12, tag="scope") if row["action"] == "create_site"]
    job = write_job_csv(tmp_path / "sites.csv", rows)
    db = each_db
    there = run_cli(["run", str(job), *fast_run_flags(db, first.base_url)], env,
                    timeout=RUN_TIMEOUT)
    assert there.returncode == 0, _output(there)
    before = mutating_calls(first)

    other_api = run_cli(["run", str(job), *fast_run_flags(db, second.base_url)], env,
                        timeout=RUN_TIMEOUT)
    other_account = run_cli(["run", str(job), *fast_run_flags(db, first.base_url)],
                            {**env, "WIX_ACCOUNT_ID": SUB_ACCOUNTS[0]}, timeout=RUN_TIMEOUT)
    sent_for_account = calls_since(before, first)
    same = run_cli(["run", str(job), *fast_run_flags(db, first.base_url)], env,
                   timeout=RUN_TIMEOUT)

    for result in (other_api, other_account, same):
        assert result.returncode == 0, _output(result)
    assert mutating_calls(second) == _expected_sends(rows)
    assert sent_for_account == _expected_sends(rows)
    assert calls_since(before, first) == _expected_sends(rows)  # `same` sent nothing


def test_appended_rows_alone_are_sent_and_earlier_rows_report_where_they_were_done(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    rows = realistic_rows(25, tag="grow")
    job = write_job_csv(tmp_path / "clients.csv", rows[:20])
    db = each_db
    first = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                    timeout=RUN_TIMEOUT)
    assert first.returncode == 0, _output(first)
    first_job = _job_of(first.stdout)
    earlier = {record["key"]: record for record in report_json(db, env, first_job)}
    before = _effects(sandbox)

    write_job_csv(job, rows)
    grown = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                    timeout=RUN_TIMEOUT)

    assert grown.returncode == 0, _output(grown)
    assert _effects_since(before, sandbox) == _expected_sends(rows[20:])
    assert _job_of(grown.stdout) != first_job  # another version of the file: another job
    report = report_json(db, env)
    assert_exactly_once(rows, report, sandbox.state())
    for record in report[:20]:
        done = earlier[record["key"]]
        assert (record["status"], record["result"]) == ("succeeded", done["result"]), record
        note = DONE_BEFORE.match(record["note"] or "")
        assert note, f"line {record['line']}: note {record['note']!r}"
        assert (note["job"], int(note["line"])) == (first_job, done["line"]), record["note"]
    for record in report[20:]:
        assert record["note"] is None, record


def _fix_file_rows(email: str, *, keyed: bool) -> list[dict[str, str]]:
    """Two creates and an invite to `email`: an address Wix refuses inside its 200 answer
    fails the row only at Wix (every check before sending passes it)."""
    rows = [
        {"action": "create_site", "key": "fix-bakery", "site_name": "Fix Bakery"},
        {"action": "create_site", "key": "fix-florist", "site_name": "Fix Florist"},
        {"action": "account_invite", "key": "fix-team", "email": email,
         "role": "Website Manager"},
    ]
    if not keyed:
        for row in rows:
            del row["key"]
    return rows


@pytest.mark.parametrize("keyed", [True, False], ids=["with-keys", "derived-keys"])
def test_failed_row_fixed_in_the_file_is_the_only_row_sent_again(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str, keyed: bool,
) -> None:
    job = tmp_path / "fix.csv"
    db = each_db
    write_job_csv(job, _fix_file_rows(f"team@{BOUNCE_DOMAIN}", keyed=keyed))
    first = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                    timeout=RUN_TIMEOUT)
    assert first.returncode == 1, _output(first)
    statuses = [record["status"] for record in report_json(db, env)]
    assert statuses == ["succeeded", "succeeded", "failed"]
    before = mutating_calls(sandbox)

    write_job_csv(job, _fix_file_rows("team@fix.example.com", keyed=keyed))
    fixed = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                    timeout=RUN_TIMEOUT)

    assert fixed.returncode == 0, _output(fixed)
    assert calls_since(before, sandbox) == Counter({"account_invite": 1})
    report = report_json(db, env)
    assert [record["status"] for record in report] == ["succeeded"] * 3
    state = sandbox.state()
    assert _sites_by_name(state) == Counter({"Fix Bakery": 1, "Fix Florist": 1})
    [invite] = [i for i in state["invites"] if i["email"] == "team@fix.example.com"]
    assert report[2]["result"] == {"invite_id": invite["id"]}


def test_run_of_same_file_reruns_failed_and_blocked_rows_with_fresh_attempts_resume_does_not(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    """Transfers answer 5xx until the fault is lifted: with --max-attempts 2 the transfer
    fails and the invite waiting for it is blocked; an invite to a bouncing address fails."""
    sandbox.set_faults(error_rate=1.0, fault_methods=["transfer_site"])
    rows = [
        {"action": "create_site", "key": "acme", "site_name": "Acme Retry"},
        {"action": "transfer_site", "key": "acme-move", "site": "@acme",
         "to_account": SUB_ACCOUNTS[0]},
        {"action": "site_invite", "key": "acme-owner", "site": "@acme",
         "email": "owner@acme.example.com", "role": "Website Manager",
         "depends_on": "@acme-move"},
        {"action": "account_invite", "key": "bounce", "email": f"team@{BOUNCE_DOMAIN}",
         "role": "Website Manager"},
    ]
    job = write_job_csv(tmp_path / "retry.csv", rows)
    db = each_db
    flags = fast_run_flags(db, sandbox.base_url, max_attempts=2)
    first = run_cli(["run", str(job), *flags], env, timeout=RUN_TIMEOUT)
    assert first.returncode == 1, _output(first)
    job_id = _job_of(first.stdout)
    assert [r["status"] for r in report_json(db, env)] == [
        "succeeded", "failed", "blocked", "failed"]
    sandbox.set_faults(error_rate=0.0)
    before = mutating_calls(sandbox)

    latest = run_cli(["resume", *flags], env, timeout=RUN_TIMEOUT)
    named = run_cli(["resume", job_id, *flags], env, timeout=RUN_TIMEOUT)

    assert latest.returncode == 2, _output(latest)
    assert "no unfinished job" in latest.stderr
    assert named.returncode == 1, _output(named)
    assert calls_since(before, sandbox) == Counter()
    assert [r["status"] for r in report_json(db, env)] == [
        "succeeded", "failed", "blocked", "failed"]

    again = run_cli(["run", str(job), *flags], env, timeout=RUN_TIMEOUT)

    assert again.returncode == 1, _output(again)  # the bouncing address fails again
    assert calls_since(before, sandbox) == Counter(
        {"transfer_site": 1, "site_invite_bulk": 1, "account_invite": 1})
    report = report_json(db, env)
    assert [(r["status"], r["attempts"]) for r in report] == [
        ("succeeded", 1), ("succeeded", 1), ("succeeded", 1), ("failed", 1)], report
    state = sandbox.state()
    [transfer] = state["transfers"]
    assert (transfer["siteId"], transfer["to"]) == (report[0]["result"]["site_id"],
                                                    SUB_ACCOUNTS[0])


def test_key_reused_with_other_content_after_success_is_refused_and_nothing_is_sent(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    job = tmp_path / "keys.csv"
    db = each_db
    write_job_csv(job, [
        {"action": "create_site", "key": "kay-y", "site_name": "Kay Why"},
        {"action": "create_site", "key": "kay-x", "site_name": "Kay One"},
    ])
    first = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                    timeout=RUN_TIMEOUT)
    assert first.returncode == 0, _output(first)
    first_job = _job_of(first.stdout)
    before = request_count(sandbox.base_url)

    write_job_csv(job, [
        {"action": "create_site", "key": "kay-x", "site_name": "Kay Two"},
        {"action": "create_site", "key": "kay-y", "site_name": "Kay Why"},
        {"action": "create_site", "key": "kay-z", "site_name": "Kay Zed"},
    ])
    changed = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                      timeout=RUN_TIMEOUT)

    assert changed.returncode == 2, _output(changed)
    assert request_count(sandbox.base_url) == before  # not even the new row
    assert re.search(
        rf"key 'kay-x' was done in job {first_job} \(line 3\) on "
        r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC with other content", changed.stderr), changed.stderr
    assert _sites_by_name(sandbox.state()) == Counter({"Kay Why": 1, "Kay One": 1})


# -- references to earlier runs -------------------------------------------------------------


def _acme_created_by_an_earlier_file(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path
) -> Path:
    """Run a first file that creates the site `acme`; returns the database it used."""
    db = tmp_path / "jobs.db"
    first = write_job_csv(tmp_path / "a.csv", [
        {"action": "create_site", "key": "acme", "site_name": "Acme Outside"}])
    done = run_cli(["run", str(first), *fast_run_flags(db, sandbox.base_url)], env,
                   timeout=RUN_TIMEOUT)
    assert done.returncode == 0, _output(done)
    return db


def _outside_rows() -> list[dict[str, str]]:
    return [
        {"action": "site_invite", "key": "out-owner", "site": "@acme",
         "email": "owner@acme.example.com", "role": "Website Manager"},
        {"action": "account_invite", "key": "out-team", "sites": "@acme",
         "email": "team@acme.example.com", "role": "Website Manager"},
        {"action": "create_site", "key": "out-next", "site_name": "Acme Next",
         "depends_on": "@acme"},
    ]


def test_key_reference_to_a_site_created_by_an_earlier_file_targets_that_site(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    db = _acme_created_by_an_earlier_file(sandbox, env, tmp_path)
    [acme] = [s["id"] for s in sandbox.state()["sites"] if s["displayName"] == "Acme Outside"]
    before = mutating_calls(sandbox)

    second = write_job_csv(tmp_path / "b.csv", _outside_rows())
    result = run_cli(["run", str(second), *fast_run_flags(db, sandbox.base_url)], env,
                     timeout=RUN_TIMEOUT)

    assert result.returncode == 0, _output(result)
    assert calls_since(before, sandbox) == Counter(
        {"site_invite_bulk": 1, "account_invite": 1, "create_site": 1})
    state = sandbox.state()
    invites = {invite["email"]: invite for invite in state["invites"]}
    assert invites["owner@acme.example.com"]["siteId"] == acme
    assert invites["team@acme.example.com"]["siteIds"] == [acme]
    assert _sites_by_name(state) == Counter({"Acme Outside": 1, "Acme Next": 1})
    report = report_json(db, env)
    assert [r["status"] for r in report] == ["succeeded"] * 3, report


def test_validate_accepts_earlier_run_key_with_its_database_and_refuses_it_without_one(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    db = _acme_created_by_an_earlier_file(sandbox, env, tmp_path)
    second = write_job_csv(tmp_path / "b.csv", _outside_rows())
    before = request_count(sandbox.base_url)

    known = run_cli(["validate", str(second), "--db", str(db), "--account-id", ACCOUNT_ID,
                     "--base-url", sandbox.base_url], env, timeout=RUN_TIMEOUT)
    other_account = run_cli(
        ["validate", str(second), "--db", str(db), "--account-id", SUB_ACCOUNTS[0],
         "--base-url", sandbox.base_url], env, timeout=RUN_TIMEOUT)
    empty_home = tmp_path / "empty-xdg"
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    unknown = run_cli(["validate", str(second)], cli_env(XDG_DATA_HOME=str(empty_home)),
                      timeout=RUN_TIMEOUT, cwd=folder)

    assert known.returncode == 0, _output(known)
    assert other_account.returncode == 2, _output(other_account)
    assert "'@acme' refers to no row in this file" in other_account.stderr
    assert unknown.returncode == 2, _output(unknown)
    assert "'@acme' refers to no row in this file" in unknown.stderr
    assert "there is no database" in unknown.stderr
    assert not (empty_home / "bulkops" / "bulkops.db").exists()  # validate stores nothing
    assert request_count(sandbox.base_url) == before


def _same_invite_under_two_keys(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, db: Path,
) -> tuple[str, Path]:
    """File A invites a person under key `team-a`; file B invites the same person (the e-mail
    differs only by case) to the same place with the same role under key `team-b`. B's row is
    found done (not sent again) and reported succeeded. Returns B's job id and file."""
    flags = fast_run_flags(db, sandbox.base_url)
    first = write_job_csv(tmp_path / "a.csv", [
        {"action": "account_invite", "key": "team-a", "email": "sam@agency.example.com",
         "role": "Website Manager"}])
    done = run_cli(["run", str(first), *flags], env, timeout=RUN_TIMEOUT)
    assert done.returncode == 0, _output(done)
    before = mutating_calls(sandbox)
    second = write_job_csv(tmp_path / "b.csv", [
        {"action": "account_invite", "key": "team-b", "email": "Sam@Agency.example.com",
         "role": "Website Manager"}])
    same = run_cli(["run", str(second), *flags], env, timeout=RUN_TIMEOUT)
    assert same.returncode == 0, _output(same)
    assert calls_since(before, sandbox) == Counter()
    [record] = report_json(db, env)
    assert (record["key"], record["status"]) == ("team-b", "succeeded"), record
    return _job_of(same.stdout), second


def test_key_of_a_row_found_done_as_the_same_invite_may_be_named_by_a_later_file(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    """`team-b` succeeded in B's report, so a later file may wait for it with `@team-b`."""
    db = each_db
    _same_invite_under_two_keys(sandbox, env, tmp_path, db)
    later = write_job_csv(tmp_path / "c.csv", [
        {"action": "create_site", "key": "after-b", "site_name": "After Team B",
         "depends_on": "@team-b"}])
    before = mutating_calls(sandbox)

    checked = run_cli(["validate", str(later), "--db", str(db), "--account-id", ACCOUNT_ID,
                       "--base-url", sandbox.base_url], env, timeout=RUN_TIMEOUT)
    result = run_cli(["run", str(later), *fast_run_flags(db, sandbox.base_url)], env,
                     timeout=RUN_TIMEOUT)

    assert checked.returncode == 0, _output(checked)
    assert result.returncode == 0, _output(result)
    assert calls_since(before, sandbox) == Counter({"create_site": 1})


def test_key_of_a_row_found_done_as_the_same_invite_is_refused_with_other_content(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    """`team-b` succeeded in B's report; B's row then changed to invite someone else under
    the same key is a key reused with other content, as for any other done key."""
    db = each_db
    _, second = _same_invite_under_two_keys(sandbox, env, tmp_path, db)
    write_job_csv(second, [
        {"action": "account_invite", "key": "team-b", "email": "kim@agency.example.com",
         "role": "Website Manager"}])
    before = mutating_calls(sandbox)

    changed = run_cli(["run", str(second), *fast_run_flags(db, sandbox.base_url)], env,
                      timeout=RUN_TIMEOUT)

    assert changed.returncode == 2, _output(changed)
    assert "key 'team-b'" in changed.stderr and "with other content" in changed.stderr, (
        changed.stderr)
    assert calls_since(before, sandbox) == Counter()


# -- the same person twice in one file ----------------------------------------------------------


@pytest.mark.parametrize("case", ["site_invite", "account_invite"])
def test_same_invitee_twice_in_one_file_is_a_validation_error_and_nothing_is_sent(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str, case: str,
) -> None:
    if case == "site_invite":
        rows = [
            {"action": "create_site", "key": "twice", "site_name": "Twice Site"},
            {"action": "site_invite", "key": "twice-a", "site": "@twice",
             "email": "Jo.Doe@Example.COM", "role": "Website Manager"},
            {"action": "site_invite", "key": "twice-b", "site": "@twice",
             "email": "  jo.doe@example.com ", "role": "Website Designer"},
        ]
    else:
        rows = [
            {"action": "account_invite", "key": "team-a", "email": "team@agency.example.com",
             "role": "Website Manager"},
            {"action": "account_invite", "key": "team-b", "email": "team@agency.example.com",
             "role": "Billing Manager"},
        ]
    job = write_job_csv(tmp_path / "twice.csv", rows)
    db = each_db

    result = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                     timeout=RUN_TIMEOUT)

    assert result.returncode == 2, _output(result)
    last = len(rows) + 1
    assert f"line {last}, column email" in result.stderr, result.stderr
    assert f"line {last - 1}" in result.stderr, result.stderr
    assert request_count(sandbox.base_url) == 0


# -- the default database -----------------------------------------------------------------------


def test_default_database_is_per_user_so_another_folder_sends_nothing_new(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    rows = realistic_rows(12, tag="home")
    job = write_job_csv(tmp_path / "clients.csv", rows)
    flags = _without_db(_flags(tmp_path / "unused.db", sandbox.base_url))
    default_db = tmp_path / "xdg-data" / "bulkops" / "bulkops.db"
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    first = run_cli(["run", str(job), *flags], env, timeout=RUN_TIMEOUT, cwd=one)
    assert first.returncode == 0, _output(first)
    assert default_db.is_file()
    before = mutating_calls(sandbox)

    second = run_cli(["run", str(job), *flags], env, timeout=RUN_TIMEOUT, cwd=two)

    assert second.returncode == 0, _output(second)
    assert calls_since(before, sandbox) == Counter()
    job_id = _job_of(first.stdout)
    for result in (first, second):
        lines = result.stdout.splitlines()
        assert f"database: {default_db}" in lines, result.stdout
        assert f"report: bulkops report {job_id}" in lines, result.stdout  # no --db needed
    assert not (one / "bulkops.db").exists() and not (two / "bulkops.db").exists()
    assert_exactly_once(rows, report_json(default_db, env), sandbox.state())


def test_existing_bulkops_db_in_the_folder_is_used_with_a_note(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    legacy = folder / "bulkops.db"
    job = write_job_csv(tmp_path / "clients.csv", realistic_rows(8, tag="legacy"))
    first = run_cli(["run", str(job), *_flags(legacy, sandbox.base_url)], env,
                    timeout=RUN_TIMEOUT, cwd=folder)
    assert first.returncode == 0, _output(first)
    before = mutating_calls(sandbox)

    again = run_cli(["run", str(job), *_without_db(_flags(legacy, sandbox.base_url))], env,
                    timeout=RUN_TIMEOUT, cwd=folder)

    assert again.returncode == 0, _output(again)
    assert "note: using bulkops.db in this folder" in again.stderr, again.stderr
    assert f"database: {legacy}" in again.stdout.splitlines(), again.stdout
    assert calls_since(before, sandbox) == Counter()
    assert not (tmp_path / "xdg-data" / "bulkops" / "bulkops.db").exists()


# -- printed next steps -------------------------------------------------------------------------


def test_printed_next_steps_name_the_database_and_resume_pasted_as_is_completes(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    """The database path holds a space: the printed commands must still paste as they are.
    The pasted `resume` has no --base-url and no WIX_ACCOUNT_ID: the job's own are used."""
    rows = realistic_rows(30, tag="paste")
    job = write_job_csv(tmp_path / "clients.csv", rows)
    (tmp_path / "my dbs").mkdir()
    db = tmp_path / "my dbs" / "jobs.db"
    cli = start_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url, rate=SLOW_RATE)],
                    env)
    try:
        _wait_requests(sandbox, 6, cli)
        cli.send(signal.SIGINT)
        stopped = cli.wait(timeout=RUN_TIMEOUT)
    finally:
        cli.ensure_stopped()
    assert stopped.returncode == 130, _output(stopped)
    assert f"database: {db}" in stopped.stdout.splitlines(), stopped.stdout
    job_id = _job_of(stopped.stdout)
    where = f"--db {shlex.quote(str(db))}"
    assert f"continue with: bulkops resume {job_id} {where}" in stopped.stderr, stopped.stderr
    assert f"report: bulkops report {job_id} {where}" in stopped.stdout, stopped.stdout

    key_only = cli_env(account_id=None, XDG_DATA_HOME=env["XDG_DATA_HOME"])
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    resumed = run_cli(_pasted(_line_after(stopped.stderr, "continue with:")), key_only,
                      timeout=RUN_TIMEOUT, cwd=folder)
    reported = run_cli(_pasted(_line_after(resumed.stdout, "report:")), key_only,
                       timeout=RUN_TIMEOUT, cwd=folder)

    assert resumed.returncode == 0, _output(resumed)
    assert f"database: {db}" in resumed.stdout.splitlines()
    assert reported.returncode == 0, _output(reported)
    assert_exactly_once(rows, json.loads(reported.stdout), sandbox.state())


# -- job leases ---------------------------------------------------------------------------------


def test_second_run_of_a_running_job_exits_4_at_once_and_with_wait_completes_it(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    rows = realistic_rows(80, tag="lease")
    job = write_job_csv(tmp_path / "clients.csv", rows)
    db = each_db
    # A 2 s lease: the first run (about 16 s, long enough for two more commands to start even
    # on a busy machine) keeps the job only by renewing it every 2/3 s.
    flags = _flags(db, sandbox.base_url, rate=SLOW_RATE, lease_seconds=2)
    first = start_cli(["run", str(job), *flags], env)
    waiter = None
    try:
        _wait_requests(sandbox, 15, first)  # 3 s at 5/s: longer than one lease
        job_id = status_json(db, env)["job"]
        busy = run_cli(["run", str(job), *flags], env, timeout=RUN_TIMEOUT)
        busy_resume = run_cli(["resume", job_id, *flags], env, timeout=RUN_TIMEOUT)
        assert first.running(), "the first run ended before the second one was refused"
        waiter = start_cli(["run", str(job), *flags, "--wait"], env)
        done = first.wait(timeout=RUN_TIMEOUT)
        waited = waiter.wait(timeout=RUN_TIMEOUT)
    finally:
        first.ensure_stopped()
        if waiter is not None:
            waiter.ensure_stopped()

    holder = f"busy: job {job_id} is being run by pid {first.pid} on {socket.gethostname()} since "
    for refused in (busy, busy_resume):
        assert refused.returncode == 4, _output(refused)
        assert refused.stderr.strip().splitlines() == [refused.stderr.strip()], refused.stderr
        assert refused.stderr.startswith(holder), refused.stderr
    assert done.returncode == 0, _output(done)
    assert waited.returncode == 0, _output(waited)
    assert _effects(sandbox) == _expected_sends(rows)  # each row done once, by one process
    assert_exactly_once(rows, report_json(db, env), sandbox.state())


@pytest.mark.parametrize("take_over", ["after-lease-ends", "with-wait"])
def test_job_of_a_sigkilled_run_is_busy_until_its_lease_ends_then_taken_over(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str, take_over: str,
) -> None:
    """A 12 s lease renewed every 4 s: right after the SIGKILL at least ~8 s of it are left
    (time for two commands even on a busy machine), and 12 s after it has surely ended."""
    rows = realistic_rows(30, tag="kill")
    job = write_job_csv(tmp_path / "clients.csv", rows)
    db = each_db
    lease = 12.0
    first = start_cli(
        ["run", str(job), *_flags(db, sandbox.base_url, rate=SLOW_RATE, lease_seconds=lease)],
        env)
    try:
        _wait_requests(sandbox, 5, first)
        first.kill()
        killed_at = time.monotonic()
    finally:
        first.ensure_stopped()
    job_id = status_json(db, env)["job"]
    flags = _flags(db, sandbox.base_url, lease_seconds=lease)

    busy = run_cli(["run", str(job), *flags], env, timeout=RUN_TIMEOUT)
    assert time.monotonic() - killed_at < lease - 1, "too slow to see the lease still held"
    if take_over == "with-wait":
        taken = run_cli(["run", str(job), *flags, "--wait=20"], env, timeout=RUN_TIMEOUT)
    else:
        time.sleep(max(0.0, killed_at + lease + 0.5 - time.monotonic()))
        taken = run_cli(["run", str(job), *flags], env, timeout=RUN_TIMEOUT)

    assert busy.returncode == 4, _output(busy)
    assert busy.stderr.startswith(f"busy: job {job_id} is being run by pid {first.pid} "), (
        busy.stderr)
    assert taken.returncode == 0, _output(taken)
    report = report_json(db, env)
    state = sandbox.state()
    assert_exactly_once(rows, report, state)  # no site created or moved twice
    # An invite whose answer the killed process never recorded is sent again by design (Wix
    # lists no pending invites), and then its row says so; no other invite may repeat.
    flagged = {row["email"].lower() for row, record in zip(rows, report, strict=True)
               if "more than once" in (record["note"] or "")}
    repeated = {e["email"] for e in state["emails_sent"] if e["count"] > 1}
    assert repeated <= flagged, (repeated, flagged)


# -- the in-process sandbox ---------------------------------------------------------------------


def _state_file_sites(path: Path) -> list[Json]:
    try:
        sites: list[Json] = json.loads(path.read_text(encoding="utf-8"))["sites"]
    except (OSError, ValueError, KeyError):
        return []
    return sites


@pytest.mark.parametrize("database", ["given", "default"])
def test_sandbox_run_interrupted_by_ctrl_c_completes_with_the_printed_resume_command(
    env: dict[str, str], tmp_path: Path, database: str,
) -> None:
    rows = realistic_rows(30, tag="demo")
    job = write_job_csv(tmp_path / "clients.csv", rows)
    start, later = tmp_path / "start", tmp_path / "later"
    start.mkdir()
    later.mkdir()
    if database == "given":
        db = tmp_path / "demo.db"
        db_flags = ["--db", str(db)]
    else:
        db = Path(env["XDG_DATA_HOME"]) / "bulkops" / "bulkops.db"
        db_flags = []
    world = db.with_name(db.name + ".sandbox.json")
    cli = start_cli(["run", str(job), "--sandbox", *db_flags, "--rate", SLOW_RATE], env,
                    cwd=start)
    try:
        wait_until(lambda: not cli.running() or len(_state_file_sites(world)) >= 3,
                   timeout=RUN_TIMEOUT)
        assert cli.running(), _output(cli.wait(1))
        cli.send(signal.SIGINT)
        stopped = cli.wait(timeout=RUN_TIMEOUT)
    finally:
        cli.ensure_stopped()

    assert stopped.returncode == 130, _output(stopped)
    job_id = _job_of(stopped.stdout)
    printed = _line_after(stopped.stderr, "continue with:")
    expected = f"bulkops resume {job_id}" + (f" --db {db}" if database == "given" else "")
    assert printed == expected, stopped.stderr
    clean = cli_env(api_key=None, account_id=None, XDG_DATA_HOME=env["XDG_DATA_HOME"])
    resumed = run_cli(_pasted(printed), clean, timeout=RUN_TIMEOUT, cwd=later)

    assert resumed.returncode == 0, _output(resumed)
    report = report_json(db, clean)
    assert [r["status"] for r in report] == ["succeeded"] * len(rows), report
    creates = [r for r in report if r["action"] == "create_site"]
    site_ids = [r["result"]["site_id"] for r in creates]
    assert len(set(site_ids)) == len(site_ids), site_ids
    sites = _state_file_sites(world)
    names = Counter(site["displayName"] for site in sites if not site["seeded"])
    assert names == Counter(r["site_name"] for r in rows if r["action"] == "create_site")
    assert set(site_ids) <= {site["id"] for site in sites}


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_closes_unfinished_rows_resume_skips_them_and_running_the_file_rearms_them(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    rows = realistic_rows(30, tag="cancel")
    job = write_job_csv(tmp_path / "clients.csv", rows)
    db = each_db
    cli = start_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url, rate=SLOW_RATE)],
                    env)
    try:
        _wait_requests(sandbox, 5, cli)
        cli.send(signal.SIGTERM)
        stopped = cli.wait(timeout=RUN_TIMEOUT)
    finally:
        cli.ensure_stopped()
    assert stopped.returncode == 130, _output(stopped)
    job_id = _job_of(stopped.stdout)
    counts = status_json(db, env)["counts"]
    unfinished = counts["pending"] + counts["running"] + counts["unknown"]
    assert unfinished > 0, counts

    cancelled = run_cli(["cancel", job_id, "--db", str(db)], env, timeout=RUN_TIMEOUT)

    assert cancelled.returncode == 0, _output(cancelled)
    assert f"{unfinished} unfinished row(s) marked cancelled" in cancelled.stdout
    status = status_json(db, env)
    assert status["state"] == "cancelled", status
    assert status["counts"]["cancelled"] == unfinished, status
    before, done_before = mutating_calls(sandbox), _effects(sandbox)
    flags = fast_run_flags(db, sandbox.base_url)
    latest = run_cli(["resume", *flags], env, timeout=RUN_TIMEOUT)
    assert latest.returncode == 2, _output(latest)
    assert "no unfinished job" in latest.stderr
    named = run_cli(["resume", job_id, *flags], env, timeout=RUN_TIMEOUT)
    assert named.returncode == 2, _output(named)
    assert "was cancelled: run its file again" in named.stderr
    assert calls_since(before, sandbox) == Counter()
    assert status_json(db, env)["counts"]["cancelled"] == unfinished

    again = run_cli(["run", str(job), *flags], env, timeout=RUN_TIMEOUT)

    assert again.returncode == 0, _output(again)
    assert sum(_effects_since(done_before, sandbox).values()) == unfinished
    assert_exactly_once(rows, report_json(db, env), sandbox.state())


# -- two files at once --------------------------------------------------------------------------


def test_concurrent_runs_of_two_files_sharing_rows_send_each_shared_row_once(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    shared = _tagged_rows(16, "shared")
    only_a, only_b = _tagged_rows(12, "afile"), _tagged_rows(12, "bfile")
    file_a = write_job_csv(tmp_path / "a.csv", shared + only_a)
    file_b = write_job_csv(tmp_path / "b.csv", only_b + shared)
    db = each_db
    flags = fast_run_flags(db, sandbox.base_url, rate="20/s")
    run_a = start_cli(["run", str(file_a), *flags], env)
    run_b = start_cli(["run", str(file_b), *flags], env)
    try:
        done_a = run_a.wait(timeout=RUN_TIMEOUT)
        done_b = run_b.wait(timeout=RUN_TIMEOUT)
    finally:
        run_a.ensure_stopped()
        run_b.ensure_stopped()

    assert done_a.returncode == 0, _output(done_a)
    assert done_b.returncode == 0, _output(done_b)
    state = sandbox.state()
    _no_duplicate_effects(state)
    assert _effects(sandbox) == _expected_sends(shared + only_a + only_b)
    report_a = report_json(db, env, _job_of(done_a.stdout))
    report_b = report_json(db, env, _job_of(done_b.stdout))
    for report in (report_a, report_b):
        assert [r["status"] for r in report] == ["succeeded"] * 28, report
    shared_a = [r["result"] for r in report_a[:16]]
    shared_b = [r["result"] for r in report_b[12:]]
    assert shared_a == shared_b  # one operation per shared row, seen from both files



# -- the same work under another key ----------------------------------------------------------


def _run_file(rows: Sequence[Mapping[str, str]], tmp_path: Path, sandbox: SandboxProcess,
              env: dict[str, str], columns: Sequence[str] | None = None) -> Any:
    job = tmp_path / "clients.csv"
    if columns is None:
        write_job_csv(job, rows)
    else:
        write_job_csv(job, rows, columns)
    return run_cli(["run", str(job), *fast_run_flags(tmp_path / "jobs.db", sandbox.base_url)],
                   env, timeout=RUN_TIMEOUT)


def test_removing_the_key_column_sends_nothing_again(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    """Without keys every row gets a key derived from its content; the sites, moves and
    invites are still recognised by what they do, and nothing is sent twice."""
    rows = _tagged_rows(16, tag="nokey")
    first = _run_file(rows, tmp_path, sandbox, env)
    assert first.returncode == 0, _output(first)
    before = mutating_calls(sandbox)
    columns = [c for c in JOB_COLUMNS if c != "key"]
    keyless = [{c: v for c, v in row.items() if c != "key"} for row in rows]
    # References by key have no key to point at any more: the rows name the sites by id.
    ids = {r["key"]: r["result"]["site_id"] for r in report_json(tmp_path / "jobs.db", env)
           if r["action"] == "create_site"}
    for row in keyless:
        for column in ("site", "sites"):
            if row.get(column, "").startswith("@"):
                row[column] = ids[row[column][1:]]
    again = _run_file(keyless, tmp_path, sandbox, env, columns)
    assert again.returncode == 0, _output(again)
    assert calls_since(before, sandbox) == Counter()
    assert "16 done in earlier runs" in again.stdout, again.stdout
    _no_duplicate_effects(sandbox.state())


def test_renaming_keys_of_done_rows_sends_nothing_again(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    rows = _tagged_rows(16, tag="rename")
    first = _run_file(rows, tmp_path, sandbox, env)
    assert first.returncode == 0, _output(first)
    before = mutating_calls(sandbox)
    renamed = []
    for row in rows:
        row = dict(row, key=row["key"] + "-renamed")
        for column in ("site", "sites"):
            if row.get(column, "").startswith("@"):
                row[column] += "-renamed"
        renamed.append(row)
    again = _run_file(renamed, tmp_path, sandbox, env)
    assert again.returncode == 0, _output(again)
    assert calls_since(before, sandbox) == Counter()
    _no_duplicate_effects(sandbox.state())


def test_a_keyless_create_edited_after_it_succeeded_makes_no_second_site(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    """A site of that display name was created in this account: the edited row (a template
    added, the name's case and Unicode form changed) is the same site, reported done."""
    first = _run_file([{"action": "create_site", "site_name": "Crème Brûlée Café"}],
                      tmp_path, sandbox, env, ["action", "site_name", "template_id"])
    assert first.returncode == 0, _output(first)
    before = mutating_calls(sandbox)
    edited = {"action": "create_site",
              "site_name": unicodedata.normalize("NFD", "crème brûlée café"),
              "template_id": "3b1f6c2e-8a4d-4e7b-9c1a-5d2e7f8a9b01"}
    again = _run_file([edited], tmp_path, sandbox, env, ["action", "site_name", "template_id"])
    assert again.returncode == 0, _output(again)
    assert calls_since(before, sandbox) == Counter()
    [record] = report_json(tmp_path / "jobs.db", env)
    assert record["status"] == "succeeded" and record["note"].startswith("done before"), record


def test_validate_with_the_database_refuses_what_run_would_refuse(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    rows = _tagged_rows(8, tag="valdb")
    first = _run_file(rows, tmp_path, sandbox, env)
    assert first.returncode == 0, _output(first)
    changed = [dict(rows[0], site_name=rows[0]["site_name"] + " & Bar"), *rows[1:]]
    job = write_job_csv(tmp_path / "changed.csv", changed)
    db = tmp_path / "jobs.db"
    checked = run_cli(["validate", str(job), "--db", str(db), "--account-id", ACCOUNT_ID,
                       "--base-url", sandbox.base_url + "/"], env, timeout=RUN_TIMEOUT)
    assert checked.returncode == 2, _output(checked)
    assert f"key '{rows[0]['key']}' was done in job" in checked.stderr
    assert "site_name" in checked.stderr and "→" in checked.stderr  # what differs


def test_validate_with_a_database_that_does_not_exist_says_so_and_creates_none(
    env: dict[str, str], tmp_path: Path,
) -> None:
    job = write_job_csv(tmp_path / "job.csv", _tagged_rows(3, tag="nodb"))
    missing = tmp_path / "nowhere.db"
    result = run_cli(["validate", str(job), "--db", str(missing)], env, timeout=RUN_TIMEOUT)
    assert result.returncode == 2, _output(result)
    assert f"no database at {missing}" in result.stderr
    assert not missing.exists()
    # Said before the file is read (it may hold a million rows): even of no file at all.
    unread = run_cli(["validate", str(tmp_path / "absent.csv"), "--db", str(missing)], env,
                     timeout=RUN_TIMEOUT)
    assert unread.returncode == 2, _output(unread)
    [line] = unread.stderr.strip().splitlines()
    assert f"no database at {missing}" in line


def test_report_to_a_path_that_cannot_be_written_is_one_line_exit_2(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    first = _run_file(_tagged_rows(3, tag="badout"), tmp_path, sandbox, env)
    assert first.returncode == 0, _output(first)
    result = run_cli(["report", "--db", str(tmp_path / "jobs.db"), "-o",
                      str(tmp_path / "no" / "dir" / "r.csv")], env, timeout=RUN_TIMEOUT)
    assert result.returncode == 2, _output(result)
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_the_same_person_invited_by_an_earlier_runs_key_and_by_the_site_id_is_refused(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    first = _run_file([{"action": "create_site", "key": "fx-site", "site_name": "FX Site"}],
                      tmp_path, sandbox, env)
    assert first.returncode == 0, _output(first)
    [created] = report_json(tmp_path / "jobs.db", env)
    site_id = created["result"]["site_id"]
    before = mutating_calls(sandbox)
    second = write_job_csv(tmp_path / "invites.csv", [
        {"action": "site_invite", "key": "dd-1", "site": "@fx-site",
         "email": "new.dd@example.com", "role": "Website Manager"},
        {"action": "site_invite", "key": "dd-2", "site": site_id.upper(),
         "email": "NEW.DD@example.com", "role": "Back Office Manager"},
    ])
    result = run_cli(["run", str(second), *fast_run_flags(tmp_path / "jobs.db",
                                                           sandbox.base_url)],
                     env, timeout=RUN_TIMEOUT)
    assert result.returncode == 2, _output(result)
    assert "already invited to this site at line 2" in result.stderr, result.stderr
    assert calls_since(before, sandbox) == Counter()


def test_csv_report_carries_wix_request_id_of_a_failed_call_and_runs_again_as_is(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    from harness import UNKNOWN_ACCOUNT, read_report_csv

    rows = [{"action": "create_site", "key": "rid", "site_name": "Request Id Site"},
            {"action": "transfer_site", "key": "rid-move", "site": "@rid",
             "to_account": UNKNOWN_ACCOUNT}]
    first = _run_file(rows, tmp_path, sandbox, env)
    assert first.returncode == 1, _output(first)
    failed = tmp_path / "failed.csv"
    written = run_cli(["report", "--db", str(tmp_path / "jobs.db"), "--format", "csv",
                       "--only", "failed", "-o", str(failed)], env, timeout=RUN_TIMEOUT)
    assert written.returncode == 0, _output(written)
    [record] = read_report_csv(failed)
    assert record["status"] == "failed" and record["request_id"], record
    # The report is a job file as it is: it validates, with its report columns ignored.
    checked = run_cli(["validate", str(failed), "--db", str(tmp_path / "jobs.db"),
                       "--account-id", ACCOUNT_ID, "--base-url", sandbox.base_url], env,
                      timeout=RUN_TIMEOUT)
    assert checked.returncode == 0, _output(checked)
