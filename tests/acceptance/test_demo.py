"""The README's demo: the onboarding job against the in-process sandbox, start to finish."""

from __future__ import annotations

from pathlib import Path

from harness import cli_env, report_json, run_cli, status_json

ONBOARDING = Path(__file__).resolve().parents[2] / "jobs" / "onboarding.csv"
ONBOARDING_ROWS = 71


def test_onboarding_demo_runs_every_row_to_success_with_exit_0(tmp_path: Path) -> None:
    """`bulkops run jobs/onboarding.csv --sandbox --rate 20/s` needs no credentials, exits 0
    and its summary counts all 71 rows succeeded."""
    db = tmp_path / "demo.db"
    env = cli_env(api_key=None, account_id=None)
    result = run_cli(["run", str(ONBOARDING), "--sandbox", "--rate", "20/s", "--db", str(db)],
                     env, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{ONBOARDING_ROWS} operation(s): {ONBOARDING_ROWS} succeeded" in result.stdout
    status = status_json(db, env)
    assert (status["state"], status["counts"]["succeeded"]) == ("finished", ONBOARDING_ROWS)
    # The last step of onboarding: each connected domain's row says what its client must set
    # at their registrar, and the DNS rows are done.
    report = report_json(db, env)
    connects = [r for r in report if r["action"] == "connect_domain"]
    assert connects and all(r["result"]["registrar_records"] for r in connects), connects
    assert all(r["status"] == "succeeded" for r in report if r["action"] == "set_dns_record")
