"""A file large enough for the first pass's helper processes (`rowcheckers`), through the CLI:
its problems named as for any file, nothing printed by the helpers, and Ctrl-C ending the
command and its helpers together."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from harness import (
    bulkops_command,
    cli_env,
    fast_run_flags,
    mutating_calls,
    realistic_rows,
    run_cli,
    running_sandbox,
    start_cli,
    wait_until,
    write_job_csv,
)
from processes import ONLY_WITH_PROC, live_processes

from bulkops import jobfile, rowcheckers
from bulkops.errors import JobFileError
from bulkops.jobreaders import JobFormat

ROWS = 60_000  # about 6 MB: over `HELPER_FROM_BYTES`


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = realistic_rows(ROWS, tag="big")
    # A few bad rows far apart: each one in another helper's batch.
    rows[7_000]["email"] = "not-an-email"
    rows[23_000]["key"] = rows[22_990]["key"]  # a duplicate key
    rows[41_000]["site"] = "@nowhere"  # a reference to no row of the file
    rows[59_000]["action"] = "make_site"
    path = write_job_csv(tmp_path_factory.mktemp("large") / "large.csv", rows)
    assert path.stat().st_size >= rowcheckers.HELPER_FROM_BYTES
    return path


def one_process_problems(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The problems of `path` as the one-process pass words them, as the CLI prints them."""
    monkeypatch.setattr(rowcheckers, "HELPER_FROM_BYTES", 1 << 62)
    with pytest.raises(JobFileError) as info:
        jobfile.validate(path)
    return [f"{path}: {error}" for error in info.value.errors]


def test_a_large_file_s_problems_are_named_as_for_any_file(
    large: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = run_cli(["validate", str(large)], cli_env(), timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    expected = one_process_problems(large, monkeypatch)
    for line in (7_002, 23_002, 41_002, 59_002):  # each bad row (a header, then row 0)
        assert any(f": line {line}," in problem for problem in expected), line
    assert lines[:-1] == expected  # nothing else: no helper wrote to the terminal
    assert lines[-1] == f"error: {len(expected)} problem(s) in {large}; nothing was sent"


@ONLY_WITH_PROC
def test_ctrl_c_ends_a_helped_pass_and_its_helpers_without_a_traceback(large: Path) -> None:
    # Its own process group, as a terminal's foreground job: Ctrl-C goes to all of the group.
    process = subprocess.Popen(
        [*bulkops_command(), "validate", str(large)], env=cli_env(), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: len(_helpers(large)) == rowcheckers.HELPERS, timeout=30)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert b"Traceback" not in err and b"Error" not in err, err
    assert wait_until(lambda: not _helpers(large), timeout=10)


@ONLY_WITH_PROC
def test_sigterm_to_the_command_alone_ends_the_pass_and_its_helpers_with_130(large: Path) -> None:
    # `kill PID`, as a supervisor or a cron wrapper stops a command: the contract's 130, as
    # for Ctrl-C, not SIGTERM's bare 143, and no helper left behind.
    process = subprocess.Popen(
        [*bulkops_command(), "validate", str(large)], env=cli_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: len(_helpers(large)) == rowcheckers.HELPERS, timeout=30)
        process.terminate()
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert err.decode().split() == ["interrupted"], err
    assert wait_until(lambda: not _helpers(large), timeout=10)


def test_two_ctrl_cs_while_the_job_is_stored_end_the_run_at_once(tmp_path: Path) -> None:
    # The second signal aborts: the job's transaction is cancelled mid-load. The connection it
    # was on is closed by a task that once held the process for ever (`loop._end_leftovers`).
    job = write_job_csv(tmp_path / "load.csv", realistic_rows(ROWS, tag="load"))
    db = tmp_path / "jobs.db"
    wal = tmp_path / "jobs.db-wal"
    with running_sandbox() as sandbox:
        cli = start_cli(["run", str(job), *fast_run_flags(db, sandbox.base_url)], cli_env())
        try:
            # Rows are going into the database: the load's transaction is open.
            assert wait_until(lambda: wal.exists() and wal.stat().st_size > 2_000_000,
                              timeout=60, interval=0.005), "the load never began"
            cli.send(signal.SIGINT)
            time.sleep(0.05)
            cli.send(signal.SIGINT)
            done = cli.wait(30)
        finally:
            cli.ensure_stopped()
        assert sum(mutating_calls(sandbox).values()) == 0  # nothing was sent
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "second signal" in done.stderr
    with sqlite3.connect(db) as conn:  # rolled back whole, or stored whole
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = conn.execute("SELECT count(*) FROM ops").fetchone()[0]
    assert stored in (0, ROWS)


def _helpers(job: Path) -> list[int]:
    """The live helper processes checking `job`."""
    return live_processes("bulkops.rowcheckers", str(job))


def test_the_helpers_finish_a_file_this_large_themselves(large: Path) -> None:
    """No fallback hides in the first test: the helpers take this file to its end (a helper
    that could not would raise HelpersLost here)."""
    items = rowcheckers.helped_items(large, JobFormat.CSV)
    assert sum(1 for _ in items) == ROWS + 1  # the rows and the header
