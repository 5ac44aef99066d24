"""`bulkops submit` and `bulkops worker`: jobs stored for workers, run by several of them,
taken over from a worker that died, and run with each account's own key.

Every proof of what was done comes from the sandboxes' own state (`evidence.assert_exactly_once`)
and from `bulkops status` / `report` as a user would read them.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path
from subprocess import CompletedProcess

from evidence import assert_exactly_once
from harness import (
    ACCOUNT_ID,
    SandboxFactory,
    SandboxProcess,
    cli_env,
    kill_after_requests,
    realistic_rows,
    report_json,
    request_count,
    run_cli,
    start_cli,
    status_json,
    wait_until,
    write_job_csv,
)
from windows import busiest_second

TIMEOUT = 90.0
# Flags of a worker that make a test take seconds (as `harness.fast_run_flags` for `run`).
FAST = ["--rate", "50/s", "--concurrency", "4", "--timeout", "1", "--settle", "0.3",
        "--backoff-base", "0.05", "--max-attempts", "20", "--poll", "0.2"]
OTHER_ACCOUNT = "44444444-4444-4444-8444-444444444444"
OTHER_KEY = "other-sandbox-key"


def key_variable(account_id: str) -> str:
    return "WIX_API_KEY_" + account_id.upper().replace("-", "_")


def side_by_side(commands: list[list[str]], env: dict[str, str]) -> list[CompletedProcess[str]]:
    """Start every command at once and wait for each to end (all stopped, however it ends)."""
    started = [start_cli(command, env) for command in commands]
    try:
        return [process.wait(TIMEOUT) for process in started]
    finally:
        for process in started:
            process.ensure_stopped()


def submit(db: str | Path, job: Path, sandbox: SandboxProcess, env: dict[str, str]) -> str:
    result = run_cli(["submit", str(job), "--db", str(db), "--base-url", sandbox.base_url],
                     env, timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    job_id = result.stdout.strip()
    assert len(job_id) == 16 and job_id in result.stderr, result.stdout + result.stderr
    return job_id


def test_submit_stores_the_job_sends_nothing_and_prints_only_its_id(
    sandbox: SandboxProcess, env: dict[str, str], each_db: str, tmp_path: Path,
) -> None:
    """submit: the id alone on stdout, the job pending with every row, not one request at
    Wix; the same file again is the same job."""
    rows = realistic_rows(12, tag="sub")
    job = write_job_csv(tmp_path / "clients.csv", rows)

    job_id = submit(each_db, job, sandbox, env)

    status = status_json(each_db, env, job_id)
    assert (status["state"], status["counts"].get("pending")) == ("pending", 12)
    assert request_count(sandbox.base_url) == 0
    assert submit(each_db, job, sandbox, env) == job_id
    assert request_count(sandbox.base_url) == 0


def test_submit_refuses_a_bad_file_and_a_missing_account_before_storing_anything(
    sandbox: SandboxProcess, db_path: Path, tmp_path: Path,
) -> None:
    """A bad row is named with its line (exit 2); without an account id the job could not
    remember its account (exit 2, one line, before the file is read); in both cases no
    database appears."""
    bad = write_job_csv(tmp_path / "bad.csv", [{"action": "create_site", "key": "x"}])
    refused = run_cli(["submit", str(bad), "--db", str(db_path)], cli_env(), timeout=TIMEOUT)
    assert refused.returncode == 2
    assert f"{bad}:2" in refused.stderr or "line 2" in refused.stderr, refused.stderr
    good = write_job_csv(tmp_path / "good.csv", realistic_rows(3, tag="acct"))
    anonymous = run_cli(["submit", str(good), "--db", str(db_path)],
                        cli_env(account_id=None), timeout=TIMEOUT)
    assert anonymous.returncode == 2
    assert anonymous.stderr.strip().splitlines() == [
        "error: WIX_ACCOUNT_ID is not set: pass --account-id or export WIX_ACCOUNT_ID "
        "(the job remembers the account it is for)"]
    # Said before the file is read (a million rows take a while to check): even of a bad one.
    unread = run_cli(["submit", str(bad), "--db", str(db_path)], cli_env(account_id=None),
                     timeout=TIMEOUT)
    assert (unread.returncode, unread.stderr) == (2, anonymous.stderr)
    assert not db_path.exists()


def test_two_workers_run_three_jobs_each_exactly_once(
    sandbox_factory: SandboxFactory, env: dict[str, str], each_db: str, tmp_path: Path,
) -> None:
    """Three submitted jobs (each against a sandbox of its own), two workers with
    --until-idle and --jobs 2: they share the jobs, both end 0 once every job is done, and
    each sandbox holds its job's rows exactly once."""
    jobs = []
    for n in range(3):
        box = sandbox_factory(latency=0.02)
        rows = realistic_rows(15, tag=f"w{n}")
        job_id = submit(each_db, write_job_csv(tmp_path / f"job{n}.csv", rows), box, env)
        jobs.append((job_id, rows, box))
    ended = side_by_side([["worker", "--until-idle", "--db", each_db, "--jobs", "2", *FAST]] * 2,
                         env)
    for result in ended:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "idle: no open job left" in result.stdout
    started = "".join(result.stdout for result in ended)
    for job_id, rows, box in jobs:
        assert f"job {job_id}: finished (15 succeeded)" in started, started
        assert_exactly_once(rows, report_json(each_db, env, job_id), box.state())
        assert status_json(each_db, env, job_id)["state"] == "finished"


def test_three_workers_share_a_job_and_one_killed_mid_run_loses_no_row_and_repeats_none(
    sandbox_factory: SandboxFactory, env: dict[str, str], each_db: str, tmp_path: Path,
) -> None:
    """Three workers run one job together against a sandbox with a rate limit; one is
    SIGKILLed mid-run with rows claimed and in flight. The other two take its rows back once
    its turn has lapsed (--lease-seconds), reconcile those it had sent, and finish the job:
    every row done exactly once at the sandbox (connections dropped after the effect
    included), no second in which the sandbox saw more than the account's --rate, no 429,
    both survivors exit 0."""
    rate = 15
    sandbox = sandbox_factory(latency=0.05, drop_after=0.05, seed=11, rate_limit="20/s")
    rows = realistic_rows(60, tag="kill")
    job_id = submit(each_db, write_job_csv(tmp_path / "clients.csv", rows), sandbox, env)
    lease = 3.0
    flags = ["--db", each_db, "--lease-seconds", str(lease), *FAST, "--rate", f"{rate}/s"]
    workers = [start_cli(["worker", "--until-idle", *flags], env) for _ in range(3)]
    try:
        assert wait_until(lambda: request_count(sandbox.base_url) >= 20, timeout=TIMEOUT)
        held = status_json(each_db, env, job_id)["held_by"]
        assert held is not None and held["workers"], held
        workers[0].kill()
        survivors = [worker.wait(TIMEOUT) for worker in workers[1:]]
    finally:
        for worker in workers:
            worker.ensure_stopped()
    for result in survivors:
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"job {job_id}: finished" in result.stdout, result.stdout
    state = sandbox.state()
    assert_exactly_once(rows, report_json(each_db, env, job_id), state)
    # The three share the account's budget: never more than its rate in any second.
    assert busiest_second(state["requests"]["request_times"]) <= rate * 1.1 + 1
    assert state["requests"]["by_status"].get("429", 0) == 0
    assert status_json(each_db, env, job_id)["state"] == "finished"
    # The job may have finished before the killed worker's turn lapsed: then its share of the
    # job's lease ends with that turn.
    assert wait_until(lambda: status_json(each_db, env, job_id)["held_by"] is None,
                      timeout=lease + 2, interval=0.2)


def test_sigterm_stops_a_worker_with_130_and_gives_its_lease_up_at_once(
    sandbox_factory: SandboxFactory, env: dict[str, str], each_db: str, tmp_path: Path,
) -> None:
    """SIGTERM: requests in flight finish, exit 130, and the job's lease is free at once: a
    worker started right after takes the job over without waiting for the lease to end."""
    sandbox = sandbox_factory(latency=0.1)
    rows = realistic_rows(30, tag="term")
    job_id = submit(each_db, write_job_csv(tmp_path / "clients.csv", rows), sandbox, env)
    flags = ["--db", each_db, "--lease-seconds", "600", *FAST]
    first = start_cli(["worker", *flags, "--rate", "10/s"], env)
    try:
        assert wait_until(lambda: request_count(sandbox.base_url) >= 5, timeout=TIMEOUT)
        first.send(signal.SIGTERM)
        stopped = first.wait(TIMEOUT)
    finally:
        first.ensure_stopped()
    assert stopped.returncode == 130, stopped.stdout + stopped.stderr
    assert status_json(each_db, env, job_id).get("held_by") is None
    second = run_cli(["worker", "--until-idle", *flags], env, timeout=TIMEOUT)
    assert second.returncode == 0, second.stdout + second.stderr
    assert_exactly_once(rows, report_json(each_db, env, job_id), sandbox.state())


def test_each_job_runs_with_its_own_accounts_key_and_a_job_without_one_is_left(
    sandbox_factory: SandboxFactory, db_path: Path, tmp_path: Path,
) -> None:
    """Two accounts, a sandbox each (each accepting only its own key). A worker holding only
    the first account's key runs that job and leaves the other, naming the variable to set
    (exit 1, nothing sent to the second); with both keys, a worker finishes the second. No key
    shows in any output."""
    first = sandbox_factory()
    second = sandbox_factory(account_id=OTHER_ACCOUNT, api_key=OTHER_KEY)
    rows_one = realistic_rows(6, tag="acct1")
    rows_two = [{"action": "create_site", "key": f"a2-{n}", "site_name": f"Second account {n}"}
                for n in range(6)]
    one = submit(db_path, write_job_csv(tmp_path / "one.csv", rows_one), first,
                 cli_env(account_id=ACCOUNT_ID))
    two = submit(db_path, write_job_csv(tmp_path / "two.csv", rows_two), second,
                 cli_env(account_id=OTHER_ACCOUNT))
    only_first = cli_env(api_key=None, account_id=None,
                         **{key_variable(ACCOUNT_ID): "sandbox-key"})
    partial = run_cli(["worker", "--until-idle", "--db", str(db_path), *FAST], only_first,
                      timeout=TIMEOUT)
    assert partial.returncode == 1, partial.stdout + partial.stderr
    assert f"job {one}: finished" in partial.stdout
    assert f"job {two}: left: no API key for its account {OTHER_ACCOUNT}" in partial.stdout
    assert key_variable(OTHER_ACCOUNT) in partial.stdout
    assert request_count(second.base_url) == 0
    assert status_json(db_path, only_first, two)["state"] == "pending"

    both = cli_env(api_key=None, account_id=None, **{
        key_variable(ACCOUNT_ID): "sandbox-key", key_variable(OTHER_ACCOUNT): OTHER_KEY})
    finished = run_cli(["worker", "--until-idle", "--db", str(db_path), *FAST], both,
                       timeout=TIMEOUT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"job {two}: finished (6 succeeded)" in finished.stdout
    names = sorted(site["displayName"] for site in second.state()["sites"]
                   if not site["seeded"])
    assert names == sorted(row["site_name"] for row in rows_two)
    for output in (partial.stdout + partial.stderr, finished.stdout + finished.stderr):
        assert "sandbox-key" not in output and OTHER_KEY not in output


def test_jobs_of_one_account_share_its_budget_and_a_small_job_is_not_starved(
    sandbox: SandboxProcess, env: dict[str, str], db_path: Path, tmp_path: Path,
) -> None:
    """One worker runs a 40-row job and a 5-row job of the same account side by side:
    together they never pass the account's --rate in any second, and the small job,
    submitted second, finishes first."""
    rate = 10
    big_rows = [{"action": "create_site", "key": f"big-{n}", "site_name": f"Big {n}"}
                for n in range(40)]
    small_rows = [{"action": "create_site", "key": f"small-{n}", "site_name": f"Small {n}"}
                  for n in range(5)]
    big = submit(db_path, write_job_csv(tmp_path / "big.csv", big_rows), sandbox, env)
    small = submit(db_path, write_job_csv(tmp_path / "small.csv", small_rows), sandbox, env)

    result = run_cli(["worker", "--until-idle", "--db", str(db_path), *FAST,
                      "--rate", f"{rate}/s"], env, timeout=TIMEOUT)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    ends = [n for n, line in enumerate(lines) if ": finished (" in line]
    assert [lines[n].split()[2] for n in ends] == [f"{small}:", f"{big}:"], result.stdout
    state = sandbox.state()
    names = sorted(site["displayName"] for site in state["sites"] if not site["seeded"])
    assert names == sorted(row["site_name"] for row in big_rows + small_rows)
    assert busiest_second(state["requests"]["request_times"]) <= rate * 1.1 + 1


def test_two_runs_of_one_account_on_one_database_share_its_budget(
    sandbox: SandboxProcess, env: dict[str, str], db_path: Path, tmp_path: Path,
) -> None:
    """Two `bulkops run` processes of different files for one account, side by side on one
    SQLite database, each with the account's --rate: together they keep to it in every
    second, and each creates its sites once."""
    rate = 10
    files = []
    for n in range(2):
        rows = [{"action": "create_site", "key": f"r{n}-{i}", "site_name": f"Run {n} site {i}"}
                for i in range(25)]
        files.append(write_job_csv(tmp_path / f"run{n}.csv", rows))
    flags = ["--db", str(db_path), "--base-url", sandbox.base_url, "--rate", f"{rate}/s",
             "--timeout", "2", "--settle", "0.3", "--backoff-base", "0.05", "--wait=60"]
    results = side_by_side([["run", str(file), *flags] for file in files], env)
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
    state = sandbox.state()
    names = sorted(site["displayName"] for site in state["sites"] if not site["seeded"])
    assert names == sorted(f"Run {n} site {i}" for n in range(2) for i in range(25))
    assert busiest_second(state["requests"]["request_times"]) <= rate * 1.1 + 1


def test_a_job_of_the_in_process_sandbox_runs_in_one_worker_at_a_time(
    db_path: Path, tmp_path: Path,
) -> None:
    """`submit --sandbox`: the in-process sandbox keeps its world beside the database, so two
    workers must not each start one on it. One runs the job; the other never starts it; the
    saved world holds each site once."""
    rows = [{"action": "create_site", "key": f"sbx-{n}", "site_name": f"Sandboxed {n}"}
            for n in range(8)]
    job = write_job_csv(tmp_path / "demo.csv", rows)
    stored = run_cli(["submit", str(job), "--sandbox", "--db", str(db_path)], cli_env(),
                     timeout=TIMEOUT)
    assert stored.returncode == 0, stored.stderr
    job_id = stored.stdout.strip()
    ended = side_by_side([["worker", "--until-idle", "--db", str(db_path), *FAST]] * 2,
                         cli_env())
    assert [result.returncode for result in ended] == [0, 0]
    outputs = "".join(result.stdout for result in ended)
    assert outputs.count(f"job {job_id}: started") == 1, outputs
    world = json.loads(Path(f"{db_path}.sandbox.json").read_text())
    names = sorted(site["displayName"] for site in world["sites"]
                   if site["displayName"].startswith("Sandboxed"))
    assert names == sorted(row["site_name"] for row in rows)


def test_invites_stay_batched_when_workers_share_the_job(
    sandbox: SandboxProcess, env: dict[str, str], each_db: str, tmp_path: Path,
) -> None:
    """Three workers on a job of 120 account invites: each call still carries up to 50
    invitees (a worker claims ahead the rows that may share a call), so the sandbox sees a
    handful of calls, not one per row; every person is invited once."""
    invitees = 120
    rows = [{"action": "account_invite", "key": f"m{i}", "email": f"member{i}@agency.example",
             "role": "Website Manager"} for i in range(invitees)]
    submit(each_db, write_job_csv(tmp_path / "team.csv", rows), sandbox, env)

    ended = side_by_side([["worker", "--until-idle", "--db", each_db, *FAST]] * 3, env)

    assert [result.returncode for result in ended] == [0, 0, 0], ended
    state = sandbox.state()
    calls = int(state["requests"]["by_endpoint"].get("account_invite", 0))
    assert calls <= invitees // 50 + 3, calls
    invited = sorted(invite["email"] for invite in state["invites"])
    assert invited == sorted(row["email"] for row in rows)


def test_a_worker_finishes_the_job_of_a_run_that_was_sigkilled(
    sandbox_factory: SandboxFactory, env: dict[str, str], each_db: str, tmp_path: Path,
) -> None:
    """A `run` SIGKILLed mid-job leaves rows claimed and in flight under its own name. Once its
    lease has ended, a worker takes the job, takes those rows back (the ones in flight are
    looked up at Wix first) and finishes it: every row exactly once."""
    sandbox = sandbox_factory(latency=0.05, drop_after=0.05, seed=3)
    rows = realistic_rows(40, tag="orphan")
    job = write_job_csv(tmp_path / "clients.csv", rows)
    lease = 3.0
    run = start_cli(["run", str(job), "--db", each_db, "--base-url", sandbox.base_url,
                     "--lease-seconds", str(lease), *FAST[:-2]], env)  # not --poll
    try:
        kill_after_requests(run, sandbox, 12, timeout=TIMEOUT)
    finally:
        run.ensure_stopped()
    finished = run_cli(["worker", "--until-idle", "--db", each_db,
                        "--lease-seconds", str(lease), *FAST], env, timeout=TIMEOUT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    job_id = status_json(each_db, env)["job"]
    assert f"job {job_id}: finished" in finished.stdout, finished.stdout
    assert_exactly_once(rows, report_json(each_db, env, job_id), sandbox.state())


def test_a_write_lock_held_past_the_turn_stops_no_worker(
    sandbox_factory: SandboxFactory, env: dict[str, str], db_path: Path, tmp_path: Path,
) -> None:
    """SQLite's write lock held for two turns by another process (as a worker frozen in the
    middle of a commit holds it): no worker can renew its turn meanwhile, so none takes that
    for the others' death once the lock is let go: both go on, neither is stopped, every row
    exactly once."""
    sandbox = sandbox_factory(latency=0.1)
    rows = realistic_rows(60, tag="lock")
    job_id = submit(db_path, write_job_csv(tmp_path / "clients.csv", rows), sandbox, env)
    lease = 2.0
    flags = ["worker", "--until-idle", "--db", str(db_path), "--lease-seconds", str(lease),
             *FAST, "--rate", "20/s", "--settle", "3"]
    workers = [start_cli(flags, env), start_cli(flags, env)]
    try:
        assert wait_until(lambda: request_count(sandbox.base_url) >= 15, timeout=TIMEOUT)
        holder = sqlite3.connect(db_path, isolation_level=None, timeout=TIMEOUT)
        try:
            holder.execute("BEGIN IMMEDIATE")
            time.sleep(lease * 2)
        finally:
            holder.close()  # rolls back: the lock goes
        ended = [worker.wait(TIMEOUT) for worker in workers]
    finally:
        for worker in workers:
            worker.ensure_stopped()
    for worker in ended:
        assert worker.returncode == 0, worker.stdout + worker.stderr
        assert "took its rows back" not in worker.stdout, worker.stdout
    assert status_json(db_path, env, job_id)["state"] == "finished"
    assert_exactly_once(rows, report_json(db_path, env, job_id), sandbox.state())


def test_a_worker_stalled_past_its_turn_stops_itself_and_not_the_job(
    sandbox_factory: SandboxFactory, env: dict[str, str], db_path: Path, tmp_path: Path,
) -> None:
    """One of two workers is frozen (SIGSTOP) for longer than its turn, then thawed: the other
    has taken its rows back meanwhile. The thawed one sends none of them again, writes none of
    its stale copies over the other's, and stops (exit 3, or 0 if it had nothing left); the
    job is not stopped for the other, which finishes it: every row exactly once."""
    sandbox = sandbox_factory(latency=0.1)
    rows = realistic_rows(60, tag="stall")
    job_id = submit(db_path, write_job_csv(tmp_path / "clients.csv", rows), sandbox, env)
    lease = 2.0
    # A request the frozen worker had already let out may reach the sandbox after it thaws:
    # the other worker's look-ups must wait longer than the freeze before sending it again, as
    # the default --settle (15 s: looked up until 67 s after) does for any stall shorter.
    flags = ["worker", "--until-idle", "--db", str(db_path), "--lease-seconds", str(lease),
             *FAST, "--rate", "20/s", "--settle", "3"]
    frozen, other = start_cli(flags, env), start_cli(flags, env)
    try:
        assert wait_until(lambda: request_count(sandbox.base_url) >= 15, timeout=TIMEOUT)
        frozen.send(signal.SIGSTOP)
        time.sleep(lease * 2)
        frozen.send(signal.SIGCONT)
        thawed, finished = frozen.wait(TIMEOUT), other.wait(TIMEOUT)
    finally:
        for worker in (frozen, other):
            worker.ensure_stopped()
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"job {job_id}: finished" in finished.stdout, finished.stdout
    assert thawed.returncode in (0, 3), thawed.stdout + thawed.stderr
    assert status_json(db_path, env, job_id)["state"] == "finished"
    assert_exactly_once(rows, report_json(db_path, env, job_id), sandbox.state())
