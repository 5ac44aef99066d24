"""Unattended nightly runs: a deadline, a Wix outage, the morning-after account.

The CLI runs as a subprocess against `bulkops sandbox` processes over HTTP; the sandbox's own
state is the truth about what was done.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from evidence import assert_exactly_once
from harness import (
    BOUNCE_DOMAIN,
    Json,
    SandboxProcess,
    cli_env,
    fast_run_flags,
    free_port,
    realistic_rows,
    report_json,
    run_cli,
    running_sandbox,
    start_cli,
    start_sandbox,
    status_json,
    wait_until,
    write_job_csv,
)

RUN_TIMEOUT = 60.0


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(XDG_DATA_HOME=str(tmp_path / "data"))


def _requests(sandbox: SandboxProcess) -> int:
    return int(sandbox.state()["requests"]["total"])


def _mutating(state: Json) -> int:
    by_endpoint = state["requests"]["by_endpoint"]
    return sum(int(by_endpoint.get(name, 0)) for name in (
        "create_site", "transfer_site", "account_invite", "site_invite_bulk"))


def _output(result: Any) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def test_finish_by_stops_on_time_and_the_next_run_completes(
    env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    """No operation starts after --finish-by: exit 3 with the reason, the rest stays pending,
    and the next night's run (no deadline) finishes the job with nothing done twice."""
    rows = realistic_rows(40, tag="dl")
    job = write_job_csv(tmp_path / "nightly.csv", rows)
    db = each_db
    with running_sandbox() as sandbox:
        flags = fast_run_flags(db, sandbox.base_url, rate="5/s")
        started = time.monotonic()
        first = run_cli(["run", str(job), *flags, "--finish-by", "3s"], env, timeout=RUN_TIMEOUT)
        took = time.monotonic() - started
        assert first.returncode == 3, _output(first)
        assert "deadline" in first.stderr and "left for the next run" in first.stderr
        # It said at once that 40 rows at 5/s cannot fit in 3 s.
        assert "warning:" in first.stderr, _output(first)
        assert took < 3 + 10, f"the deadline run took {took:.1f}s"
        status = status_json(db, env)
        assert status["counts"]["pending"] > 0 and status["counts"]["failed"] == 0, status
        assert status["counts"]["succeeded"] < len(rows)

        second = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                         timeout=RUN_TIMEOUT)
        assert second.returncode == 0, _output(second)
        assert_exactly_once(rows, report_json(db, env), sandbox.state())


@pytest.fixture
def state_file(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "wix-world.json"


def test_an_outage_pauses_the_run_instead_of_failing_rows(
    env: dict[str, str], tmp_path: Path, each_db: str, state_file: Path
) -> None:
    """Wix unreachable for a few seconds mid-run: the run waits and probes, then finishes with
    every row succeeded once; no row spends its attempts or fails with CONNECTION_ERROR."""
    port = free_port()
    rows = realistic_rows(30, tag="out")
    job = write_job_csv(tmp_path / "nightly.csv", rows)
    db = each_db
    sandbox = start_sandbox(port=port, state_file=state_file)
    flags = fast_run_flags(db, sandbox.base_url, rate="10/s", max_attempts=3)
    cli = start_cli(["run", str(job), *flags, "--progress-interval", "0.5"], env)
    try:
        assert wait_until(lambda: _requests(sandbox) >= 8, timeout=RUN_TIMEOUT)
        sandbox.stop()  # Wix goes away...
        time.sleep(5.0)  # ...for longer than 3 attempts' back-off would take...
        sandbox = start_sandbox(port=port, state_file=state_file)  # ...and comes back
        result = cli.wait(timeout=RUN_TIMEOUT)
        assert result.returncode == 0, _output(result)
        assert "paused: Wix unreachable" in result.stderr, _output(result)
        report = report_json(db, env)
        assert not [r for r in report if r["status"] != "succeeded"], report
        assert_exactly_once(rows, report, sandbox.state())
    finally:
        cli.ensure_stopped()
        sandbox.stop()


def test_an_outage_longer_than_the_limit_stops_the_run_with_rows_pending(
    env: dict[str, str], tmp_path: Path, each_db: str, state_file: Path
) -> None:
    """Wix does not come back: after --outage-limit the run stops (exit 3) with the reason,
    nothing failed, and the untouched rows pending for the next run, which completes."""
    port = free_port()
    rows = realistic_rows(30, tag="long")
    job = write_job_csv(tmp_path / "nightly.csv", rows)
    db = each_db
    sandbox = start_sandbox(port=port, state_file=state_file)
    flags = fast_run_flags(db, sandbox.base_url, rate="10/s", max_attempts=3)
    cli = start_cli(["run", str(job), *flags, "--outage-limit", "3"], env)
    try:
        assert wait_until(lambda: _requests(sandbox) >= 8, timeout=RUN_TIMEOUT)
        sandbox.stop()
        result = cli.wait(timeout=RUN_TIMEOUT)
        assert result.returncode == 3, _output(result)
        assert "Wix unreachable since" in result.stderr, _output(result)
        status = status_json(db, env)
        assert status["counts"]["failed"] == 0 and status["counts"]["pending"] > 0, status

        sandbox = start_sandbox(port=port, state_file=state_file)
        again = run_cli(["run", str(job), *flags], env, timeout=RUN_TIMEOUT)
        assert again.returncode == 0, _output(again)
        assert_exactly_once(rows, report_json(db, env), sandbox.state())
    finally:
        cli.ensure_stopped()
        sandbox.stop()


def test_sigterm_exits_130_and_resume_completes_with_a_summary(
    env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    rows = realistic_rows(30, tag="term")
    job = write_job_csv(tmp_path / "nightly.csv", rows)
    db = each_db
    summary = tmp_path / "summary.json"
    with running_sandbox() as sandbox:
        flags = fast_run_flags(db, sandbox.base_url, rate="5/s")
        cli = start_cli(["run", str(job), *flags], env)
        try:
            assert wait_until(lambda: _requests(sandbox) >= 5, timeout=RUN_TIMEOUT)
            cli.send(signal.SIGTERM)
            stopped = cli.wait(timeout=RUN_TIMEOUT)
        finally:
            cli.ensure_stopped()
        assert stopped.returncode == 130, _output(stopped)
        resumed = run_cli(["resume", *fast_run_flags(db, sandbox.base_url),
                           "--summary-json", str(summary)], env, timeout=RUN_TIMEOUT)
        assert resumed.returncode == 0, _output(resumed)
        assert_exactly_once(rows, report_json(db, env), sandbox.state())
        document = json.loads(summary.read_text(encoding="utf-8"))
        assert document["outcome"] == "finished" and document["exit_code"] == 0
        assert document["run"]["command"] == "resume"
        assert document["done_before"] > 0  # the rows the SIGTERMed run did


SUMMARY_KEYS = {
    "version", "job", "file", "database", "account_id", "outcome", "reason", "exit_code",
    "started_at", "finished_at", "duration_seconds", "total", "counts", "by_action",
    "done_before", "run", "top_errors",
}
RUN_KEYS = {"command", "requests", "throttled", "retries", "reconciled", "succeeded", "failed",
            "budget_per_minute"}


def test_summary_json_and_json_log_lines_carry_the_documented_fields(
    env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    rows = [*realistic_rows(12, tag="sum"),
            {"action": "account_invite", "key": "bounced", "email": f"x@{BOUNCE_DOMAIN}",
             "role": "Website Manager"}]
    job = write_job_csv(tmp_path / "nightly.csv", rows)
    db = each_db
    summary = tmp_path / "summary.json"
    with running_sandbox() as sandbox:
        result = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url),
                          "--summary-json", str(summary), "-v", "--log-format", "json"],
                         env, timeout=RUN_TIMEOUT)
    assert result.returncode == 1, _output(result)
    document = json.loads(summary.read_text(encoding="utf-8"))
    assert set(document) == SUMMARY_KEYS
    assert set(document["run"]) == RUN_KEYS
    assert document["counts"]["succeeded"] == 12 and document["counts"]["failed"] == 1
    assert document["by_action"]["account_invite"]["failed"] == 1
    assert document["run"]["requests"] >= 13
    [error] = document["top_errors"]
    assert error["count"] == 1 and error["first_line"] == 14 and error["code"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", document["finished_at"])
    # The same account, for people, on stdout.
    assert re.search(r"^summary \S+: finished", result.stdout, re.MULTILINE)
    assert "requests:" in result.stdout

    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert events, result.stderr
    names = {event["event"] for event in events}
    assert {"op_sent", "op_succeeded", "op_failed"} <= names, names
    for event in events:
        assert {"ts", "level", "logger", "event"} <= set(event), event
    sent = [e for e in events if e["event"] == "op_sent"]
    assert all("op" in e for e in sent)
    assert "sandbox-key" not in result.stderr and "sandbox-key" not in result.stdout


def _several_jobs(env: dict[str, str], tmp_path: Path, sandbox: SandboxProcess,
                  db: Path) -> tuple[list[dict[str, str]], Path]:
    """Three nights of one growing file, the first two with a row that fails at Wix (an
    invitee Wix refuses)."""
    rows = realistic_rows(30, tag="many")
    bad = {"action": "account_invite", "key": "boss", "email": f"boss@{BOUNCE_DOMAIN}",
           "role": "Website Manager"}
    job = tmp_path / "clients.csv"
    for night in ([*rows[:10], bad], [*rows[:20], bad], rows):
        write_job_csv(job, night)
        run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                timeout=RUN_TIMEOUT)
    return rows, job


def test_jobs_lists_every_job_newest_first(
    env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    db = each_db
    with running_sandbox() as sandbox:
        _several_jobs(env, tmp_path, sandbox, db)
    listed = run_cli(["jobs", "--json", "--db", str(db)], env, timeout=RUN_TIMEOUT)
    assert listed.returncode == 0, _output(listed)
    jobs: list[Json] = json.loads(listed.stdout)
    assert [job["total"] for job in jobs] == [30, 21, 11]  # newest first
    assert [job["state"] for job in jobs] == ["finished"] * 3
    assert jobs[0]["counts"]["succeeded"] == 30 and jobs[1]["counts"]["failed"] == 1
    assert all(job["runs"] == 1 and job["duration_seconds"] is not None for job in jobs)
    text = run_cli(["jobs", "--db", str(db)], env, timeout=RUN_TIMEOUT)
    assert text.returncode == 0 and text.stdout.count("clients.csv") == 3, _output(text)


def test_prune_keeps_done_operations_so_old_rows_are_never_repeated(
    env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    db = each_db
    with running_sandbox() as sandbox:
        rows, job = _several_jobs(env, tmp_path, sandbox, db)
        pruned = run_cli(["prune", "--older-than", "0", "--db", str(db)], env,
                         timeout=RUN_TIMEOUT)
        assert pruned.returncode == 0, _output(pruned)
        assert "pruned 3 job(s)" in pruned.stdout, pruned.stdout
        listed = json.loads(run_cli(["jobs", "--json", "--db", str(db)], env).stdout)
        assert all(entry["pruned_at"] for entry in listed)
        before = _mutating(sandbox.state())
        again = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                        timeout=RUN_TIMEOUT)
        assert again.returncode == 0, _output(again)
        assert "30 done in earlier runs" in again.stdout, again.stdout
        state = sandbox.state()
        assert _mutating(state) == before, "a pruned job's done rows were sent again"
        assert_exactly_once(rows, report_json(db, env), state)


def test_html_report_of_a_job_with_failures_is_one_self_contained_page(
    env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    db = each_db
    with running_sandbox() as sandbox:
        _several_jobs(env, tmp_path, sandbox, db)
    jobs = json.loads(run_cli(["jobs", "--json", "--db", str(db)], env).stdout)
    with_failure = jobs[1]["job"]
    page = tmp_path / "report.html"
    result = run_cli(["report", with_failure, "--format", "html", "-o", str(page),
                      "--db", str(db)], env, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, _output(result)
    html = page.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert with_failure in html and "boss" in html  # the failed row, by its key
    assert "<svg" in html and "budget" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "an external asset"
    assert "<script src" not in html and "<link" not in html


def test_status_of_a_job_whose_process_died_says_interrupted(
    env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    job = write_job_csv(tmp_path / "nightly.csv", realistic_rows(30, tag="dead"))
    db = each_db
    with running_sandbox() as sandbox:
        flags = fast_run_flags(db, sandbox.base_url, rate="5/s", lease_seconds=1.5)
        cli = start_cli(["run", str(job), *flags], env)
        try:
            assert wait_until(lambda: _requests(sandbox) >= 3, timeout=RUN_TIMEOUT)
            assert status_json(db, env)["state"] == "running"
            cli.process.kill()
            cli.wait(timeout=RUN_TIMEOUT)
        finally:
            cli.ensure_stopped()
    time.sleep(2.0)  # the dead holder's lease ends
    status = status_json(db, env)
    assert status["state"] == "interrupted", status
    assert status["detail"].startswith("no process holds it since"), status
    text = run_cli(["status", "--db", str(db)], env, timeout=RUN_TIMEOUT)
    assert ": interrupted — no process holds it since" in text.stdout, text.stdout


def test_wix_down_at_the_start_honours_the_outage_limit_and_sigterm(
    env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    """The first read waits for Wix like any outage: it stops at --outage-limit (exit 3,
    nothing sent or failed), and a SIGTERM meanwhile ends the run at once (exit 130)."""
    port = free_port()  # nothing listens there: Wix is down from the start
    job = write_job_csv(tmp_path / "nightly.csv", realistic_rows(10, tag="down"))
    db = each_db
    flags = fast_run_flags(db, f"http://127.0.0.1:{port}", rate="10/s")
    started = time.monotonic()
    limited = run_cli(["run", str(job), *flags, "--outage-limit", "3"], env,
                      timeout=RUN_TIMEOUT)
    took = time.monotonic() - started
    assert limited.returncode == 3, _output(limited)
    assert "Wix unreachable since" in limited.stderr and "nothing" not in limited.stdout
    assert took < 3 + 8, f"--outage-limit 3 took {took:.1f}s"
    status = status_json(db, env)
    assert status["counts"]["pending"] == 10 and status["counts"]["failed"] == 0, status

    cli = start_cli(["run", str(job), *flags, "--outage-limit", "600"], env)
    try:
        time.sleep(3.0)
        cli.send(signal.SIGTERM)
        stopping = time.monotonic()
        stopped = cli.wait(timeout=RUN_TIMEOUT)
    finally:
        cli.ensure_stopped()
    assert stopped.returncode == 130, _output(stopped)
    assert time.monotonic() - stopping < 5, "SIGTERM while Wix was down was not prompt"


def test_a_refused_run_still_writes_its_summary_and_a_bad_summary_path_is_refused_first(
    env: dict[str, str], tmp_path: Path
) -> None:
    job = tmp_path / "bad.csv"
    job.write_text("action,site_name\ncreate_site,\n", encoding="utf-8")
    summary = tmp_path / "last.json"
    summary.write_text('{"exit_code": 0}', encoding="utf-8")  # yesterday's
    refused = run_cli(["run", str(job), "--db", str(tmp_path / "jobs.db"),
                       "--summary-json", str(summary)], env, timeout=RUN_TIMEOUT)
    assert refused.returncode == 2, _output(refused)
    document = json.loads(summary.read_text(encoding="utf-8"))
    assert (document["outcome"], document["exit_code"]) == ("refused", 2), document
    nowhere = run_cli(["run", str(job), "--summary-json", str(tmp_path / "no" / "x.json")],
                      env, timeout=RUN_TIMEOUT)
    assert nowhere.returncode == 2 and "--summary-json" in nowhere.stderr, _output(nowhere)


def test_listing_into_a_closed_pipe_is_not_an_error(
    env: dict[str, str], tmp_path: Path, each_db: str,
) -> None:
    db = each_db
    with running_sandbox() as sandbox:
        for n in range(3):
            job = write_job_csv(tmp_path / f"f{n}.csv", realistic_rows(3, tag=f"pipe{n}"))
            run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                    timeout=RUN_TIMEOUT)
    import subprocess

    from harness import bulkops_command
    jobs = subprocess.Popen([*bulkops_command(), "jobs", "--db", str(db)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert jobs.stdout is not None and jobs.stderr is not None
    jobs.stdout.readline()
    jobs.stdout.close()  # like `| head -1`
    code = jobs.wait(timeout=RUN_TIMEOUT)
    error = jobs.stderr.read().decode()
    assert "unexpected failure" not in error and "Traceback" not in error, error
    assert code in (0, -13), code  # done, or SIGPIPE: never "failed"


def test_a_data_directory_that_cannot_be_made_is_one_clear_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("", encoding="utf-8")
    job = write_job_csv(tmp_path / "job.csv", realistic_rows(2, tag="xdg"))
    result = run_cli(["run", str(job), "--sandbox"], dict(env, XDG_DATA_HOME=str(not_a_folder)),
                     timeout=RUN_TIMEOUT)
    assert result.returncode == 2, _output(result)
    assert "cannot create the data directory" in result.stderr
    assert "Traceback" not in result.stderr
