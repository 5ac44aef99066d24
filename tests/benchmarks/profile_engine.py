"""Where a run's client CPU goes: `bulkops run` of N creates under cProfile, by function.

    python tests/benchmarks/profile_engine.py                 # 20,000 creates, 64 in flight
    python tests/benchmarks/profile_engine.py --rows 5000 --top 30

The run is the one `bench_engine.py` measures (a sandbox subprocess with no rate limit and no
latency, `--concurrency 64 --rate 1000000/s`, a new SQLite checkpoint), run in a subprocess
under cProfile timed by CPU time (`time.process_time`), its event loop's thread only. Printed:
the share of that CPU spent in each function's own code (its callees excluded), the largest
first, and the shares by package: bulkops, aiohttp (with yarl and multidict), the event loop,
SQLite's driver, JSON, the rest. cProfile adds its own cost to every call, more to many small
ones: shares, not times, are what it tells. Loading the job and the checks before the first
write are in it too (the first second or so of a run of 20,000 rows).
"""

from __future__ import annotations

import argparse
import pstats
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cli_env, sandbox, scratch, write_creates

# `bulkops run ARGS` under cProfile on CPU time, its statistics written to the first argument.
PROFILED_RUN = textwrap.dedent('''
    import cProfile, runpy, sys, time
    out = sys.argv[1]
    sys.argv = ["bulkops", *sys.argv[2:]]
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        runpy.run_module("bulkops", run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.disable()
        profile.dump_stats(out)
''')

# Package of a function, by its file: the first that matches.
_PACKAGES = (
    ("/bulkops/", "bulkops"),
    ("/aiohttp/", "aiohttp"), ("/yarl/", "aiohttp"), ("/multidict/", "aiohttp"),
    ("/asyncio/", "event loop"), ("uvloop", "event loop"),
    ("/sqlite3/", "SQLite driver"), ("sqlite3.", "SQLite driver"),
    ("/json/", "JSON"), ("_json", "JSON"),
)


def package(where: str) -> str:
    for marker, name in _PACKAGES:
        if marker in where:
            return name
    return "other"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    with scratch() as tmp:
        job = write_creates(Path(tmp) / "creates.csv", args.rows)
        stats_file = Path(tmp) / "run.prof"
        with sandbox() as box:
            subprocess.run([sys.executable, "-c", PROFILED_RUN, str(stats_file), "run", str(job),
                            "--db", str(Path(tmp) / "p.db"), "--base-url", box.base_url,
                            "--concurrency", str(args.concurrency), "--rate", "1000000/s"],
                           env=cli_env(), check=True, capture_output=True)
        stats = pstats.Stats(str(stats_file))
    own: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    for (file, line, name), (_, _, own_seconds, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{name} ({file}:{line})"
        own[where] += own_seconds
        by_package[package(f"{file} {name}")] += own_seconds
    total = sum(own.values())
    print(f"{args.rows:,} creates, --concurrency {args.concurrency}: {total:.2f} s of CPU "
          "profiled (cProfile, the loop's thread)")
    print("by package (own time): " + ", ".join(
        f"{name} {seconds / total:.1%}" for name, seconds in by_package.most_common()))
    print("largest functions (own time, callees excluded):")
    for where, seconds in own.most_common(args.top):
        print(f"  {seconds / total:6.1%}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
