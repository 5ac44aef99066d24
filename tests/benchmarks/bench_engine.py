"""The engine against the raw HTTP ceiling: `bulkops run` beside a bare aiohttp loop.

Both send the same N Create Site requests (`POST /funnel/projects/v1/create`) to the same
sandbox process (no rate limit, no latency), alternating, each pair on a freshly reset world:

- bare loop: `concurrency` aiohttp tasks on one session, each sending the next request as soon
  as its last was answered, nothing recorded;
- bulkops: the installed CLI, `bulkops run JOB --concurrency C --rate 1000000/s` on a new
  SQLite checkpoint, every outcome durably recorded.

Rates are the sandbox's own (GET /_sandbox/stats): requests per second between the first and
the last arrival, so both are judged by the same clock and the engine's start-up (reading the
file, loading it) is not counted against the send phase; the command's wall time is printed too.
The latency-bound case gives the sandbox 50 ms per answer and compares with concurrency/latency.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ACCOUNT_ID,
    SANDBOX_KEY,
    TEMPLATE_ID,
    Sandbox,
    figure,
    run_cli,
    sandbox,
    scratch,
    spread,
)

CREATE_PATH = "/funnel/projects/v1/create"


async def bare_loop(base_url: str, rows: int, concurrency: int) -> float:
    """Send `rows` creates with `concurrency` workers; the client's own wall seconds."""
    headers = {"Authorization": SANDBOX_KEY, "wix-account-id": ACCOUNT_ID}
    left = iter(range(rows))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url, connector=connector, headers=headers) as session:

        async def worker() -> None:
            for number in left:
                body = {"type": "WIX", "name": f"Bare {number}", "templateId": TEMPLATE_ID}
                async with session.post(CREATE_PATH, json=body) as answer:
                    await answer.json()
                    if answer.status != 200:
                        raise RuntimeError(f"bare loop: HTTP {answer.status}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def write_creates(path: Path, rows: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["action", "key", "site_name", "template_id"])
        for number in range(rows):
            writer.writerow(["create_site", f"c{number:07d}", f"Client {number}", TEMPLATE_ID])
    return path


def sandbox_rate(box: Sandbox) -> float:
    stats = box.stats()
    return float(stats["requests_per_second"] or 0.0)


def one_pair(box: Sandbox, job: Path, db: Path, rows: int, concurrency: int,
             uvloop: bool) -> tuple[float, float, float]:
    """(bare loop req/s, bulkops req/s, bulkops command wall seconds), sandbox-measured."""
    box.reset()
    asyncio.run(bare_loop(box.base_url, rows, concurrency))
    bare = sandbox_rate(box)
    box.reset()
    db.unlink(missing_ok=True)
    ran = run_cli(["run", str(job), "--db", str(db), "--base-url", box.base_url,
                   "--concurrency", str(concurrency), "--rate", "1000000/s"])
    if ran.returncode != 0:
        raise RuntimeError(f"bulkops run exited {ran.returncode}: {ran.stderr[-2000:]}")
    return bare, sandbox_rate(box), ran.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--latency-rows", type=int, default=2_000)
    args = parser.parse_args(argv)
    with scratch() as tmp:
        job = write_creates(Path(tmp) / "creates.csv", args.rows)
        db = Path(tmp) / "engine.db"
        with sandbox() as box:
            pairs = [one_pair(box, job, db, args.rows, args.concurrency, False)
                     for _ in range(args.pairs)]
        bare = [p[0] for p in pairs]
        ours = [p[1] for p in pairs]
        ratios = [p[1] / p[0] for p in pairs]
        print(f"engine overhead: {args.rows:,} creates, --concurrency {args.concurrency}, "
              f"{args.pairs} alternating pairs (min / median / max)")
        print(figure("bare aiohttp loop, requests/s", spread(bare), "the ceiling"))
        print(figure("bulkops run, requests/s", spread(ours), "≥ 0.8× the bare loop"))
        print(figure("bulkops / bare loop", spread(ratios), "≥ 0.80",
                     statistics.median(ratios) >= 0.8))
        print(figure("bulkops run, command wall seconds", spread([p[2] for p in pairs]),
                     "start to exit, loading included"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
