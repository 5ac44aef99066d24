"""A run killed (SIGKILL) while batched invite calls are in flight, then resumed, loses no
invite: each row ends succeeded, and every duplicate email the sandbox counts is admitted in
that row's note ("sent again"), never a silent resend of a whole batch."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from harness import (
    SandboxFactory,
    fast_run_flags,
    kill_after_requests,
    report_json,
    run_cli,
    start_cli,
    write_job_csv,
)

TEAM = 120  # account invites: three calls of up to 50
SITES = 4  # each with three collaborators on the same roles: one call per site
RUN_TIMEOUT = 60.0


def _rows() -> list[dict[str, str]]:
    rows = [{"action": "account_invite", "key": f"team{i}", "email": f"member{i}@agency.example",
             "role": "Website Manager"} for i in range(TEAM)]
    for s in range(SITES):
        rows.append({"action": "create_site", "key": f"shop{s}", "site_name": f"Batch Shop {s}"})
        rows += [{"action": "site_invite", "key": f"shop{s}-c{c}", "site": f"@shop{s}",
                  "email": f"c{c}@shop{s}.example", "role": "Website Manager"} for c in range(3)]
    return rows


def test_sigkill_during_batched_invite_calls_then_resume_loses_no_invite(
    sandbox_factory: SandboxFactory, env: dict[str, str], each_db: str, tmp_path: Path,
) -> None:
    # Every answer comes 0.8 s after its effect (slow), so a kill lands while calls that Wix
    # already carried out are waiting for their answers: the hardest unknown outcome.
    sandbox = sandbox_factory(slow_rate=1.0, slow_delay=0.8, seed=5)
    rows = _rows()
    job = str(write_job_csv(tmp_path / "onboarding.csv", rows))
    flags = fast_run_flags(each_db, sandbox.base_url, timeout=3.0, concurrency=4)
    for kill_after in (3, 6):
        cli = start_cli(["run", job, *flags], env)
        try:
            kill_after_requests(cli, sandbox, kill_after, timeout=RUN_TIMEOUT)
        finally:
            cli.ensure_stopped()

    final = run_cli(["resume", *flags], env, timeout=RUN_TIMEOUT)
    assert final.returncode == 0, final.stdout + final.stderr

    report = {record["key"]: record for record in report_json(each_db, env)}
    assert {key: r["status"] for key, r in report.items() if r["status"] != "succeeded"} == {}
    state = sandbox.state()
    emails = Counter(invite["email"] for invite in state["invites"])
    wanted = {row["email"] for row in rows if row.get("email")}
    assert set(emails) == wanted  # no invite lost, none sent that no row asked for
    admitted = {row["email"] for row in rows
                if row.get("email") and "sent again" in (report[row["key"]].get("note") or "")}
    duplicated = {email for email, count in emails.items() if count > 1}
    assert duplicated <= admitted, duplicated - admitted
    assert state["duplicate_sites"] == 0
    # Each row's invite id is one the sandbox holds for that email.
    ids = {invite["id"]: invite["email"] for invite in state["invites"]}
    for row in rows:
        if row.get("email"):
            assert ids[report[row["key"]]["result"]["invite_id"]] == row["email"]
    # Still batched: far fewer invite calls than invite rows, kills and re-sends included.
    by_endpoint = state["requests"]["by_endpoint"]
    assert by_endpoint.get("account_invite", 0) < TEAM // 4
    print(f"duplicate invite emails after two kills: {sum(emails.values()) - len(emails)}")
