"""A million-row job through the installed CLI: validate, load, resume, status, jobs, report.

The job file is a generated CSV of client onboardings, ten rows a client, in about the
proportions of `jobs/onboarding.csv`: three create_site (two with a key, one whose key is
derived from its content), two site_invite naming a site as `@key`, an account_invite limited
to both sites, a connect_domain (nameservers) on the main site, an MX set_dns_record of that
domain (which waits for the connect by itself), and two transfer_site: one `depends_on` the
owner's invite and the domain, one with a derived key. Every command runs as a subprocess of the
`bulkops` console script, with a fresh SQLite checkpoint file where one is made.

What is measured, and how (seconds are wall seconds, RSS is the peak resident set of that one
process, read with wait4; every timing is repeated `--repeat` times and shown min / median / max):

- validate: `bulkops validate big.csv`, to its exit.
- load to the first request: `bulkops run big.csv --db NEW --base-url SANDBOX --rate 1000000/s`
  against a `bulkops sandbox` without a rate limit. The clock starts when the process is
  spawned and stops when the sandbox's first request arrives (`first_request_at` of
  GET /_sandbox/stats, both on CLOCK_MONOTONIC, which Linux shares between processes). The
  first request a run makes is the role-list read that starts the checks before sending, and
  it is made once the job is stored: so this is parse + validate + load. The first *write*
  (a Create Site) comes after those checks have read the rows to do back; it is shown too
  (polled every 50 ms). The run is then stopped with SIGTERM (exit 130, progress saved) and
  its RSS and the database's size (main file plus WAL) are read.
- resume of a half-done job to its first request: the loaded database of the last load, with
  the first half of the ops (in input order) marked succeeded by SQL, as a run that got
  half-way would have left them (creates with a site id, invites with an invite id), then
  `bulkops resume JOB` measured like the load. Running 500,000 requests through the sandbox
  to get there honestly would take minutes per repeat and test the engine, not resume.
- status / jobs: `bulkops status JOB --db DB` and `bulkops jobs --db DB` on that database.
- report: `bulkops report JOB --format csv|json|html -o OUT`; rows per second of the whole
  command (html: of the job's rows, which its counts cover; it lists only failed and blocked
  ones) and its peak RSS (bounded: it must not grow with the job).

Usage: python tests/benchmarks/bench_scale.py [--rows 1000000] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    TEMPLATE_ID,
    Sandbox,
    Watched,
    bulkops_command,
    cli_env,
    figure,
    run_alone,
    sandbox,
    scratch,
    spread,
)

from bulkops.sandbox.config import DEMO_SITES

ROWS_PER_CLIENT = 10
SUB_ACCOUNT = "22222222-2222-4222-8222-222222222221"
HEADER = ("action", "key", "site_name", "template_id", "site", "to_account", "email", "role",
          "sites", "depends_on", "domain", "connection", "record_type", "host", "values", "ttl")
WRITES = ("create_site", "transfer_site", "account_invite", "site_invite_bulk",
          "create_connected_domain", "update_dns_zone")
# Targets (seconds, MB, rows per second).
VALIDATE_LOAD_S, PEAK_MB, DB_MB, RESUME_S, VIEW_S, REPORT_RATE = 20.0, 250.0, 250.0, 2.0, 0.5, 2e5


PREMIUM_SITES = tuple(site.id for site in DEMO_SITES)


def client_rows(n: int) -> list[tuple[str, ...]]:
    """The ten rows of client `n`, in HEADER's column order."""
    domain = f"client{n}.com"
    main, shop = f"@site-{n}", f"@shop-{n}"

    def row(**cells: str) -> tuple[str, ...]:
        return tuple(cells.get(name, "") for name in HEADER)

    return [
        row(action="create_site", key=f"site-{n}", site_name=f"Client {n} Studio",
            template_id=TEMPLATE_ID),
        row(action="create_site", key=f"shop-{n}", site_name=f"Client {n} Shop",
            template_id=TEMPLATE_ID),
        row(action="create_site", site_name=f"Client {n} Blog"),
        row(action="site_invite", key=f"owner-{n}", site=main, email=f"owner{n}@{domain}",
            role="Website Manager"),
        row(action="site_invite", site=shop, email=f"owner{n}@{domain}", role="Website Manager"),
        row(action="account_invite", key=f"team-{n}", email=f"team{n}@agency.example.com",
            role="Website Manager", sites=f"{main};{shop}"),
        # On a live site with Premium (the sandbox's demo sites): a site the file creates has
        # no Premium yet, and the checks before the first write refuse its domain.
        row(action="connect_domain", key=f"domain-{n}", site=PREMIUM_SITES[n % 3],
            domain=domain, connection="nameservers"),
        row(action="set_dns_record", domain=domain, record_type="MX", host=domain,
            values=f"10 mx1.{domain};20 mx2.{domain}", ttl="3600"),
        # After the team member's invite, which names the sites while they are still here.
        row(action="transfer_site", key=f"move-{n}", site=main, to_account=SUB_ACCOUNT,
            depends_on=f"@owner-{n};@domain-{n};@team-{n}"),
        row(action="transfer_site", site=shop, to_account=SUB_ACCOUNT, depends_on=f"@team-{n}"),
    ]


def write_job(path: Path, rows: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        written, n = 0, 0
        while written < rows:
            batch = client_rows(n)[: rows - written]
            writer.writerows(batch)
            written += len(batch)
            n += 1
    return path


def db_size_mb(db: Path) -> float:
    wal = db.with_name(db.name + "-wal")
    return (db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)) / 1e6


def until_first_request(box: Sandbox, args: Sequence[str], give_up: float = 600.0
                        ) -> tuple[float, float | None, Watched]:
    """Spawn `bulkops ARGS`; (seconds to the sandbox's first request, seconds to its first
    write or None, the process measured after SIGTERM)."""
    box.reset()
    started = time.monotonic()
    process = subprocess.Popen([*bulkops_command(), *args], env=cli_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL)
    first: float | None = None
    write: float | None = None
    ended = None  # (wait status, rusage) once the process has exited by itself
    while time.monotonic() - started < give_up:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            ended = status, usage
            break
        stats = box.get("/_sandbox/stats")
        if first is None and stats["first_request_at"] is not None:
            first = stats["first_request_at"] - started
        if any(stats["by_endpoint"].get(name) for name in WRITES):
            write = time.monotonic() - started
            break
        time.sleep(0.05)
    if ended is None:
        process.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(process.pid, 0)
    else:
        status, usage = ended
    process.returncode = os.waitstatus_to_exitcode(status)
    watched = Watched(time.monotonic() - started, process.returncode, usage.ru_maxrss / 1024)
    if first is None:
        raise RuntimeError(f"bulkops {' '.join(args)}: no request (exit {watched.returncode})")
    return first, write, watched


def half_done(db: Path) -> str:
    """Mark the first half of the job's ops succeeded, as a run half-way would have; its id."""
    with sqlite3.connect(db) as conn:
        job_id, total = conn.execute("SELECT job_id, total FROM jobs").fetchone()
        conn.execute(
            "UPDATE ops SET state = 'succeeded', attempts = 1, lease_owner = NULL,"
            " not_before = NULL,"
            " site_id = CASE WHEN action IN ('create_site', 'transfer_site')"
            "   THEN printf('%08x-0000-4000-8000-%012x', op_id, op_id) END,"
            " invite_id = CASE WHEN action LIKE '%invite'"
            "   THEN printf('inv-%d', op_id) END"
            " WHERE job_id = ? AND seq < ?", (job_id, total // 2))
        conn.execute("UPDATE ops SET state = 'pending', lease_owner = NULL, not_before = NULL"
                     " WHERE job_id = ? AND seq >= ?", (job_id, total // 2))
        conn.execute("UPDATE jobs SET state = 'interrupted', lease_owner = NULL,"
                     " lease_expires_at = NULL")
    return str(job_id)


def timed(repeat: int, once: Callable[[], Watched]) -> list[Watched]:
    return [once() for _ in range(repeat)]


def show_timed(name: str, runs: list[Watched], target_s: float | None,
               target_mb: float | None = PEAK_MB) -> None:
    seconds = [run.seconds for run in runs]
    ok = None if target_s is None else median(seconds) < target_s
    print(figure(f"{name} (s)", spread(seconds),
                 f"target < {target_s:g} s" if target_s else "", ok))
    peaks = [run.peak_rss_mb for run in runs]
    if target_mb is not None:
        print(figure(f"{name} peak RSS (MB)", spread(peaks), f"target < {target_mb:g} MB",
                     max(peaks) < target_mb))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this directory and keep its files (default: a temp dir)")
    parser.add_argument("--skip", default="", help="comma-separated: validate,load,resume,"
                                                   "views,report")
    options = parser.parse_args(argv)
    # An installed package has its bytecode compiled; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE would compile every module on each command instead (~0.2 s).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    skip = set(filter(None, options.skip.split(",")))
    with scratch() as temp:
        work = options.keep or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        run_benchmarks(work, options.rows, options.repeat, skip)
    return 0


def run_benchmarks(work: Path, rows: int, repeat: int, skip: set[str]) -> None:
    job = work / "big.csv"
    if not job.exists() or sum(1 for _ in job.open("rb")) != rows + 1:
        started = time.perf_counter()
        write_job(job, rows)
        print(f"wrote {job} ({rows:,} rows, {job.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - started:.1f} s")
    print(f"{rows:,} rows, {repeat} repeat(s), min / median / max\n")
    if "validate" not in skip:
        runs = timed(repeat, lambda: run_alone(["validate", str(job)]))
        if any(run.returncode for run in runs):
            raise RuntimeError(f"validate failed: exit {runs[0].returncode}")
        show_timed("validate", runs, None)
    db = work / "load.db"
    with sandbox("--demo-sites") as box:
        if "load" not in skip or not db.exists():
            measure_load(box, job, db, repeat)
        job_id = half_done(db)
        if "resume" not in skip:
            measure_resume(box, db, job_id, repeat)
    if "views" not in skip:
        for args in (["status", job_id], ["status", job_id, "--json"], ["jobs"]):
            show_timed(" ".join(args[:1] + args[2:]), timed(repeat, lambda args=args: run_alone(
                [*args, "--db", str(db)])), VIEW_S, None)
    if "report" not in skip:
        for fmt in ("csv", "json", "html"):
            measure_report(work, db, job_id, fmt, rows, repeat)


def show_first(name: str, firsts: list[float], writes: list[float | None], target: float
               ) -> None:
    print(figure(f"{name} to first request (s)", spread(firsts), f"target < {target:g} s",
                 median(firsts) < target))
    written = [w for w in writes if w is not None]
    if len(written) == len(writes):
        print(figure("  ... to the first write (s)", spread(written), ""))


def measure_load(box: Sandbox, job: Path, db: Path, repeat: int) -> None:
    firsts: list[float] = []
    writes: list[float | None] = []
    sizes, peaks = [], []
    for _ in range(repeat):
        for stale in db.parent.glob(db.name + "*"):
            stale.unlink()
        first, write, watched = until_first_request(box, [
            "run", str(job), "--db", str(db), "--base-url", box.base_url, "--rate", "1000000/s"])
        firsts.append(first)
        writes.append(write)
        peaks.append(watched.peak_rss_mb)
        sizes.append(db_size_mb(db))
    show_first("validate + load", firsts, writes, VALIDATE_LOAD_S)
    print(figure("run peak RSS (MB)", spread(peaks), f"target < {PEAK_MB:g} MB",
                 max(peaks) < PEAK_MB))
    print(figure("database file (MB)", spread(sizes), f"target < {DB_MB:g} MB",
                 max(sizes) < DB_MB))


def measure_resume(box: Sandbox, db: Path, job_id: str, repeat: int) -> None:
    firsts: list[float] = []
    writes: list[float | None] = []
    for _ in range(repeat):
        half_done(db)
        first, write, _ = until_first_request(box, [
            "resume", job_id, "--db", str(db), "--base-url", box.base_url, "--rate",
            "1000000/s"])
        firsts.append(first)
        writes.append(write)
    show_first("resume half-done", firsts, writes, RESUME_S)
    half_done(db)


def measure_report(work: Path, db: Path, job_id: str, fmt: str, rows: int, repeat: int
                   ) -> None:
    out = work / f"report.{fmt}"
    runs = timed(repeat, lambda: run_alone(
        ["report", job_id, "--format", fmt, "--db", str(db), "-o", str(out)]))
    if any(run.returncode for run in runs):
        raise RuntimeError(f"report --format {fmt}: exit {runs[0].returncode}")
    rates = [rows / run.seconds for run in runs]
    print(figure(f"report --format {fmt} (rows/s)", spread(rates),
                 f"target >= {REPORT_RATE:,.0f}/s", median(rates) >= REPORT_RATE))
    print(figure(f"report --format {fmt} peak RSS (MB)",
                 spread([run.peak_rss_mb for run in runs]), "bounded (not per row)"))


if __name__ == "__main__":
    sys.exit(main())
