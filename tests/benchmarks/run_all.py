"""Every benchmark, one after the other, each figure beside its reference or target.

    python tests/benchmarks/run_all.py            # the issue's sizes: about half an hour
    python tests/benchmarks/run_all.py --quick    # smaller sizes, a few minutes: a smoke run

The engine against a bare aiohttp loop (`bench_engine.py`), then a large job through the CLI
(`bench_scale.py`), then the sandbox as its world grows (`bench_sandbox.py`). Not part of
`pytest`: timings depend on the machine, and on what else it is doing, so they are printed
for a person to read, not asserted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_engine
import bench_sandbox
import bench_scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="5,000 creates, one pair; a 100,000-row file, one repeat; "
                             "20,000 sites")
    args = parser.parse_args(argv)
    engine_args = ["--rows", "5000", "--pairs", "1", "--latency-rows", "2000"] if args.quick \
        else []
    scale_args = ["--rows", "100000", "--repeat", "1"] if args.quick else []
    sandbox_args = ["--sites", "20000", "--creates", "1000"] if args.quick else []
    status = bench_engine.main(engine_args)
    print()
    status = status or bench_scale.main(scale_args)
    print()
    return status or bench_sandbox.main(sandbox_args)


if __name__ == "__main__":
    sys.exit(main())
