"""Run the long exactly-once chaos matrix and print its per-case lines and summary table.

    python scripts/chaos_report.py [--seed N] [--cases 60] [--rows 48]

Each case runs a job (new sites moved and shared, domains connected to seeded Premium sites:
pointing, nameservers, a subdomain, a primary; DNS records set in the nameservers domain's zone;
rows made to fail) against a `bulkops sandbox` process that injects a mix of faults on every
endpoint, the domain calls included (dropped connections before and after the effect, slow
answers, 5xx, 429 with and without Retry-After, listing lag), kills `bulkops` one to three
times, finishes the job, and checks the sandbox for duplicate sites and transfers, domains
connected to the wrong site or otherwise than asked, DNS records not exactly as asked (or zone
updates refused as blind repeats), connect rows reported without their registrar records,
lost rows, and report rows that disagree with it; duplicate invite e-mails are counted. This is
`pytest -m chaos -s` on tests/acceptance/test_chaos.py; the exit status is pytest's (0: every
promise held).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAOS_TESTS = ROOT / "tests" / "acceptance" / "test_chaos.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, help="replay the draws of an earlier run")
    parser.add_argument("--cases", type=int, default=60, help="cases to run (at least 9)")
    parser.add_argument("--rows", type=int, default=48,
                        help="rows of each case's job besides its 10 domain rows and 3 rows "
                             "made to fail")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env["BULKOPS_CHAOS_CASES"] = str(args.cases)
    env["BULKOPS_CHAOS_ROWS"] = str(args.rows)
    if args.seed is not None:
        env["BULKOPS_CHAOS_SEED"] = str(args.seed)
    command = [sys.executable, "-m", "pytest", str(CHAOS_TESTS), "-m", "chaos", "-s", "-q",
               "-p", "no:cacheprovider"]
    return subprocess.call(command, env=env, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
