"""The API key never reaches output, the checkpoint database, a report or a status line.

A distinctive key is accepted by the sandbox, and the job runs with -vv (debug logging) through
faults, a failing row and a SIGKILL (which leaves the SQLite -wal and -shm files behind), so
every path that writes something has had its chance to leak the key.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import (
    BOUNCE_DOMAIN,
    UNKNOWN_ACCOUNT,
    SandboxFactory,
    cli_env,
    fast_run_flags,
    realistic_rows,
    request_count,
    run_cli,
    start_cli,
    wait_until,
    write_job_csv,
)

FAULTS = {"error_rate": 0.1, "throttle_rate": 0.05, "drop_after": 0.05, "drop_before": 0.05,
          "seed": 99}


def _db_files(folder: Path) -> dict[str, bytes]:
    """The raw bytes of every file of the database folder (db, -wal, -shm, journals)."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def _leaks(key: str, texts: dict[str, str | bytes]) -> list[str]:
    needle = key.encode()
    return [name for name, text in texts.items()
            if needle in (text.encode() if isinstance(text, str) else text)]


def test_api_key_appears_in_no_output_database_file_report_or_status(
    sandbox_factory: SandboxFactory, tmp_path: Path,
) -> None:
    """With a distinctive key, -vv logging, faults, failed rows and a killed run: the key's
    bytes are in none of stdout/stderr, the db/-wal/-shm files, the JSON and CSV reports and
    `status --json`."""
    key = f"sk-unique-XYZ{secrets.token_hex(12)}"
    sandbox = sandbox_factory(api_key=key, **FAULTS)
    rows = realistic_rows(16, tag="secret")
    rows += [{"action": "transfer_site", "key": "nowhere", "site": "@secret-c001",
              "to_account": UNKNOWN_ACCOUNT, "depends_on": "@secret-c001-team"},
             {"action": "site_invite", "key": "bounce", "site": "@secret-c001",
              "email": f"someone@{BOUNCE_DOMAIN}", "role": "Website Manager"}]
    job = str(write_job_csv(tmp_path / "job.csv", rows))
    db_folder = tmp_path / "db"
    db_folder.mkdir()
    db = db_folder / "bulkops.db"
    env = cli_env(api_key=key)
    run = ["run", job, "-vv", *fast_run_flags(db, sandbox.base_url)]
    seen: dict[str, str | bytes] = {}

    killed = start_cli(run, env)
    try:
        assert wait_until(lambda: request_count(sandbox.base_url) >= 8, timeout=30)
        crashed = killed.kill()
    finally:
        killed.ensure_stopped()
    seen.update({"killed stdout": crashed.stdout, "killed stderr": crashed.stderr})
    after_kill = _db_files(db_folder)
    assert any(name.endswith("-wal") for name in after_kill), sorted(after_kill)
    seen.update({f"after kill: {name}": data for name, data in after_kill.items()})

    finished = run_cli(run, env, timeout=60)
    assert finished.returncode == 1, finished.stdout + finished.stderr  # the two failing rows
    assert "DEBUG" in finished.stderr or "debug" in finished.stderr.lower()
    seen.update({"run stdout": finished.stdout, "run stderr": finished.stderr})

    csv_report = tmp_path / "report.csv"
    readers = {
        "report json": ["report", "--format", "json", "--db", str(db)],
        "report csv file": ["report", "--format", "csv", "--db", str(db), "-o", str(csv_report)],
        "status": ["status", "--json", "--db", str(db)],
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_cli, args, env, 30) for name, args in readers.items()}
    for name, future in futures.items():
        result = future.result()
        assert result.returncode == 0, f"{name}: {result.stderr}"
        seen.update({f"{name} stdout": result.stdout, f"{name} stderr": result.stderr})
    seen["report csv file"] = csv_report.read_bytes()
    seen.update({f"at end: {name}": data for name, data in _db_files(db_folder).items()})

    assert '"failed": 2' in str(seen["status stdout"])  # the failing rows were recorded
    assert _leaks(key, seen) == []


def test_refused_key_appears_nowhere_in_the_output(
    sandbox_factory: SandboxFactory, tmp_path: Path,
) -> None:
    """A key Wix refuses is not echoed back in the error line or the -vv log."""
    sandbox = sandbox_factory()
    wrong_key = f"sk-unique-WRONG{secrets.token_hex(12)}"
    job = str(write_job_csv(tmp_path / "job.csv", realistic_rows(3, tag="refused")))
    db_folder = tmp_path / "db"
    db_folder.mkdir()
    result = run_cli(["run", job, "-vv", *fast_run_flags(db_folder / "b.db", sandbox.base_url)],
                     cli_env(api_key=wrong_key), timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    texts: dict[str, str | bytes] = {"stdout": result.stdout, "stderr": result.stderr}
    texts.update(_db_files(db_folder))
    assert _leaks(wrong_key, texts) == []
