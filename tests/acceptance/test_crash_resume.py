"""A run killed at any moment and started again does every row exactly once.

The sandbox drops connections before and after the effect, answers 5xx, and answers some
requests only after the client's timeout (effect applied): every kind of unknown outcome the
engine must reconcile. The proof comes from the sandbox's own record of sites, transfers and
invites, compared row by row with `bulkops report`.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from evidence import assert_exactly_once
from harness import (
    SUB_ACCOUNTS,
    SandboxFactory,
    fast_run_flags,
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

# Shares of requests: 5xx, dropped before the effect, dropped after it, answered after the
# client's 1 s timeout (effect applied). A fixed seed keeps the fault sequence repeatable.
FAULTS = {"error_rate": 0.08, "drop_before": 0.05, "drop_after": 0.08, "slow_rate": 0.05,
          "slow_delay": 1.5, "seed": 20240611}
ROWS = 40
# Requests the sandbox receives between one start and its SIGKILL, for the mid-run kills: an
# early, a late and a middle point of the run (the first start is killed after 0.2 s instead).
KILL_AFTER_REQUESTS = (5, 15, 10)
RUN_TIMEOUT = 60.0


def test_sigkill_at_varied_moments_then_run_and_resume_do_every_row_exactly_once(
    sandbox_factory: SandboxFactory, env: dict[str, str], each_db: str, tmp_path: Path,
) -> None:
    """Killed during start-up and three times mid-run (alternately restarted with `run FILE`
    and `resume`), the job still ends with exit 0, each create and transfer applied once at
    the sandbox, and a report that matches the sandbox row by row."""
    sandbox = sandbox_factory(**FAULTS)
    rows = realistic_rows(ROWS, tag="crash")
    job = str(write_job_csv(tmp_path / "clients.csv", rows))
    flags = fast_run_flags(each_db, sandbox.base_url)
    commands = [["run", job, *flags], ["run", job, *flags], ["resume", *flags],
                ["run", job, *flags]]
    kill_points: list[int] = []
    for number, command in enumerate(commands):
        cli = start_cli(command, env)
        try:
            if number == 0:
                # Before any request: the process dies while starting, storing or migrating.
                time.sleep(0.2)
                assert cli.running(), cli.wait(1)
                cli.kill()
                kill_points.append(request_count(sandbox.base_url))
            else:
                more = KILL_AFTER_REQUESTS[number - 1]
                kill_points.append(kill_after_requests(cli, sandbox, more, timeout=RUN_TIMEOUT))
        finally:
            cli.ensure_stopped()
    assert kill_points[0] < kill_points[1] < kill_points[2] < kill_points[3]

    final = run_cli(["resume", *flags], env, timeout=RUN_TIMEOUT)

    assert final.returncode == 0, final.stdout + final.stderr
    assert f"{ROWS} succeeded" in final.stdout
    assert_exactly_once(rows, report_json(each_db, env), sandbox.state())
    status = status_json(each_db, env)
    assert (status["state"], status["counts"]["succeeded"]) == ("finished", ROWS)


def test_sigterm_stops_cleanly_with_130_and_resume_finishes(
    sandbox_factory: SandboxFactory, env: dict[str, str], each_db: str, tmp_path: Path,
) -> None:
    """SIGTERM mid-run: the process finishes what is in flight, exits 130 and says how to
    continue; `bulkops resume` then completes the job with exit 0 and no row done twice."""
    sandbox = sandbox_factory(latency=0.05, drop_after=0.05, seed=7)
    rows = realistic_rows(30, tag="term")
    job = str(write_job_csv(tmp_path / "clients.csv", rows))
    flags = fast_run_flags(each_db, sandbox.base_url, rate="20/s")
    cli = start_cli(["run", job, *flags], env)
    try:
        assert wait_until(lambda: request_count(sandbox.base_url) >= 8, timeout=RUN_TIMEOUT)
        cli.send(signal.SIGTERM)
        stopped = cli.wait(timeout=15)
    finally:
        cli.ensure_stopped()

    assert stopped.returncode == 130, stopped.stdout + stopped.stderr
    assert "bulkops resume" in stopped.stderr
    assert status_json(each_db, env)["state"] == "interrupted"
    elsewhere = {**env, "WIX_ACCOUNT_ID": SUB_ACCOUNTS[0]}
    refused = run_cli(["resume", *flags], elsewhere, timeout=RUN_TIMEOUT)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"ran against account {env['WIX_ACCOUNT_ID']}" in refused.stderr
    resumed = run_cli(["resume", *flags], env, timeout=RUN_TIMEOUT)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_exactly_once(rows, report_json(each_db, env), sandbox.state())
