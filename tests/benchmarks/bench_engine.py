"""The engine against the raw HTTP ceiling: `bulkops run` beside a bare aiohttp loop.

    python tests/benchmarks/bench_engine.py                 # 20,000 creates, 3 pairs
    python tests/benchmarks/bench_engine.py --rows 5000 --pairs 1

Both send the same N Create Site requests (`POST /funnel/projects/v1/create`) to the same
sandbox process (no rate limit, no latency), alternating, each pair on a freshly reset world:

- bare loop: `concurrency` tasks on one aiohttp session, each sending the next request as soon
  as its last was answered, nothing recorded; run in a subprocess of its own, on the event loop
  `bulkops run` uses (uvloop when installed: `bulkops.loop`), so both sides pay the same loop;
- bulkops: the installed CLI, `bulkops run JOB --concurrency C --rate 1000000/s` on a new
  SQLite checkpoint, every outcome durably recorded (a write-ahead record before each request,
  the outcome after it).

Rates are the sandbox's own (GET /_sandbox/stats): requests per second between the first and
the last arrival, so both are judged by the same clock. For bulkops that span starts at its
first read of Wix (after the file is read and loaded) and includes the checks before the first
write. CPU per request (user + system, of the client process alone) is printed too: on a
machine shared with other work, wall-clock rates move, CPU per request much less.

The latency-bound case gives the sandbox `--latency 0.05` and compares bulkops' rate with
concurrency / latency, the most any client could reach, and with the bare loop's rate against
that same sandbox, alternating as above. A sandbox that answers each request exactly 50 ms
after it came keeps the requests in waves: a wave's answers come together and are handled one
after the other, and each request's next waits for the ones handled before it. So neither
client reaches concurrency / latency; the bare loop shows how close a client that does nothing
else gets.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ACCOUNT_ID,
    SANDBOX_KEY,
    TEMPLATE_ID,
    Sandbox,
    cli_env,
    cpu_seconds,
    figure,
    run_alone,
    sandbox,
    scratch,
    spread,
    write_creates,
)

from bulkops.loop import loop_name

CREATE_PATH = "/funnel/projects/v1/create"

# The bare loop, as a program of its own: a process whose CPU time is its alone.
BARE_LOOP = textwrap.dedent('''
    import asyncio, resource, sys, time
    import aiohttp
    from bulkops import loop

    base_url, rows, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    headers = {"Authorization": %(key)r, "wix-account-id": %(account)r}

    async def main() -> None:
        left = iter(range(rows))
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(base_url, connector=connector,
                                         headers=headers) as session:
            async def worker() -> None:
                for number in left:
                    body = {"type": "WIX", "name": f"Bare {number}", "templateId": %(template)r}
                    async with session.post(%(path)r, json=body) as answer:
                        await answer.json()
                        if answer.status != 200:
                            raise SystemExit(f"bare loop: HTTP {answer.status}")
            await asyncio.gather(*(worker() for _ in range(concurrency)))

    loop.run(main)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(usage.ru_utime + usage.ru_stime)
''') % {"key": SANDBOX_KEY, "account": ACCOUNT_ID, "template": TEMPLATE_ID, "path": CREATE_PATH}


def sandbox_rate(box: Sandbox) -> float:
    return float(box.stats()["requests_per_second"] or 0.0)


def bare_loop(box: Sandbox, rows: int, concurrency: int) -> tuple[float, float, float]:
    """(requests/s as the sandbox saw them, client CPU µs per request, the sandbox's CPU µs
    per request)."""
    box.reset()
    before = cpu_seconds(box.process.pid) or 0.0
    done = subprocess.run([sys.executable, "-c", BARE_LOOP, box.base_url, str(rows),
                           str(concurrency)], capture_output=True, text=True, check=True)
    served = (cpu_seconds(box.process.pid) or 0.0) - before
    return sandbox_rate(box), float(done.stdout.strip()) / rows * 1e6, served / rows * 1e6


@dataclass(frozen=True)
class Run:
    rate: float  # requests/s as the sandbox saw them
    cpu: float  # client CPU µs per request, start-up and loading included
    seconds: float  # the command, start to exit
    sandbox_cpu: float  # the sandbox's CPU µs per request
    loop_cpu: float  # the client's event-loop (main) thread, CPU µs per request


def bulkops_run(box: Sandbox, job: Path, db: Path, rows: int, concurrency: int) -> Run:
    box.reset()
    for leftover in db.parent.glob(db.name + "*"):
        leftover.unlink()
    before = cpu_seconds(box.process.pid) or 0.0
    ran = run_alone(["run", str(job), "--db", str(db), "--base-url", box.base_url,
                     "--concurrency", str(concurrency), "--rate", "1000000/s"], cli_env(),
                   watch_main_thread=True)
    served = (cpu_seconds(box.process.pid) or 0.0) - before
    if ran.returncode != 0:
        raise RuntimeError(f"bulkops run exited {ran.returncode}")
    return Run(sandbox_rate(box), ran.cpu_seconds / rows * 1e6, ran.seconds,
               served / rows * 1e6, (ran.main_thread_cpu_seconds or 0.0) / rows * 1e6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=3)
    # As many rows as the run at full speed: the reads and checks before the first write are a
    # fixed cost, which a short run would count against the engine's steady rate.
    parser.add_argument("--latency-rows", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args(argv)
    print(f"engine overhead: {args.rows:,} creates, --concurrency {args.concurrency}, "
          f"{args.pairs} alternating pair(s), event loop {loop_name()}, "
          f"{os.cpu_count()} CPUs (min / median / max)")
    with scratch() as tmp:
        job = write_creates(Path(tmp) / "creates.csv", args.rows)
        db = Path(tmp) / "engine.db"
        bare: list[tuple[float, float, float]] = []
        ours: list[Run] = []
        with sandbox() as box:
            for _ in range(args.pairs):
                bare.append(bare_loop(box, args.rows, args.concurrency))
                ours.append(bulkops_run(box, job, db, args.rows, args.concurrency))
        ratios = [o.rate / b[0] for b, o in zip(bare, ours, strict=True)]
        print(figure("bare aiohttp loop, requests/s", spread([b[0] for b in bare]),
                     "the ceiling"))
        print(figure("bulkops run, requests/s", spread([o.rate for o in ours]),
                     "≥ 0.8× the bare loop"))
        print(figure("bulkops / bare loop (paired)", spread(ratios), "≥ 0.80",
                     statistics.median(ratios) >= 0.8))
        print(figure("bare loop, client CPU µs/request", spread([b[1] for b in bare]),
                     "reference"))
        print(figure("bulkops, client CPU µs/request", spread([o.cpu for o in ours]),
                     "loading and start-up included"))
        print(figure("bulkops, event-loop thread CPU µs/request",
                     spread([o.loop_cpu for o in ours]),
                     f"≤ {1e6 / (0.8 * statistics.median([b[0] for b in bare])):,.0f} for 0.8×"
                     " (one thread's second / 0.8× the bare rate)"))
        print(figure("sandbox CPU µs/request: bare loop's run", spread([b[2] for b in bare]),
                     "both processes share the machine's CPUs"))
        print(figure("sandbox CPU µs/request: bulkops' run",
                     spread([o.sandbox_cpu for o in ours]), "reference"))
        print(figure("bulkops run, command seconds", spread([o.seconds for o in ours]),
                     "start to exit, loading included"))

        latency_job = write_creates(Path(tmp) / "latency.csv", args.latency_rows)
        ceiling = args.concurrency / args.latency
        bare_rates: list[float] = []
        rates: list[float] = []
        with sandbox("--latency", str(args.latency)) as box:
            for _ in range(args.pairs):
                bare_rates.append(bare_loop(box, args.latency_rows, args.concurrency)[0])
                rates.append(bulkops_run(box, latency_job, db, args.latency_rows,
                                         args.concurrency).rate)
        print(f"latency-bound: {args.latency_rows:,} creates, sandbox latency "
              f"{args.latency * 1000:.0f} ms, --concurrency {args.concurrency}")
        print(figure("bare aiohttp loop, requests/s", spread(bare_rates),
                     f"reference; concurrency / latency = {ceiling:,.0f}"))
        print(figure("bulkops run, requests/s", spread(rates),
                     f"≥ 0.85 × {ceiling:,.0f} = {0.85 * ceiling:,.0f}",
                     statistics.median(rates) >= 0.85 * ceiling))
        print(figure("bulkops / bare loop (paired)",
                     spread([o / b for b, o in zip(bare_rates, rates, strict=True)]),
                     "reference"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
