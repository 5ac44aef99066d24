"""How much of a server's rate limit `bulkops run` uses, whatever the server's window.

    python tests/benchmarks/bench_budget.py                # every case, about 30 minutes
    python tests/benchmarks/bench_budget.py --windows 1 10 --pacers even

The sandbox (a `bulkops sandbox` process) admits 10 requests a second as a sliding window of
1 s (10 per 1 s), 10 s (100 per 10 s) or 60 s (600 per 60 s), counting refused requests too.
For each window, `bulkops run` creates sites (`--concurrency 8`, a new SQLite checkpoint) with
- an unknown limit: `--rate 100/s`, ten times the limit, so the budget must find it;
- a known limit: `--rate 10/s`, the limit itself;
once with each local pacer under the adaptive budget (`--pacer even`, the hand-written one;
`--pacer aiolimiter`, the default). Each job is sized to last several windows at the limit.

Figures are the sandbox's own (GET /_sandbox/stats?times=1), from the first request to the
last, the checks before the first write included:
- used: admitted requests per second against the limit (targets: unknown ≥ 80%, known ≥ 97%);
- 429: refused requests among all (targets: unknown < 5%, known < 1%);
- max/s: the most requests that arrived in any 1-second span, against `--rate` (target: at
  most 1.1 × the rate, the first second included).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: windows

from common import Sandbox, cli_env, figure, run_alone, sandbox, scratch, write_creates
from windows import busiest_second

LIMIT_PER_SECOND = 10
UNKNOWN_OVERSHOOT = 10  # --rate as a multiple of the limit when the limit is unknown


@dataclass(frozen=True)
class Case:
    window: float  # seconds of the server's sliding window
    known: bool  # --rate equal to the limit, else ten times it
    pacer: str
    seconds: float  # the job's length at the limit

    @property
    def limit(self) -> int:
        return round(LIMIT_PER_SECOND * self.window)

    @property
    def rate(self) -> int:
        return LIMIT_PER_SECOND * (1 if self.known else UNKNOWN_OVERSHOOT)

    @property
    def min_used(self) -> float:
        return 0.97 if self.known else 0.80

    @property
    def max_throttled(self) -> float:
        return 0.01 if self.known else 0.05


@dataclass(frozen=True)
class Measured:
    case: Case
    returncode: int
    requests: int
    throttled: int
    span: float  # seconds from the first to the last arrival
    max_per_second: int

    @property
    def used(self) -> float:
        admitted = self.requests - self.throttled
        return (admitted - 1) / self.span / LIMIT_PER_SECOND if self.span > 0 else 0.0

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0

    @property
    def passed(self) -> bool:
        return (self.returncode == 0 and self.used >= self.case.min_used
                and self.throttled_share < self.case.max_throttled
                and self.max_per_second <= 1.1 * self.case.rate)


def measure(box: Sandbox, case: Case, tmp: Path) -> Measured:
    box.post("/_sandbox/config", {"rate_limit": [case.limit, case.window]})
    job = write_creates(tmp / f"budget-{case.window:g}-{case.known}-{case.pacer}.csv",
                        round(LIMIT_PER_SECOND * case.seconds))
    db = tmp / (job.stem + ".db")
    ran = run_alone(["run", str(job), "--db", str(db), "--base-url", box.base_url,
                     "--rate", f"{case.rate}/s", "--concurrency", "8",
                     "--pacer", case.pacer], cli_env())
    stats = box.get("/_sandbox/stats?times=1")
    times = sorted(float(t) for t in stats["request_times"])
    return Measured(case, ran.returncode, int(stats["total"]),
                    int(stats["by_status"].get("429", 0)), times[-1] - times[0],
                    busiest_second(times))


def show(measured: Measured) -> str:
    case = measured.case
    name = (f"{case.window:g} s window, {'known' if case.known else 'unknown'} limit, "
            f"{case.pacer}")
    value = (f"used {measured.used:.0%}, 429 {measured.throttled_share:.1%}, "
             f"max/s {measured.max_per_second}/{case.rate}")
    target = (f"≥ {case.min_used:.0%}, < {case.max_throttled:.0%}, "
              f"≤ {1.1 * case.rate:g}/s; {measured.requests} requests, {measured.span:.0f} s")
    return figure(name, value, target, measured.passed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--windows", type=float, nargs="+", default=[1.0, 10.0, 60.0])
    parser.add_argument("--pacers", nargs="+", default=["even", "aiolimiter"])
    parser.add_argument("--windows-long", type=float, default=4.0,
                        help="each job lasts this many windows at the limit, at least 60 s")
    args = parser.parse_args(argv)
    print(f"request budget: sandbox admitting {LIMIT_PER_SECOND} requests/s as a sliding "
          f"window; --rate {LIMIT_PER_SECOND}/s (known) or "
          f"{LIMIT_PER_SECOND * UNKNOWN_OVERSHOOT}/s (unknown); creates, --concurrency 8")
    failed = 0
    with scratch() as tmp:
        for window in args.windows:
            for known in (False, True):
                for pacer in args.pacers:
                    case = Case(window, known, pacer, max(60.0, args.windows_long * window))
                    with sandbox() as box:
                        measured = measure(box, case, Path(tmp))
                    print(show(measured), flush=True)
                    failed += not measured.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
