"""A database written by schema 0001 (before operations had one identity across jobs) keeps
every recorded outcome when it is upgraded: running its files again sends nothing.

`tests/fixtures/schema_0001.db` was written by bulkops at schema 0001 against a sandbox:
- a 40-row job (`realistic_rows(40, tag="mig")`), all succeeded;
- a 3-row job (two `create_site` rows without `key`, an `account_invite` with the role
  "Website Boss", which failed at Wix: that version sent rows before checking their roles),
  then the same file with the role fixed: a second job that created both sites again (the
  duplicates the new identity prevents).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

from harness import (
    ACCOUNT_ID,
    Json,
    cli_env,
    fast_run_flags,
    realistic_rows,
    report_json,
    run_cli,
    running_sandbox,
    write_job_csv,
)

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "schema_0001.db"
MUTATING = ("create_site", "transfer_site", "account_invite", "site_invite_bulk")
FIX_HEADER = "action,site_name,email,role\n"
FIX_ROWS = ("create_site,Mig Fix Bakery,,\ncreate_site,Mig Fix Florist,,\n"
            "account_invite,,team@agency.example.com,Website Manager\n")


def _mutating(state: Json) -> int:
    by_endpoint = state["requests"]["by_endpoint"]
    return sum(int(by_endpoint.get(name, 0)) for name in MUTATING)


def _old_database(tmp_path: Path, base_url: str) -> Path:
    """A copy of the fixture, its jobs pointed at this test's sandbox (the only change: the
    fixture's sandbox listened on another port)."""
    db = tmp_path / "old.db"
    shutil.copyfile(FIXTURE, db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
        conn.execute("UPDATE jobs SET base_url = ?", (base_url,))
    return db


def _old_site_ids(db: Path) -> set[str]:
    with sqlite3.connect(FIXTURE) as conn:
        rows = conn.execute("SELECT site_id FROM ops WHERE action = 'create_site' "
                            "AND state = 'succeeded'").fetchall()
    return {site for (site,) in rows}


def test_an_upgraded_database_runs_its_files_again_without_sending_anything(
    tmp_path: Path,
) -> None:
    with running_sandbox() as sandbox:
        db = _old_database(tmp_path, sandbox.base_url)
        env = cli_env(XDG_DATA_HOME=str(tmp_path / "data"))
        flags = fast_run_flags(db, sandbox.base_url)
        big = write_job_csv(tmp_path / "mig.csv", realistic_rows(40, tag="mig"))
        fixed = tmp_path / "fix.csv"
        fixed.write_text(FIX_HEADER + FIX_ROWS, encoding="utf-8")

        for job_file in (big, fixed):
            result = run_cli(["run", str(job_file), *flags], env, timeout=60)
            assert result.returncode == 0, result.stderr
            assert "done in earlier runs" in result.stdout
            report = report_json(db, env)
            assert {r["status"] for r in report} == {"succeeded"}, report
            created = {r["result"]["site_id"] for r in report if r["action"] == "create_site"}
            assert created <= _old_site_ids(db), "a create got a site the old database lacks"
        assert _mutating(sandbox.state()) == 0


def test_the_upgrade_keeps_one_operation_per_key_and_every_job_row(tmp_path: Path) -> None:
    with running_sandbox() as sandbox:
        db = _old_database(tmp_path, sandbox.base_url)
        env = cli_env(XDG_DATA_HOME=str(tmp_path / "data"))
        # Any command that opens the database upgrades it; status only reads.
        result = run_cli(["status", "--json", "--db", str(db)], env, timeout=30)
        assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        duplicated = conn.execute(
            "SELECT scope, key FROM ops GROUP BY scope, key HAVING COUNT(*) > 1").fetchall()
        rows = conn.execute("SELECT COUNT(*) FROM job_rows").fetchone()
        states = dict(conn.execute(
            "SELECT o.state, COUNT(*) FROM job_rows r JOIN ops o ON o.op_id = r.op_id "
            "GROUP BY o.state").fetchall())
    assert duplicated == []
    assert rows == (46,)  # 40 + 3 + 3 rows, as the three jobs were written
    # The first 3-row job's rows now show what their operations came to: the two sites done
    # (once, by whichever job), its own failed invite still failed (its role differs).
    assert states == {"succeeded": 45, "failed": 1}
    assert ACCOUNT_ID  # the fixture ran against the sandbox's default account


def test_a_database_an_earlier_bulkops_is_running_is_not_upgraded_under_it(
    tmp_path: Path,
) -> None:
    """A live job lease on a database below the newest schema is an earlier bulkops at work:
    `status` of this version exits 4 with one line and leaves the schema as it was; once the
    lease has ended, the same command upgrades it and answers."""
    db = _old_database(tmp_path, "http://127.0.0.1:9")
    with sqlite3.connect(db) as conn:
        (job_id,) = conn.execute("SELECT job_id FROM jobs ORDER BY created_at LIMIT 1").fetchone()
        conn.execute("UPDATE jobs SET lease_owner = 'night-box:4242:token', "
                     "lease_expires_at = strftime('%s', 'now') + 600 WHERE job_id = ?",
                     (job_id,))
    env = cli_env()

    held = run_cli(["status", job_id, "--db", str(db)], env)

    assert held.returncode == 4, held.stderr
    [line] = held.stderr.splitlines()
    assert re.fullmatch(
        f"busy: job {job_id} is being run by an earlier bulkops \\(pid 4242 on night-box; its "
        r"lease runs until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC if that process died\): this "
        r"version upgrades the database's tables before using it, which would break that run; "
        r"use this version once it has ended \(or the earlier one until then\)", line), line
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
        conn.execute("UPDATE jobs SET lease_expires_at = strftime('%s', 'now') - 1")

    ended = run_cli(["status", job_id, "--db", str(db)], env)

    assert ended.returncode == 0, ended.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() != ("0001",)
