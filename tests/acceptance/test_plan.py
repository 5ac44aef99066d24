"""`bulkops plan FILE`: what a run would do, found with read calls only, written nowhere.

The command runs as a subprocess against a `bulkops sandbox` process: the sandbox's request
counters prove that only reads reached it, and the database's rows before and after prove that
the plan stored nothing.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from harness import (
    MUTATING,
    SUB_ACCOUNTS,
    Json,
    SandboxProcess,
    cli_env,
    fast_run_flags,
    realistic_rows,
    requests_by_endpoint,
    run_cli,
    seed_sites,
    write_job_csv,
)

RUN_TIMEOUT = 30.0
TABLES = ("jobs", "ops", "job_rows", "op_aliases", "runs")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(XDG_DATA_HOME=str(tmp_path / "xdg-data"))




def _output(result: Any) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def _plan(job: Path, db: Path, sandbox: SandboxProcess, env: dict[str, str],
          *extra: str) -> Any:
    flags = ["--db", str(db), "--base-url", sandbox.base_url, "--rate", "200/min", *extra]
    return run_cli(["plan", str(job), *flags], env, timeout=RUN_TIMEOUT)


def _plan_json(job: Path, db: Path, sandbox: SandboxProcess, env: dict[str, str],
               *extra: str) -> tuple[int, Json]:
    result = _plan(job, db, sandbox, env, "--format", "json", *extra)
    assert result.returncode in (0, 2), _output(result)
    document: Json = json.loads(result.stdout)
    return result.returncode, document


def _database_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        return {table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
                for table in TABLES if table in names}


def test_a_plan_before_any_run_counts_rows_calls_and_time_and_stores_nothing(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    rows = realistic_rows(20, tag="plan")
    job = write_job_csv(tmp_path / "plan.csv", rows)
    db = tmp_path / "jobs.db"

    result = _plan(job, db, sandbox, env)

    assert result.returncode == 0, _output(result)
    actions = Counter(row["action"] for row in rows)
    text = result.stdout
    assert f"plan for {job}: 20 row(s)" in text
    assert (f"to do: 20 row(s): create_site {actions['create_site']}, transfer_site "
            f"{actions['transfer_site']}, site_invite {actions['site_invite']}, account_invite "
            f"{actions['account_invite']}") in text, text
    assert "done in earlier runs" not in text
    assert "API calls: " in text and "time: about " in text and "at 200/min" in text
    assert text.rstrip().endswith("problems: none; the plan is clean"), text
    assert not db.exists(), "the plan made a database"
    counts = requests_by_endpoint(sandbox)
    assert sum(counts[name] for name in MUTATING) == 0, counts
    assert set(+counts) <= {"roles", "query_sites"}, counts


def test_plan_json_matches_what_the_run_then_does(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    """Half the file runs; the plan of the whole file names the done rows, counts the rest
    per action, and its calls are those the run of the rest then makes."""
    rows = realistic_rows(24, tag="half")
    job = tmp_path / "half.csv"
    db = tmp_path / "jobs.db"
    write_job_csv(job, rows[:12])
    first = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                    timeout=RUN_TIMEOUT)
    assert first.returncode == 0, _output(first)
    write_job_csv(job, rows)
    stored = _database_rows(db)
    before = requests_by_endpoint(sandbox)

    code, plan = _plan_json(job, db, sandbox, env)

    assert code == 0 and plan["clean"] is True and plan["problems"] == [], plan
    assert _database_rows(db) == stored, "the plan changed the database"
    after_plan = requests_by_endpoint(sandbox)
    assert all(after_plan[name] == before[name] for name in MUTATING), after_plan
    assert plan["total"] == 24 and plan["checked_at_wix"] is True
    assert plan["done_before"] == {"rows": 12, "lines": list(range(2, 14))}
    rest = Counter(row["action"] for row in rows[12:])
    assert plan["to_do"]["rows"] == 12
    assert {k: v for k, v in plan["to_do"]["by_action"].items() if v} == dict(rest)
    calls = plan["calls"]
    # Creates and transfers take a call each; invites share calls.
    assert calls["by_action"]["create_site"] == rest["create_site"]
    assert calls["by_action"]["transfer_site"] == rest["transfer_site"]
    assert calls["by_action"]["account_invite"] == math.ceil(rest["account_invite"] / 50)
    # The new creates' names are checked: one listing page (the account has 6 sites).
    assert calls["reads"] == {"roles": 1, "site_listing": 1}, calls
    assert calls["total"] == sum(calls["by_action"].values()) + 2
    assert plan["rate"] == "200/min" and plan["budget_per_minute"] == 200.0
    assert plan["seconds"] == pytest.approx(calls["total"] * 60 / 200, abs=0.1)

    second = run_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], env,
                     timeout=RUN_TIMEOUT)
    assert second.returncode == 0, _output(second)
    sent = requests_by_endpoint(sandbox)
    sent.subtract(after_plan)
    assert sent["create_site"] == calls["by_action"]["create_site"]
    assert sent["transfer_site"] == calls["by_action"]["transfer_site"]
    # The run takes the calls the plan said, no more (site invites of one site may still split
    # when their rows become ready apart, beyond the linger).
    assert sum(sent.values()) == calls["total"], (sent, calls)


def test_a_plan_with_problems_lists_them_all_and_exits_2(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    [existing] = seed_sites(sandbox.base_url, [{"displayName": "Taken Name"}])
    nowhere = "99999999-9999-4999-8999-999999999999"
    job = write_job_csv(tmp_path / "bad.csv", [
        {"action": "create_site", "key": "taken", "site_name": "Taken Name"},
        {"action": "site_invite", "key": "boss", "site": "@taken", "email": "a@example.com",
         "role": "Website Boss"},
        {"action": "transfer_site", "key": "gone", "site": nowhere,
         "to_account": SUB_ACCOUNTS[0]},
        {"action": "create_site", "key": "fine", "site_name": "Fine Name"},
    ])
    db = tmp_path / "jobs.db"

    code, plan = _plan_json(job, db, sandbox, env)

    assert code == 2 and plan["clean"] is False
    assert [(p["line"], p["column"]) for p in plan["problems"]] == [
        (2, "site_name"), (3, "role"), (4, "site")], plan["problems"]
    assert "--if-exists adopt" in plan["problems"][0]["reason"]
    assert "unknown role 'Website Boss'" in plan["problems"][1]["reason"]
    assert f"site '{nowhere}' is not in your account" in plan["problems"][2]["reason"]
    # Only the row without a problem would be sent.
    assert plan["calls"]["by_action"] == {"create_site": 1, "transfer_site": 0,
                                          "site_invite": 0, "account_invite": 0,
                                          "connect_domain": 0, "set_dns_record": 0}
    assert plan["calls"]["reads"]["site_listing"] == 1

    text = _plan(job, db, sandbox, env)
    assert text.returncode == 2, _output(text)
    assert "problems: 3 (the run would refuse the file and send nothing):" in text.stdout
    assert f"{job}: line 3, column role: unknown role 'Website Boss'" in text.stdout

    code, adopting = _plan_json(job, db, sandbox, env, "--if-exists", "adopt")
    assert code == 2 and [p["line"] for p in adopting["problems"]] == [3, 4]
    assert adopting["adopt"] == [{"line": 2, "key": "taken", "site_name": "Taken Name",
                                  "site_id": existing["id"]}]
    assert sum(requests_by_endpoint(sandbox)[name] for name in MUTATING) == 0
    assert not db.exists()


def test_an_invalid_file_is_planned_as_its_problems_without_reading_wix(
    sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path,
) -> None:
    job = tmp_path / "invalid.csv"
    job.write_text("action,site_name\ncreate_site,\n", encoding="utf-8")
    code, plan = _plan_json(job, tmp_path / "jobs.db", sandbox, env)
    assert code == 2 and plan["checked_at_wix"] is False
    assert [(p["line"], p["column"]) for p in plan["problems"]] == [(2, "site_name")]
    assert sum(requests_by_endpoint(sandbox).values()) == 0


def test_plan_sandbox_reads_the_world_run_sandbox_left_and_changes_nothing(
    env: dict[str, str], tmp_path: Path,
) -> None:
    job = write_job_csv(tmp_path / "demo.csv", realistic_rows(8, tag="demo"))
    db = tmp_path / "demo.db"
    ran = run_cli(["run", str(job), "--sandbox", "--db", str(db), "--rate", "50/s"], env,
                  timeout=RUN_TIMEOUT)
    assert ran.returncode == 0, _output(ran)
    world = db.with_name(db.name + ".sandbox.json")
    saved, stored = world.read_bytes(), _database_rows(db)
    # A file naming one of the demo's sites by a new key: the sandbox's world tells.
    other = write_job_csv(tmp_path / "other.csv", [
        {"action": "create_site", "key": "demo-again", "site_name": "demo yoga studio 002"},
        {"action": "create_site", "key": "demo-new", "site_name": "Demo Brand New"},
    ])

    result = run_cli(["plan", str(other), "--sandbox", "--db", str(db), "--format", "json"],
                     env, timeout=RUN_TIMEOUT)

    assert result.returncode == 0, _output(result)
    plan = json.loads(result.stdout)
    # The same display name as a site the demo made is the same work: done before.
    assert plan["done_before"] == {"rows": 1, "lines": [2]}, plan
    assert plan["to_do"]["by_action"]["create_site"] == 1
    assert world.read_bytes() == saved and _database_rows(db) == stored


def test_a_file_that_cannot_be_read_is_still_a_json_plan_with_its_problem(
    env: dict[str, str], tmp_path: Path,
) -> None:
    """Scripts read stdout: a workbook saved as .csv gives a plan document, not just stderr."""
    job = tmp_path / "clients.csv"
    job.write_bytes(b"PK\x03\x04 a workbook, not CSV text")
    result = run_cli(["plan", str(job), "--sandbox", "--format", "json"], env,
                     timeout=RUN_TIMEOUT)
    assert result.returncode == 2, _output(result)
    plan = json.loads(result.stdout)
    assert (plan["clean"], plan["checked_at_wix"], plan["total"]) == (False, False, 0)
    [problem] = plan["problems"]
    assert problem["line"] == 1 and "save or export it as CSV UTF-8" in problem["reason"]
