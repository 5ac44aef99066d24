"""The re-drive round trip, as a user does it: run a file, some rows fail at Wix and the rows
waiting for them are blocked; `bulkops report --format csv --only failed,blocked -o fixed.csv`;
fix the failing cells of that CSV in place; `bulkops run fixed.csv` succeeds; nothing was done
twice; the original file, fixed the same way, runs again with nothing sent.

Every command is the `bulkops` CLI as a subprocess against a `bulkops sandbox` process over
HTTP; what was done is read from the sandbox's own state, not from the tool's word.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from harness import (
    BOUNCE_DOMAIN,
    JOB_COLUMNS,
    SUB_ACCOUNTS,
    UNKNOWN_ACCOUNT,
    Json,
    SandboxProcess,
    calls_since,
    cli_env,
    fast_run_flags,
    mutating_calls,
    report_json,
    run_cli,
    write_job_csv,
)

RUN_TIMEOUT = 60.0
# The contract's report columns, in its order; they follow the input columns as submitted.
DOCUMENTED = ("status", "attempts", "site_id", "invite_id", "error_code", "error_message",
              "hint", "request_id", "note")

# Two client sites and the agency's own. Each client site gets its people (one call per site
# and role set), then moves to a sub-account once its invites are out; a team member is limited
# to the agency's site, and an ops member is invited once the team member is.
ROWS = [
    {"action": "create_site", "key": "rd-alpha", "site_name": "Redrive Alpha"},
    {"action": "create_site", "key": "rd-beta", "site_name": "Redrive Beta"},
    {"action": "create_site", "key": "rd-hq", "site_name": "Redrive HQ"},
    {"action": "site_invite", "key": "rd-alpha-owner", "site": "@rd-alpha",
     "email": "owner@alpha.example.com", "role": "Website Manager"},
    # Fails inside Wix's 200 answer (INVITE_FAILED), next to a sibling that succeeds.
    {"action": "site_invite", "key": "rd-alpha-editor", "site": "@rd-alpha",
     "email": f"editor@{BOUNCE_DOMAIN}", "role": "Website Manager"},
    # Blocked: waits for the failing invite.
    {"action": "transfer_site", "key": "rd-alpha-move", "site": "@rd-alpha",
     "to_account": SUB_ACCOUNTS[0], "depends_on": "@rd-alpha-owner;@rd-alpha-editor"},
    {"action": "site_invite", "key": "rd-beta-owner", "site": "@rd-beta",
     "email": "owner@beta.example.com", "role": "Website Manager"},
    # Fails with a 428 (TARGET_ACCOUNT_ID_NOT_FOUND).
    {"action": "transfer_site", "key": "rd-beta-move", "site": "@rd-beta",
     "to_account": UNKNOWN_ACCOUNT, "depends_on": "@rd-beta-owner"},
    # Fails inside a 200 (the account-invite flavour), limited by reference to a site that
    # stays in the account (a site that moved away could not be named by an account invite).
    {"action": "account_invite", "key": "rd-team", "email": f"team@{BOUNCE_DOMAIN}",
     "role": "Website Manager", "sites": "@rd-hq"},
    # Blocked: waits for the failing team invite.
    {"action": "account_invite", "key": "rd-ops", "email": "ops@agency.example.com",
     "role": "Back Office Manager", "depends_on": "@rd-team"},
]
FIRST_STATUSES = {
    "rd-alpha": "succeeded", "rd-beta": "succeeded", "rd-hq": "succeeded",
    "rd-alpha-owner": "succeeded",
    "rd-alpha-editor": "failed", "rd-alpha-move": "blocked", "rd-beta-owner": "succeeded",
    "rd-beta-move": "failed", "rd-team": "failed", "rd-ops": "blocked",
}
REDRIVEN = [key for key, status in FIRST_STATUSES.items() if status in ("failed", "blocked")]
FIXES: dict[str, Callable[[dict[str, str]], None]] = {
    # What the user changes in each failed row; blocked rows need nothing.
    "rd-alpha-editor": lambda row: row.update(email="editor@alpha.example.com"),
    "rd-beta-move": lambda row: row.update(to_account=SUB_ACCOUNTS[1]),
    "rd-team": lambda row: row.update(email="team@agency.example.com"),
}
INVITED = {"owner@alpha.example.com", "editor@alpha.example.com", "owner@beta.example.com",
           "team@agency.example.com", "ops@agency.example.com"}


def _output(result: object) -> str:
    return (f"exit {getattr(result, 'returncode', '?')}\nstdout:\n"
            f"{getattr(result, 'stdout', '')}\nstderr:\n{getattr(result, 'stderr', '')}")






def _site_ids(state: Json) -> dict[str, str]:
    """Display name -> site id, asserting each of this test's sites exists exactly once."""
    names = Counter(site["displayName"] for site in state["sites"])
    assert names == Counter({"Redrive Alpha": 1, "Redrive Beta": 1, "Redrive HQ": 1}), names
    return {site["displayName"]: site["id"] for site in state["sites"]}


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as source:
        reader = csv.DictReader(source)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _fixed(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """`rows` with the user's fixes applied (copies; other rows as they were)."""
    fixed = []
    for row in rows:
        row = dict(row)
        if row["key"] in FIXES:
            FIXES[row["key"]](row)
        fixed.append(row)
    return fixed


def test_failed_and_blocked_rows_fixed_in_their_report_run_again_and_nothing_is_done_twice(
    sandbox: SandboxProcess, tmp_path: Path, each_db: str,
) -> None:
    env = cli_env(XDG_DATA_HOME=str(tmp_path / "xdg-data"))
    db = each_db
    flags = fast_run_flags(db, sandbox.base_url)
    original = write_job_csv(tmp_path / "onboarding.csv", ROWS)

    # 1. The first run: some rows fail at Wix, the rows waiting for them are blocked.
    first = run_cli(["run", str(original), *flags], env, timeout=RUN_TIMEOUT)

    assert first.returncode == 1, _output(first)
    assert {r["key"]: r["status"] for r in report_json(db, env)} == FIRST_STATUSES
    sites = _site_ids(sandbox.state())

    # 2. The report of what needs attention, as a file to fix.
    fixed_csv = tmp_path / "fixed.csv"
    written = run_cli(["report", "--db", str(db), "--format", "csv", "--only",
                       "failed,blocked", "-o", str(fixed_csv)], env, timeout=RUN_TIMEOUT)

    assert written.returncode == 0, _output(written)
    header, report = _read_csv(fixed_csv)
    assert header[:len(JOB_COLUMNS)] == list(JOB_COLUMNS)  # the input columns as submitted
    extra = header[len(JOB_COLUMNS):]
    assert [c for c in extra if c in DOCUMENTED] == list(DOCUMENTED), header
    by_key = {row["key"]: row for row in report}
    assert list(by_key) == REDRIVEN  # every failed and blocked row once, in input order
    assert {k: row["status"] for k, row in by_key.items()} == {
        k: FIRST_STATUSES[k] for k in REDRIVEN}
    for key in ("rd-alpha-editor", "rd-team"):
        assert by_key[key]["error_code"] == "INVITE_FAILED", by_key[key]
    assert by_key["rd-beta-move"]["error_code"] == "TARGET_ACCOUNT_ID_NOT_FOUND"
    assert by_key["rd-beta-move"]["request_id"], by_key["rd-beta-move"]
    for key in FIXES:  # every failure says what to do about it
        row = by_key[key]
        assert (row["attempts"], bool(row["error_message"]), bool(row["hint"])) == (
            "1", True, True), row
    for key in ("rd-alpha-move", "rd-ops"):  # never sent
        assert by_key[key]["attempts"] == "0", by_key[key]
    # References to rows that succeeded are replaced by what they produced, so the file
    # stands alone; references to rows of the file itself stay.
    assert by_key["rd-alpha-move"]["site"] == sites["Redrive Alpha"]
    assert by_key["rd-team"]["sites"] == sites["Redrive HQ"]
    assert by_key["rd-ops"]["depends_on"].lstrip("'") == "@rd-team"

    # 3. The user fixes the failing cells and runs that file.
    _write_csv(fixed_csv, header, _fixed(report))
    before = mutating_calls(sandbox)

    second = run_cli(["run", str(fixed_csv), *flags], env, timeout=RUN_TIMEOUT)

    assert second.returncode == 0, _output(second)
    redriven = report_json(db, env)
    assert [(r["key"], r["status"]) for r in redriven] == [(k, "succeeded") for k in REDRIVEN]
    sent = calls_since(before, sandbox)
    assert sent["create_site"] == 0 and sent["transfer_site"] == 2, sent

    # 4. Nothing was done twice: each site created once and moved once, where it was asked to
    # go; each person invited once, to the right place.
    state = sandbox.state()
    assert _site_ids(state) == sites
    moves = sorted((t["siteId"], t["to"]) for t in state["transfers"])
    assert moves == sorted([(sites["Redrive Alpha"], SUB_ACCOUNTS[0]),
                            (sites["Redrive Beta"], SUB_ACCOUNTS[1])])
    assert state["duplicate_invite_emails"] == 0, state["emails_sent"]
    emails = Counter(entry["email"] for entry in state["emails_sent"])
    assert emails == Counter(dict.fromkeys(INVITED, 1)), emails
    invites = {invite["email"]: invite for invite in state["invites"]}
    assert invites["editor@alpha.example.com"]["siteId"] == sites["Redrive Alpha"]
    assert invites["team@agency.example.com"]["siteIds"] == [sites["Redrive HQ"]]

    # 5. The original file, fixed the same way, runs again: all succeeded, nothing sent.
    write_job_csv(original, _fixed(ROWS))
    before = mutating_calls(sandbox)

    again = run_cli(["run", str(original), *flags], env, timeout=RUN_TIMEOUT)

    assert again.returncode == 0, _output(again)
    assert calls_since(before, sandbox) == Counter()
    final = report_json(db, env)
    assert [(r["key"], r["status"]) for r in final] == [(k, "succeeded") for k in
                                                        FIRST_STATUSES]
    for record in final:
        if record["key"] in REDRIVEN:  # done by the fixed file's job
            assert record["note"] and record["note"].startswith("done before"), record
    assert sandbox.state()["emails_sent"] == state["emails_sent"]


def test_the_original_file_unfixed_is_refused_after_the_redrive_and_nothing_is_sent(
    sandbox: SandboxProcess, tmp_path: Path, each_db: str,
) -> None:
    """Running the old file by mistake, after its failed rows were fixed and done under the
    same keys, names work done with other content: refused (exit 2), never sent again."""
    env = cli_env(XDG_DATA_HOME=str(tmp_path / "xdg-data"))
    db = each_db
    flags = fast_run_flags(db, sandbox.base_url)
    original = write_job_csv(tmp_path / "onboarding.csv", ROWS)
    assert run_cli(["run", str(original), *flags], env, timeout=RUN_TIMEOUT).returncode == 1
    fixed_csv = tmp_path / "fixed.csv"
    assert run_cli(["report", "--db", str(db), "--format", "csv", "--only", "failed,blocked",
                    "-o", str(fixed_csv)], env, timeout=RUN_TIMEOUT).returncode == 0
    header, report = _read_csv(fixed_csv)
    _write_csv(fixed_csv, header, _fixed(report))
    assert run_cli(["run", str(fixed_csv), *flags], env, timeout=RUN_TIMEOUT).returncode == 0
    before = mutating_calls(sandbox)

    stale = run_cli(["run", str(original), *flags], env, timeout=RUN_TIMEOUT)

    assert stale.returncode == 2, _output(stale)
    assert calls_since(before, sandbox) == Counter()
    for key in FIXES:
        assert key in stale.stderr, stale.stderr
