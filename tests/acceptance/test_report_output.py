"""Where `report -o` writes: a file replaced only once the report is whole, a symbolic link's
file (the link kept), a FIFO or a device written in place (never replaced by a file), and a
full disk or standard output as one line with exit 2."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from harness import bulkops_command, cli_env, run_cli, write_job_csv

TEMPLATE = "3f0c9a2e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding one finished job of three creates."""
    work = tmp_path_factory.mktemp("report-output")
    job = write_job_csv(work / "job.csv", [
        {"action": "create_site", "key": f"s{n}", "site_name": f"Output {n}",
         "template_id": TEMPLATE} for n in range(3)
    ])
    database = work / "jobs.db"
    ran = run_cli(["run", str(job), "--sandbox", "--db", str(database), "--rate", "100/s"],
                  cli_env())
    assert ran.returncode == 0, ran.stderr
    return database


def report(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["report", "--db", str(db), "--format", "csv", *args], cli_env())


def test_a_link_keeps_pointing_at_its_file_which_gets_the_report(db: Path,
                                                                  tmp_path: Path) -> None:
    target = tmp_path / "target.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    done = report(db, "-o", str(link))
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and link.resolve() == target
    assert target.read_text().splitlines()[0].startswith("action,")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_fifo_is_written_into_not_replaced(db: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    done = report(db, "-o", str(fifo))
    reader.join(timeout=30)
    assert done.returncode == 0, done.stderr
    assert fifo.is_fifo()
    lines = received[0].decode().splitlines()
    assert lines[0].startswith("action,") and len(lines) == 4


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_full_device_is_one_line_and_exit_2_and_stays_a_device(db: Path) -> None:
    done = report(db, "-o", "/dev/full")
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: cannot write the report to /dev/full: "
                                   "No space left on device")
    assert Path("/dev/full").is_char_device()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_standard_output_that_cannot_be_written_is_one_line_and_exit_2(db: Path) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run([*bulkops_command(), "report", "--db", str(db)], env=cli_env(),
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
                              check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: cannot write the report to standard output: "
                                   "No space left on device")


@pytest.mark.parametrize(("name", "flags", "starts"), [
    ("failed.csv", [], "action,"),
    ("FAILED.CSV", [], "action,"),
    (".csv", [], "action,"),  # a name that is only the suffix
    ("page.html", [], "<!DOCTYPE html>"),
    ("page.htm", [], "<!DOCTYPE html>"),
    ("rows.json", [], "["),
    ("rows.txt", [], "["),  # no format of its own: the contract's default
    ("forced.csv", ["--format", "json"], "["),  # a format given wins over the name
])
def test_without_format_the_output_s_name_chooses_it(
    db: Path, tmp_path: Path, name: str, flags: list[str], starts: str
) -> None:
    out = tmp_path / name
    done = run_cli(["report", "--db", str(db), "-o", str(out), *flags], cli_env())
    assert done.returncode == 0, done.stderr
    assert out.read_text().lstrip().upper().startswith(starts.upper())


def test_dev_stdout_appended_to_by_the_shell_keeps_what_the_file_held(
    db: Path, tmp_path: Path
) -> None:
    # `bulkops report -o /dev/stdout >> log`: /dev/stdout leads to the log file itself, which
    # must be written where it stands, not replaced by the report.
    log = tmp_path / "log.txt"
    log.write_text("an earlier line\n")
    with log.open("a") as appended:
        done = subprocess.run([*bulkops_command(), "report", "--db", str(db), "-o", "/dev/stdout"],
                              env=cli_env(), stdout=appended, stderr=subprocess.PIPE, text=True,
                              timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    text = log.read_text()
    assert text.startswith("an earlier line\n[")
    assert text.count('"action"') == 3


def test_a_replaced_report_keeps_the_file_s_permissions(db: Path, tmp_path: Path) -> None:
    private = tmp_path / "private.csv"
    private.write_text("old\n")
    private.chmod(0o600)
    done = report(db, "-o", str(private))
    assert done.returncode == 0, done.stderr
    assert private.read_text().startswith("action,")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_dash_is_standard_output(db: Path, tmp_path: Path) -> None:
    done = run_cli(["report", "--db", str(db), "-o", "-"], cli_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[") and not (tmp_path / "-").exists()
