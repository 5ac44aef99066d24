"""Nothing that will fail is sent: before its first write, `run` checks the rows still to do
against what Wix already says (roles, sites named by id, names of new sites) and refuses the
file with every problem at once (exit 2), having sent nothing but reads.

Each test drives the `bulkops` command as a subprocess against a `bulkops sandbox` process; the
sandbox's own state and request counters are the evidence of what was (not) done.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from harness import (
    ACCOUNT_ID,
    MUTATING,
    SUB_ACCOUNTS,
    SandboxProcess,
    cli_env,
    fast_run_flags,
    free_port,
    report_json,
    requests_by_endpoint,
    run_cli,
    seed_sites,
    start_cli,
    start_sandbox,
    status_json,
    write_job_csv,
)

RUN_TIMEOUT = 30.0
READS = ("query_sites", "roles")
MANAGER_ID = "7084512206941830272"  # the sandbox's "Website Manager"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(XDG_DATA_HOME=str(tmp_path / "xdg-data"))




def _writes(counts: Counter[str]) -> int:
    return sum(counts[name] for name in MUTATING)


def _output(result: Any) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def _run(job: Path, db: Path, sandbox: SandboxProcess, env: dict[str, str],
         *extra: str) -> Any:
    return run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url), *extra], env,
                   timeout=RUN_TIMEOUT)


def _problems(stderr: str, path: Path) -> dict[int, str]:
    """line -> the problem lines printed for it (`path: line N, column C: reason`)."""
    found: dict[int, str] = {}
    for line in stderr.splitlines():
        match = re.match(rf"^{re.escape(str(path))}: line (\d+), (.*)$", line)
        if match:
            found[int(match[1])] = found.get(int(match[1]), "") + match[2]
    return found


# -- roles -------------------------------------------------------------------------------------

# Each role a new user wrote, as the issue lists them, with the hint that names its cause.
ROLE_CASES = [
    ("site_invite", "Admin", "", "did you mean 'Admin (Co-owner)'?"),
    ("site_invite", "Website Manager, Blog Writer", "", "separated by ';', not ','"),
    ("site_invite", "7084512206941830000", "", "a spreadsheet may have rounded it"),
    ("site_invite", "Website Boss", "", "unknown role 'Website Boss'; known: Admin (Co-owner)"),
    ("site_invite", "Billing Manager", "", "cannot be given on a site: give it account-wide"),
    ("account_invite", "Blog Writer", "", "cannot be given account-wide: give it on sites"),
    ("account_invite", "Billing Manager", "@shop", "cannot be given on a site"),
]


def test_every_role_that_cannot_be_given_is_refused_at_once_with_its_hint_and_nothing_sent(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    rows: list[dict[str, str]] = [
        {"action": "create_site", "key": "shop", "site_name": "Role Check Shop"},
        {"action": "site_invite", "key": "fine", "site": "@shop", "email": "ok@example.com",
         "role": "website manager"},
    ]
    for number, (action, role, sites, _) in enumerate(ROLE_CASES):
        row = {"action": action, "key": f"bad-{number}", "email": f"p{number}@example.com",
               "role": role}
        row.update({"site": "@shop"} if action == "site_invite" else {"sites": sites})
        rows.append(row)
    job = write_job_csv(tmp_path / "roles.csv", rows)
    db = each_db

    result = _run(job, db, sandbox, env)

    assert result.returncode == 2, _output(result)
    assert "Traceback" not in result.stderr
    problems = _problems(result.stderr, job)
    assert sorted(problems) == list(range(4, 4 + len(ROLE_CASES))), _output(result)
    for number, (_, _, _, hint) in enumerate(ROLE_CASES):
        assert "column role" in problems[4 + number], problems[4 + number]
        assert hint in problems[4 + number], problems[4 + number]
    assert f"{len(ROLE_CASES)} problem(s)" in result.stderr
    assert "nothing was sent" in result.stderr
    counts = requests_by_endpoint(sandbox)
    assert _writes(counts) == 0, counts
    assert counts["roles"] == 1, counts  # one roles call served every row
    assert sandbox.state()["sites"] == []
    # The job is stored, untouched: every row pending, none attempted.
    report = report_json(db, env)
    assert {(r["status"], r["attempts"]) for r in report} == {("pending", 0)}, report
    assert status_json(db, env)["state"] == "pending"


def test_a_role_id_in_scientific_notation_is_refused_by_validation_with_its_cause(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    job = write_job_csv(tmp_path / "sci.csv", [
        {"action": "create_site", "key": "shop", "site_name": "Sci Shop"},
        {"action": "site_invite", "site": "@shop", "email": "a@example.com",
         "role": "7.08451E+18"},
    ])
    result = _run(job, tmp_path / "jobs.db", sandbox, env)
    assert result.returncode == 2, _output(result)
    assert "scientific notation" in _problems(result.stderr, job)[3]
    assert sum(requests_by_endpoint(sandbox).values()) == 0  # refused before even reading


def test_a_keep_as_text_wrapper_is_read_in_csv_and_named_in_json(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    """A CSV cell `="708…"` is unwrapped as a spreadsheet meant it; the same text in a JSON
    file is not a spreadsheet's, so it is refused with the wrapper named and the role inside."""
    wrapped = f'="{MANAGER_ID}"'
    as_json = tmp_path / "wrapped.json"
    as_json.write_text(json.dumps([
        {"action": "create_site", "key": "shop", "site_name": "Wrapped Shop"},
        {"action": "site_invite", "site": "@shop", "email": "a@example.com", "role": wrapped},
    ]), encoding="utf-8")
    refused = _run(as_json, tmp_path / "json.db", sandbox, env)
    assert refused.returncode == 2, _output(refused)
    problem = _problems(refused.stderr, as_json)[2]
    assert "keep-as-text wrapper" in problem and f"write '{MANAGER_ID}' alone" in problem
    assert "'Website Manager'" in problem
    assert _writes(requests_by_endpoint(sandbox)) == 0

    as_csv = write_job_csv(tmp_path / "wrapped.csv", [
        {"action": "create_site", "key": "shop", "site_name": "Wrapped Shop"},
        {"action": "site_invite", "site": "@shop", "email": "a@example.com", "role": wrapped},
    ])
    done = _run(as_csv, tmp_path / "csv.db", sandbox, env)
    assert done.returncode == 0, _output(done)
    [invite] = sandbox.state()["invites"]
    assert invite["policyIds"] == [MANAGER_ID]


# -- sites named by id -------------------------------------------------------------------------


def test_sites_named_by_id_must_be_where_the_row_needs_them(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    """A site invite's site and an account invite's sites in the account, a transfer's site in
    its from_account (default: the account); every row that names one elsewhere is refused."""
    ours, theirs = seed_sites(sandbox.base_url, [
        {"displayName": "Seeded Ours"},
        {"displayName": "Seeded In Sub", "ownerAccountId": SUB_ACCOUNTS[0]},
    ])
    nowhere = "99999999-9999-4999-8999-999999999999"
    good = [
        {"action": "site_invite", "key": "ok-invite", "site": ours["id"],
         "email": "a@example.com", "role": "Website Manager"},
        {"action": "transfer_site", "key": "ok-move", "site": theirs["id"],
         "from_account": SUB_ACCOUNTS[0], "to_account": SUB_ACCOUNTS[1]},
    ]
    bad = [
        {"action": "site_invite", "key": "no-site", "site": nowhere, "email": "b@example.com",
         "role": "Website Manager"},
        {"action": "account_invite", "key": "sub-site", "sites": f"{ours['id']};{theirs['id']}",
         "email": "c@example.com", "role": "Website Manager"},
        {"action": "transfer_site", "key": "wrong-from", "site": ours["id"],
         "from_account": SUB_ACCOUNTS[0], "to_account": SUB_ACCOUNTS[1]},
        {"action": "transfer_site", "key": "not-ours", "site": theirs["id"],
         "to_account": SUB_ACCOUNTS[2]},
    ]
    job = write_job_csv(tmp_path / "sites.csv", [*good, *bad])
    db = each_db

    refused = _run(job, db, sandbox, env)

    assert refused.returncode == 2, _output(refused)
    problems = _problems(refused.stderr, job)
    assert sorted(problems) == [4, 5, 6, 7], _output(refused)
    assert f"column site: site '{nowhere}' is not in your account {ACCOUNT_ID}" in problems[4]
    assert f"column sites: site '{theirs['id']}' is not in your account" in problems[5]
    assert f"is not in from_account {SUB_ACCOUNTS[0]}" in problems[6]
    assert f"is not in your account {ACCOUNT_ID} (from_account is empty)" in problems[7]
    assert _writes(requests_by_endpoint(sandbox)) == 0

    write_job_csv(job, good)
    fixed = _run(job, db, sandbox, env)
    assert fixed.returncode == 0, _output(fixed)
    assert _writes(requests_by_endpoint(sandbox)) == 2


def test_a_site_moved_by_an_earlier_row_of_the_file_or_by_an_earlier_run_is_fine(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    """A transfer from the account a transfer row of the file moves the site to first; and a
    site an earlier run created and moved away, named by id in a later file."""
    [seeded] = seed_sites(sandbox.base_url, [{"displayName": "Seeded Chain"}])
    db = each_db
    chain = write_job_csv(tmp_path / "chain.csv", [
        {"action": "transfer_site", "key": "hop-1", "site": seeded["id"],
         "to_account": SUB_ACCOUNTS[0]},
        {"action": "transfer_site", "key": "hop-2", "site": seeded["id"],
         "from_account": SUB_ACCOUNTS[0], "to_account": SUB_ACCOUNTS[1],
         "depends_on": "@hop-1"},
        {"action": "create_site", "key": "made", "site_name": "Made Then Moved"},
        {"action": "transfer_site", "key": "made-move", "site": "@made",
         "to_account": SUB_ACCOUNTS[2]},
    ])
    first = _run(chain, db, sandbox, env)
    assert first.returncode == 0, _output(first)
    made = next(r for r in report_json(db, env) if r["key"] == "made")["result"]["site_id"]

    later = write_job_csv(tmp_path / "later.csv", [
        {"action": "site_invite", "key": "invite-moved", "site": made,
         "email": "owner@example.com", "role": "Website Manager"},
    ])
    second = _run(later, db, sandbox, env)
    assert second.returncode == 0, _output(second)
    invites = sandbox.state()["invites"]
    assert [(i["siteId"], i["email"]) for i in invites] == [(made, "owner@example.com")]


def test_an_account_invite_to_a_site_the_file_moves_away_first_is_refused(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    """An account invite can only name sites of the account: limited to a site a transfer row
    moves to a sub-account without waiting for it, it would fail at Wix, so it is refused
    before anything is sent; with the transfer waiting for the invite, the file runs."""
    rows = [
        {"action": "create_site", "key": "shop", "site_name": "Moved Shop"},
        {"action": "transfer_site", "key": "shop-move", "site": "@shop",
         "to_account": SUB_ACCOUNTS[0]},
        {"action": "account_invite", "key": "staff", "sites": "@shop",
         "email": "staff@example.com", "role": "Website Manager"},
    ]
    db = each_db
    refused = _run(write_job_csv(tmp_path / "moved.csv", rows), db, sandbox, env)
    assert refused.returncode == 2, _output(refused)
    [line] = [text for text in refused.stderr.splitlines() if "line 4" in text]
    assert "column sites" in line and "moved to account" in line and "by line 3" in line, line
    assert sandbox.state()["sites"] == []

    rows[1]["depends_on"] = "@staff"
    ordered = _run(write_job_csv(tmp_path / "ordered.csv", rows), db, sandbox, env)
    assert ordered.returncode == 0, _output(ordered)


# -- names of new sites ------------------------------------------------------------------------


def test_a_create_whose_name_exists_fails_by_default_and_adopt_takes_that_site(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    [existing] = seed_sites(sandbox.base_url, [
        {"displayName": "Existing Bakery", "createdDate": "2024-05-01T09:30:00Z"}])
    rows = [
        # Names compare as Wix shows them to people: case and spacing do not make another site.
        {"action": "create_site", "key": "bakery", "site_name": "existing  BAKERY"},
        {"action": "site_invite", "key": "bakery-owner", "site": "@bakery",
         "email": "owner@bakery.example.com", "role": "Website Manager"},
        {"action": "create_site", "key": "florist", "site_name": "New Florist"},
    ]
    job = write_job_csv(tmp_path / "names.csv", rows)
    db = each_db

    refused = _run(job, db, sandbox, env)

    assert refused.returncode == 2, _output(refused)
    problem = _problems(refused.stderr, job)
    assert sorted(problem) == [2], _output(refused)
    assert "column site_name: a site named 'Existing Bakery' already exists" in problem[2]
    assert existing["id"] in problem[2] and "--if-exists adopt" in problem[2]
    assert _writes(requests_by_endpoint(sandbox)) == 0

    adopted = _run(job, db, sandbox, env, "--if-exists", "adopt")

    assert adopted.returncode == 0, _output(adopted)
    assert "done in earlier runs" not in adopted.stdout  # adopted in this run, not before
    report = report_json(db, env)
    assert report[0]["result"] == {"site_id": existing["id"]}
    assert report[0]["attempts"] == 0  # nothing was sent for it
    assert report[0]["note"].startswith("adopted: a site named 'Existing Bakery' already "
                                        "existed in the account (created 2024-05-01")
    assert [r["status"] for r in report] == ["succeeded"] * 3
    state = sandbox.state()
    assert sorted(site["displayName"] for site in state["sites"]) == [
        "Existing Bakery", "New Florist"]
    assert requests_by_endpoint(sandbox)["create_site"] == 1  # the florist only
    [invite] = state["invites"]
    assert invite["siteId"] == existing["id"]
    csv_report = run_cli(["report", "--format", "csv", "--db", str(db)], env, timeout=30)
    assert "adopted: a site named" in csv_report.stdout


def test_running_a_finished_file_again_is_not_refused_for_the_sites_it_made(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    """Its sites exist because the first run made them: done rows are not checked, and a
    second run reads nothing and sends nothing."""
    rows = [
        {"action": "create_site", "key": "again", "site_name": "Again Bakery"},
        {"action": "create_site", "site_name": "Again Florist"},  # a key derived from content
        {"action": "site_invite", "key": "again-owner", "site": "@again",
         "email": "owner@again.example.com", "role": "Website Manager"},
    ]
    job = write_job_csv(tmp_path / "again.csv", rows)
    db = each_db
    first = _run(job, db, sandbox, env)
    assert first.returncode == 0, _output(first)
    before = requests_by_endpoint(sandbox)

    second = _run(job, db, sandbox, env)

    assert second.returncode == 0, _output(second)
    after = requests_by_endpoint(sandbox)
    after.subtract(before)
    assert +after == Counter(), after
    # Another file naming the same sites anew (other keys) is the same work: not refused.
    renamed = write_job_csv(tmp_path / "renamed.csv", [
        {"action": "create_site", "key": "again-renamed", "site_name": "AGAIN BAKERY"}])
    third = _run(renamed, db, sandbox, env)
    assert third.returncode == 0, _output(third)
    assert _writes(requests_by_endpoint(sandbox)) == _writes(before)


def test_a_refused_key_is_one_line_and_exit_2(
    sandbox: SandboxProcess, tmp_path: Path,
) -> None:
    job = write_job_csv(tmp_path / "key.csv", [
        {"action": "create_site", "key": "k", "site_name": "Key Check"}])
    env = cli_env(api_key="not-the-key", XDG_DATA_HOME=str(tmp_path / "xdg-data"))
    result = _run(job, tmp_path / "jobs.db", sandbox, env)
    assert result.returncode == 2, _output(result)
    assert result.stderr.strip().splitlines() == [
        "error: Wix refused the credentials (HTTP 401 UNAUTHENTICATED): check WIX_API_KEY "
        "and WIX_ACCOUNT_ID"], result.stderr
    assert "not-the-key" not in result.stderr + result.stdout
    assert _writes(requests_by_endpoint(sandbox)) == 0


def test_the_checks_wait_for_wix_to_answer_when_it_is_down_at_the_start(
    env: dict[str, str], tmp_path: Path,
) -> None:
    """Wix unreachable when the run starts: the run waits for its first answer as for any
    outage, then checks the rows, and still refuses a bad one with nothing sent."""
    port = free_port()  # nothing listens there yet
    job = write_job_csv(tmp_path / "down.csv", [
        {"action": "create_site", "key": "shop", "site_name": "Down Shop"},
        {"action": "site_invite", "site": "@shop", "email": "a@example.com",
         "role": "Website Boss"},
    ])
    flags = fast_run_flags(tmp_path / "jobs.db", f"http://127.0.0.1:{port}")
    cli = start_cli(["run", str(job), *flags, "--outage-limit", "60"], env)
    sandbox = None
    try:
        time.sleep(2.0)
        assert cli.running(), "the run did not wait for Wix"
        sandbox = start_sandbox(port=port)
        result = cli.wait(timeout=RUN_TIMEOUT)
        assert result.returncode == 2, _output(result)
        assert "unknown role 'Website Boss'" in _problems(result.stderr, job)[3]
        assert "Traceback" not in result.stderr
        assert _writes(requests_by_endpoint(sandbox)) == 0
        assert sandbox.state()["sites"] == []
    finally:
        cli.ensure_stopped()
        if sandbox is not None:
            sandbox.stop()
