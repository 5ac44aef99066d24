"""Scaling out: rows per second of 1, 2 and 4 `bulkops worker` processes sharing one job.

    python tests/benchmarks/bench_workers.py                 # PostgreSQL at 127.0.0.1:5432
    python tests/benchmarks/bench_workers.py --db sqlite     # one SQLite file instead

The sandbox answers every request after `--latency` seconds (100 ms) and has no rate limit;
each worker keeps `--concurrency` requests in flight (4) at an unlimited --rate. So one worker
can do at most concurrency / latency rows a second, and the 2-core machine is not the limit:
N workers should come near N times one. Per worker count: a fresh database (a schema of its
own on PostgreSQL, dropped after), a fresh sandbox, `bulkops submit` of `--rows` create_site
rows, the workers started together with --until-idle. Rows per second are read from the
sandbox: the job's rows over the span from its first request to its last.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: pgserver

from common import bulkops_command, cli_env, figure, run_cli, sandbox, scratch
from pgserver import pg_admin_url, pg_schema

TARGETS = {2: 1.8, 4: 3.4}  # rows per second against one worker's


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--latency", type=float, default=0.1, help="sandbox answer delay, s")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight a worker")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    if args.db == "postgresql" and pg_admin_url()[0] is None:
        print(f"PostgreSQL: {pg_admin_url()[1]}; use --db sqlite")
        return 2
    ceiling = args.concurrency / args.latency
    print(f"{args.rows:,} create_site rows, {args.latency * 1000:.0f} ms answers, "
          f"--concurrency {args.concurrency} per worker ({ceiling:.0f} rows/s a worker at "
          f"most), {args.db}, {args.repeat} repeat(s): min / median / max\n")
    rates: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(args.repeat):
        for n in counts:
            rates[n].append(measure(n, args))
    one = statistics.median(rates[counts[0]]) if counts[0] == 1 else None
    for n in counts:
        value = " / ".join(f"{rate:,.1f}" for rate in
                           (min(rates[n]), statistics.median(rates[n]), max(rates[n])))
        target = TARGETS.get(n)
        if one is None or n == 1:
            print(figure(f"{n} worker(s): rows/s", value, f"ceiling {ceiling * n:.0f}"))
            continue
        ratio = statistics.median(rates[n]) / one
        print(figure(f"{n} workers: rows/s", value,
                     f"{ratio:.2f}x one worker" + (f", target >= {target}x" if target else ""),
                     ok=ratio >= target if target else None))
    return 0


def measure(workers: int, args: argparse.Namespace) -> float:
    """Rows per second of `workers` workers on a new job of `args.rows` creates."""
    with scratch() as work, database(args.db, Path(work)) as db, \
            sandbox("--latency", str(args.latency)) as box:
        job = Path(work) / "sites.csv"
        with job.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["action", "key", "site_name"])
            for i in range(args.rows):
                writer.writerow(["create_site", f"s{i}", f"Scale-out site {i:05d}"])
        submitted = run_cli(["submit", str(job), "--db", db, "--base-url", box.base_url])
        if submitted.returncode != 0:
            raise RuntimeError(f"submit failed: {submitted.stderr}")
        flags = ["--until-idle", "--db", db, "--concurrency", str(args.concurrency),
                 "--rate", "1000000/s", "--poll", "0.2"]
        started = [subprocess.Popen([*bulkops_command(), "worker", *flags], env=cli_env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                   for _ in range(workers)]
        for process in started:
            _, err = process.communicate(timeout=3600)
            if process.returncode != 0:
                raise RuntimeError(f"a worker exited {process.returncode}: {err.decode()}")
        stats = box.stats()
        creates = int(stats["by_endpoint"].get("create_site", 0))
        if creates != args.rows:
            raise RuntimeError(f"{creates} creates for {args.rows} rows")
        span = float(stats["last_request_at"]) - float(stats["first_request_at"])
        time.sleep(0.2)
        return args.rows / span


@contextlib.contextmanager
def database(kind: str, work: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield str(work / "workers.db")
        return
    admin = pg_admin_url()[0]
    assert admin is not None
    with pg_schema(admin, prefix="bulkops_bench") as url:
        yield url


if __name__ == "__main__":
    sys.exit(main())
