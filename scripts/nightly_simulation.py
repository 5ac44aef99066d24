"""Three nights of one agency file, run as cron would run it, against a `bulkops sandbox`.

    python scripts/nightly_simulation.py [--html report.html]

- night 1: 40 rows, two of them bad (an invitee Wix refuses, an unknown target account: both
  only Wix can tell, so they fail at Wix rather than before sending);
- night 2: the file grown to 60 rows and both bad rows fixed; Wix goes away for 6 seconds in
  the middle of the run (the sandbox is stopped, then started again on its saved world);
- night 3: the file grown to 100 rows, with `--finish-by 4s` at 10 requests/s: the deadline
  comes first and the rest waits for the next night.

Prints each night's exit code and summary, then `bulkops jobs`, and the sandbox's own count of
duplicate sites and invite e-mails. `--html` writes the last night's HTML report there.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "acceptance"))

from harness import (  # noqa: E402  (after the path is set)
    BOUNCE_DOMAIN,
    UNKNOWN_ACCOUNT,
    cli_env,
    fast_run_flags,
    free_port,
    realistic_rows,
    request_count,
    run_cli,
    start_cli,
    start_sandbox,
    wait_until,
    write_job_csv,
)


def _show(night: str, result: object) -> None:
    code = getattr(result, "returncode", None)
    print(f"\n=== {night}: exit {code}")
    for line in str(getattr(result, "stdout", "")).splitlines():
        print(f"  {line}")
    for line in str(getattr(result, "stderr", "")).splitlines():
        if line.startswith(("stopped:", "warning:", "continue with:", "error:", "Traceback")) \
                or code not in (0, 1, 3):
            print(f"  (stderr) {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--html", help="write the last night's HTML report here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = cli_env(XDG_DATA_HOME=str(work / "data"))
        db, world, port = work / "agency.db", work / "wix.json", free_port()
        rows = realistic_rows(100, tag="night")
        invite = next(i for i, row in enumerate(rows) if row["action"] == "site_invite")
        move = next(i for i, row in enumerate(rows) if row["action"] == "transfer_site")
        first_night = list(rows[:40])
        first_night[invite] = dict(rows[invite], email=f"owner@{BOUNCE_DOMAIN}")  # refused
        first_night[move] = dict(rows[move], to_account=UNKNOWN_ACCOUNT)  # no such account
        job = work / "clients.csv"
        sandbox = start_sandbox(port=port, state_file=world)
        try:
            flags = fast_run_flags(db, sandbox.base_url, rate="10/s", max_attempts=4)
            write_job_csv(job, first_night)
            _show("night 1 (40 rows, 2 bad)", run_cli(["run", str(job), *flags], env, 120))

            write_job_csv(job, rows[:60])
            baseline = request_count(sandbox.base_url)
            cli = start_cli(["run", str(job), *flags, "--progress-interval", "1"], env)
            wait_until(lambda: request_count(sandbox.base_url) >= baseline + 15, timeout=60)
            sandbox.stop()
            time.sleep(6.0)
            sandbox = start_sandbox(port=port, state_file=world)
            night2 = cli.wait(timeout=120)
            _show("night 2 (60 rows, fixed; Wix away for 6 s)", night2)
            paused = [line for line in night2.stderr.splitlines() if "paused:" in line]
            print(f"  (progress while Wix was away) {paused[0] if paused else 'none'}")

            write_job_csv(job, rows)
            _show("night 3 (100 rows; --finish-by 4s)",
                  run_cli(["run", str(job), *flags, "--finish-by", "4s"], env, 120))
            jobs = run_cli(["jobs", "--db", str(db)], env, 60)
            print("\n=== bulkops jobs\n" + jobs.stdout)
            state = sandbox.state()
            print(f"sandbox: {state['duplicate_sites']} duplicate sites, "
                  f"{state['duplicate_invite_emails']} duplicate invite e-mails")
            if args.html:
                report = run_cli(["report", "--format", "html", "-o", args.html, "--db",
                                  str(db)], env, 60)
                print(f"html report: exit {report.returncode}, {args.html}")
        finally:
            sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
