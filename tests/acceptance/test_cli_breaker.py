"""The failure breaker through the CLI: a storm of one error stops the job with exit 3 and a
reason, the storm's rows wait as `pending` (not `failed`), and the job can be resumed."""

from __future__ import annotations

from pathlib import Path

from harness import (
    UNKNOWN_ACCOUNT,
    SandboxFactory,
    fast_run_flags,
    run_cli,
    status_json,
    write_job_csv,
)

SITES = 12


def storm_rows() -> list[dict[str, str]]:
    """Sites that are created fine, each then moved to an account Wix does not know (428)."""
    creates = [{"action": "create_site", "key": f"storm-{i}", "site_name": f"Storm Client {i}"}
               for i in range(SITES)]
    moves = [{"action": "transfer_site", "key": f"storm-move-{i}", "site": f"@storm-{i}",
              "to_account": UNKNOWN_ACCOUNT} for i in range(SITES)]
    return creates + moves


def test_a_storm_of_one_error_stops_with_exit_3_and_leaves_its_rows_pending(
    sandbox_factory: SandboxFactory, env: dict[str, str], each_db: str, tmp_path: Path,
) -> None:
    sandbox = sandbox_factory()
    job = str(write_job_csv(tmp_path / "storm.csv", storm_rows()))
    flags = [*fast_run_flags(each_db, sandbox.base_url), "--breaker-window", "5",
             "--concurrency", "2"]

    stopped = run_cli(["run", job, *flags], env)

    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    assert "TARGET_ACCOUNT_ID_NOT_FOUND" in stopped.stderr
    assert "bulkops resume" in stopped.stderr
    status = status_json(each_db, env)
    assert status["state"] == "stopped"
    assert status["counts"]["failed"] == 0  # the storm's rows wait for the fix
    assert status["counts"]["succeeded"] == SITES  # the creates were not held back
    assert status["counts"]["pending"] == SITES
    transfers_sent = sandbox.state()["requests"]["by_endpoint"]["transfer_site"]
    assert 5 <= transfers_sent < SITES  # stopped before spending the budget on every row

    again = run_cli(["resume", *flags], env)
    assert again.returncode == 3, again.stdout + again.stderr  # the cause is still there
    assert status_json(each_db, env)["counts"]["succeeded"] == SITES
